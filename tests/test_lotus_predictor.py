"""The Lotus adapter behind the Predictor interface, on tiny random checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lotus_core.testing import build_tiny_checkpoint
from pipelines.lotus_predictor import LotusPredictor, confidence_from_spread
from pipelines.predictors import Predictor
from recon.errors import InputError
from recon.records import Camera, Frame, MonoPrediction

RES = 64


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOTUS_RECON_CACHE", str(tmp_path_factory.mktemp("lotus_cache")))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_cache")))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {
        "disp-g": build_tiny_checkpoint(
            root / "lotus-depth-g-v2-1-disparity", "g", "depth", "disparity"
        ),
        "depth-d": build_tiny_checkpoint(root / "lotus-depth-d-v1-0", "d", "depth", "depth"),
        "normal-g": build_tiny_checkpoint(root / "lotus-normal-g-v1-1", "g", "normal", None),
        "normal-d": build_tiny_checkpoint(root / "lotus-normal-d-v1-1", "d", "normal", None),
    }


def frame(name: str, h: int, w: int, seed: int = 0) -> Frame:
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    K = np.array([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]])
    return Frame(name=name, image=image, camera=Camera(K=K, width=w, height=h))


def make(depth: Path, normal: Path | None = None, **kw) -> LotusPredictor:
    kw.setdefault("dtype", "float32")
    return LotusPredictor.from_checkpoints(
        str(depth),
        None if normal is None else str(normal),
        device="cpu",
        processing_res=RES,
        progress=False,
        **kw,
    )


def test_predictions_are_valid_mono_predictions(ckpts):
    predictor = make(ckpts["disp-g"], ckpts["normal-g"], ensemble=3, batch_size=2)
    assert isinstance(predictor, Predictor)
    assert predictor.space == "disparity"
    assert predictor.name.startswith("lotus:lotus-depth-g-v2-1-disparity+lotus-normal-g-v1-1@64")
    frames = [frame("a.jpg", 37, 53, 0), frame("b.jpg", 30, 41, 1), frame("c.jpg", 37, 53, 2)]
    preds = predictor.predict(frames)
    assert len(preds) == 3
    for f, p in zip(frames, preds):
        assert isinstance(p, MonoPrediction) and p.space == "disparity"
        assert p.values.shape == f.image.shape[:2] and p.values.dtype == np.float32
        assert np.allclose(np.linalg.norm(p.normal, axis=-1), 1.0, atol=1e-4)
        assert p.confidence.shape == p.values.shape
        assert 0.0 <= p.confidence.min() and p.confidence.max() <= 1.0
        assert p.producer == predictor.name


def test_order_and_batching_do_not_change_results(ckpts):
    predictor = make(ckpts["disp-g"], seed=5)
    frames = [frame("a", 37, 53, 0), frame("b", 30, 41, 1), frame("c", 37, 53, 2)]
    together = predictor.predict(frames)
    alone = [predictor.predict([f])[0] for f in frames]
    for a, b in zip(together, alone):
        assert np.allclose(a.values, b.values, atol=1e-4)


def test_depth_only_and_deterministic(ckpts):
    predictor = make(ckpts["depth-d"], ensemble=4)
    (p,) = predictor.predict([frame("a", 20, 30)])
    assert p.space == "depth" and p.normal is None and p.confidence is None
    assert "seed" not in predictor.name  # Lotus-D: the seed cannot change anything


def test_wrong_checkpoints_are_input_errors(ckpts):
    with pytest.raises(InputError, match="--lotus-depth"):
        make(ckpts["normal-d"])
    with pytest.raises(InputError, match="--lotus-normal"):
        make(ckpts["disp-g"], ckpts["depth-d"])


def test_offline_hub_id_is_an_input_error():
    with pytest.raises(InputError) as err:
        LotusPredictor.from_checkpoints("jingheya/lotus-depth-g-v2-1-disparity", device="cpu")
    text = str(err.value)
    assert "\n" not in text and "hf download" in text and "--lotus-depth" in text


def test_confidence_from_spread():
    spread = np.array([[0.0, 0.02, np.inf, np.nan]])
    conf = confidence_from_spread(spread, 0.02)
    assert np.allclose(conf, [[1.0, 0.5, 0.0, 0.0]])


@pytest.mark.weights
@pytest.mark.skipif(not os.environ.get("LOTUS_WEIGHTS_DIR"), reason="set LOTUS_WEIGHTS_DIR")
def test_real_weights_normals_point_up_on_a_floor():
    """Real checkpoints: a rendered checkerboard floor must give upward (OpenCV -y) normals.

    LOTUS_WEIGHTS_DIR holds folders named after the hub ids (hf download ... --local-dir).
    """
    root = Path(os.environ["LOTUS_WEIGHTS_DIR"])
    predictor = LotusPredictor.from_checkpoints(
        str(root / "lotus-depth-g-v2-1-disparity"),
        str(root / "lotus-normal-g-v1-1"),
        processing_res=512,
        progress=False,
    )
    h, w = 384, 512
    v, u = np.mgrid[0:h, 0:w] + 0.5
    f, horizon, cam_height = 400.0, h * 0.35, 1.5
    below = v > horizon + 1
    z = np.where(below, f * cam_height / np.maximum(v - horizon, 1e-3), np.inf)
    x = (u - w / 2) * z / f
    checker = ((np.floor(x) + np.floor(z)) % 2).astype(bool)
    image = np.where(below[..., None], np.where(checker[..., None], 220, 40), 150)
    image = np.repeat(image, 3, axis=-1).astype(np.uint8) if image.shape[-1] == 1 else image
    K = np.array([[f, 0, w / 2], [0, f, horizon], [0, 0, 1]])
    (p,) = predictor.predict([Frame("floor", image.astype(np.uint8), Camera(K, w, h))])
    floor = below & (v > horizon + 60)
    median = np.median(p.normal[floor], axis=0)
    assert median[1] < -0.5, f"floor normal {median} does not point up (OpenCV -y)"
