"""Alignment of affine-invariant predictions to sparse points, and smooth shape correction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recon.align import (
    AlignParams,
    align_view,
    align_views,
    borrow_alignments,
    clipped_mask,
    for_model_size,
    prepare_samples,
)
from recon.evaluate import depth_metrics
from recon.geometry import sample_bilinear
from recon.records import MonoPrediction, SparseObservations
from recon.refine import RefineParams
from tests.synthetic import oracle_prediction, room_scene, smooth_warp

TRUTH = {"depth": (2.0, 0.3), "disparity": (0.3, 0.05)}


@pytest.fixture(scope="module")
def scene():
    return room_scene(n_views=6, width=128, height=96)


def corrupt(sparse: SparseObservations, fraction: float, seed: int = 1) -> SparseObservations:
    """Multiply the depth of `fraction` of the points by a factor in [0.3, 0.7] or [1.4, 3]."""
    rng = np.random.default_rng(seed)
    z = sparse.z.copy()
    bad = rng.random(len(z)) < fraction
    factor = np.where(
        rng.random(len(z)) < 0.5, rng.uniform(0.3, 0.7, len(z)), rng.uniform(1.4, 3, len(z))
    )
    z[bad] *= factor[bad]
    return replace(sparse, z=z)


def test_sample_bilinear_uses_colmap_pixel_centres():
    img = np.arange(12, dtype=np.float64).reshape(3, 4)
    uv = np.array([[0.5, 0.5], [2.5, 1.5], [1.0, 0.5], [0.5, 1.0], [0.2, 0.5]])
    out = sample_bilinear(img, uv)
    np.testing.assert_allclose(out[:4], [img[0, 0], img[1, 2], 0.5, 2.0])
    assert np.isnan(out[4])  # left of the first pixel centre: no extrapolation


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_recovers_scale_shift_with_outliers(scene, space):
    view = scene.views[0]
    scale, shift = TRUTH[space]
    pred = oracle_prediction(view.depth, space, scale, shift, noise=0.003)
    a = align_view(pred, corrupt(view.frame.sparse, 0.2), AlignParams())
    assert a.status == "ok", a.message
    assert a.scale == pytest.approx(scale, rel=0.01)
    # the shift within 1% of the typical mapped value (depth or disparity), where it matters
    typical = np.nanmedian(scale * pred.values + shift)
    assert abs(a.shift - shift) <= 0.01 * typical
    assert 0.7 * a.num_points <= a.num_inliers <= 0.85 * a.num_points
    assert a.residual < 0.01
    assert depth_metrics(a.to_depth(pred.values), view.depth)["abs_rel"] < 0.01


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_narrow_depth_band(scene, space):
    """All sparse points on the far wall: the fit must still hold over the whole image."""
    view = scene.views[1]
    scale, shift = TRUTH[space]
    pred = oracle_prediction(
        view.depth, space, scale, shift, noise=0.005, rng=np.random.default_rng(3)
    )
    far = np.nanpercentile(view.depth, 80)
    uv = np.stack(np.nonzero(view.depth >= far)[::-1], axis=1) + 0.5
    pick = np.random.default_rng(4).choice(len(uv), 150, replace=False)
    uv = uv[pick]
    z = view.depth[(uv[:, 1] - 0.5).astype(int), (uv[:, 0] - 0.5).astype(int)].astype(np.float64)
    z *= 1 + 0.005 * np.random.default_rng(5).standard_normal(len(z))  # SfM noise
    band = SparseObservations(
        uv=uv, z=z, reprojection_error=np.full(150, 0.5), track_length=np.full(150, 4)
    )
    a = align_view(pred, corrupt(band, 0.2), AlignParams())
    assert a.status == "ok", a.message
    assert (z.max() - z.min()) / np.median(z) < 0.5  # it is a narrow band
    assert depth_metrics(a.to_depth(pred.values), view.depth)["abs_rel"] < 0.03


def test_too_few_points_is_reported_not_fitted(scene):
    view = scene.views[0]
    pred = oracle_prediction(view.depth, "depth", 2.0, 0.3)
    few = view.frame.sparse.subset(np.arange(len(view.frame.sparse)) < 10)
    a = align_view(pred, few, AlignParams(min_points=20))
    assert a.status == "too_few_points" and not a.usable
    assert np.isnan(a.scale) and "10" in a.message
    assert np.all(np.isnan(a.to_depth(pred.values)))


def test_filters_track_length_and_reprojection_error(scene):
    sparse = scene.views[0].frame.sparse
    n = len(sparse)
    bad = replace(sparse, track_length=np.where(np.arange(n) % 2 == 0, 2, 5),
                  reprojection_error=np.where(np.arange(n) % 3 == 0, 3.0, 0.5))  # fmt: skip
    pred = oracle_prediction(scene.views[0].depth, "depth", 2.0, 0.3, noise=0.002)
    samples = prepare_samples(pred, bad, AlignParams())
    keep = (np.arange(n) % 2 != 0) & (np.arange(n) % 3 != 0)
    assert len(samples) == keep.sum()


def test_negative_scale_fails(scene):
    view = scene.views[0]
    pred = oracle_prediction(view.depth, "depth", -2.0, 10.0)  # values decrease with depth
    a = align_view(pred, view.frame.sparse, AlignParams())
    assert a.status == "failed" and not a.usable and a.message


def test_clipped_pixels_are_excluded(scene):
    view = scene.views[0]
    pred = oracle_prediction(view.depth, "depth", 2.0, 0.3, noise=0.002)
    cap = np.nanpercentile(pred.values, 85)
    clipped = MonoPrediction(values=np.minimum(pred.values, cap), space="depth")
    mask = clipped_mask(clipped.values, AlignParams())
    assert mask.mean() == pytest.approx(0.15, abs=0.03)
    a = align_view(clipped, view.frame.sparse, AlignParams())
    assert a.scale == pytest.approx(2.0, rel=0.005)
    # an unclipped prediction keeps its extreme pixels (no plateau at either end)
    assert not clipped_mask(pred.values, AlignParams()).any()


def test_align_views_borrow_fallback(scene):
    preds = {v.frame.name: oracle_prediction(v.depth, "depth", 2.0, 0.3) for v in scene.views}
    frames = scene.frames
    starved = replace(
        frames[2], sparse=frames[2].sparse.subset(np.arange(len(frames[2].sparse)) < 5)
    )
    frames = [starved if f.name == starved.name else f for f in frames]
    skip = align_views(preds, frames, AlignParams())
    assert skip[starved.name].status == "too_few_points"
    borrowed = align_views(preds, frames, AlignParams(fallback="borrow", borrow_neighbors=2))
    a = borrowed[starved.name]
    assert a.status == "borrowed" and a.usable
    assert a.scale == pytest.approx(2.0, rel=0.01)
    assert all(b.status == "ok" for n, b in borrowed.items() if n != starved.name)
    centres = {f.name: f.center for f in frames}  # camera centres work as well as frames
    assert borrow_alignments(skip, centres, 2)[starved.name].scale == a.scale


def test_alignment_is_deterministic(scene):
    view = scene.views[0]
    pred = oracle_prediction(view.depth, "disparity", 0.3, 0.05, noise=0.01)
    sparse = corrupt(view.frame.sparse, 0.3)
    a, b = (align_view(pred, sparse, AlignParams(seed=7)) for _ in range(2))
    assert (a.scale, a.shift) == (b.scale, b.shift)


@pytest.mark.parametrize("space", ["depth", "disparity"])
@pytest.mark.parametrize("mode", ["smooth", "normals"])
def test_refine_reduces_smooth_warp(scene, space, mode):
    refine = RefineParams(smooth=mode == "smooth", normals=mode == "normals")
    rng = np.random.default_rng(11)
    for view in scene.views[:3]:
        warp = smooth_warp(view.depth.shape, 0.08, rng)
        scale, shift = TRUTH[space]
        pred = oracle_prediction(view.depth * np.exp(warp), space, scale, shift, noise=0.003,
                                 rng=rng, normal=view.normal)  # fmt: skip
        sparse = corrupt(view.frame.sparse, 0.1)
        plain = align_view(pred, sparse, AlignParams())
        fixed = align_view(pred, sparse, AlignParams(refine=refine), view.frame.camera)
        assert fixed.scale_field is not None and fixed.status == "ok"
        before = depth_metrics(plain.to_depth(pred.values), view.depth)["abs_rel"]
        after = depth_metrics(fixed.to_depth(pred.values), view.depth)["abs_rel"]
        assert after < 0.6 * before, (before, after)


def test_refine_keeps_global_fit_with_few_inliers(scene):
    view = scene.views[0]
    pred = oracle_prediction(view.depth, "depth", 2.0, 0.3)
    sparse = view.frame.sparse.subset(np.arange(len(view.frame.sparse)) < 25)
    a = align_view(pred, sparse, AlignParams(refine=RefineParams(min_points=30)))
    assert a.status == "ok" and a.scale_field is None and "skipped" in a.message


def test_refine_rejects_a_correction_that_fails_held_out_points(scene):
    view = scene.views[0]
    rng = np.random.default_rng(2)
    garbage = rng.normal(size=(*view.depth.shape, 3)).astype(np.float32)
    garbage /= np.linalg.norm(garbage, axis=-1, keepdims=True)
    pred = oracle_prediction(view.depth, "depth", 2.0, 0.3, noise=0.002, normal=garbage)
    refine = RefineParams(smooth=False, normals=True)
    a = align_view(pred, view.frame.sparse, AlignParams(refine=refine), view.frame.camera)
    assert a.status == "ok" and a.scale_field is None and "kept global fit" in a.message
    assert a.scale == pytest.approx(2.0, rel=0.01)


def test_a_two_view_model_uses_tracks_of_two(scene):
    """Two registered views have only tracks of length 2: the default filter (3) is lowered to
    the model's size instead of leaving no point."""
    frames = [
        replace(f, sparse=replace(f.sparse, track_length=np.full(len(f.sparse), 2)))
        for f in scene.frames[:2]
    ]
    preds = {
        f.name: oracle_prediction(v.depth, "depth", 2.0, 0.3) for f, v in zip(frames, scene.views)
    }
    assert align_view(preds[frames[0].name], frames[0].sparse, AlignParams()).status == (
        "too_few_points"
    )
    aligned = align_views(preds, frames, AlignParams())
    assert all(
        a.status == "ok" and a.scale == pytest.approx(2.0, rel=0.01) for a in aligned.values()
    )
    assert for_model_size(AlignParams(), 2).min_track_length == 2
    assert for_model_size(AlignParams(), 5).min_track_length == 3


def test_a_view_the_correction_explains_is_kept(scene):
    """A strong smooth warp leaves the global fit with too few inliers (the view would be
    dropped); judged after the correction, the same points are inliers and the view is kept."""
    rng = np.random.default_rng(5)
    view = scene.views[1]
    warp = smooth_warp(view.depth.shape, 0.3, rng)
    pred = oracle_prediction(view.depth * np.exp(warp), "depth", 2.0, 0.3, noise=0.002)
    refine = RefineParams(normals=False, inlier_threshold=0.4)
    # The warp leaves about a third of the points within 5 % of the global fit.
    params = AlignParams(min_inlier_ratio=0.5, refine=refine)
    plain = align_view(pred, view.frame.sparse, replace(params, refine=None))
    assert plain.status == "failed" and "inliers" in plain.message, plain
    kept = align_view(pred, view.frame.sparse, params, view.frame.camera)
    assert kept.status == "ok" and kept.scale_field is not None, kept.message
    assert "kept after the correction" in kept.message
    assert kept.num_inliers > 0.8 * kept.num_points > plain.num_inliers
    error = depth_metrics(kept.to_depth(pred.values), view.depth)["abs_rel"]
    assert error < 0.05


def test_a_view_the_correction_cannot_explain_stays_dropped(scene):
    """Depth times fine-grained noise (+-50 %, a few pixels wide): the global fit fails, and a
    smooth field through the dense sparse points would "explain" them without the prediction's
    help (a constant depth does as well), so the view is not rescued."""
    from tests.synthetic import smooth_noise

    view = scene.views[1]
    noise = np.exp(0.5 * smooth_noise(view.depth.shape, 3.0, np.random.default_rng(6)))
    pred = oracle_prediction(view.depth * noise, "depth", 2.0, 0.3)
    a = align_view(pred, view.frame.sparse, AlignParams(refine=RefineParams(normals=False)))
    assert a.status == "failed" and "adds too little" in a.message, a
