"""Per-view preparation for fusion, streamed: each view's fusion weights and its multi-view
consistency check, with a small cache of neighbour depth maps. The scene pipeline
(`pipelines.stage_fuse`), the tests and the benches all run `fusion_views`.

Consistency: each valid pixel of a view is backprojected and projected into its k nearest
views (by camera centre); pixels that no neighbour confirms (within a relative depth
tolerance) leave the view entirely (depth 0, weight 0). Only the k neighbours' depth maps are
held alongside the view, so memory does not grow with the number of views.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .fusion import ConsistencyParams, FusionParams, view_weights
from .geometry import backproject, camera_center, transform_points
from .progress import progress
from .records import Frame, View


@dataclass(frozen=True)
class PosedDepth:
    """What a consistency check needs of a view: its depth, intrinsics and pose."""

    depth: np.ndarray  # (H, W) z-depth, world units; 0 or NaN = invalid
    K: np.ndarray  # (3, 3) pixels
    cam_from_world: np.ndarray  # (4, 4)

    @classmethod
    def of(cls, view: View) -> PosedDepth:
        return cls(view.depth, view.frame.camera.K, view.frame.cam_from_world)

    @property
    def center(self) -> np.ndarray:
        return camera_center(self.cam_from_world)


def nearest_views(centres: np.ndarray, index: int, k: int) -> list[int]:
    """Indices of the k views whose centres (N, 3) are nearest to view `index` (not itself)."""
    order = np.argsort(np.linalg.norm(centres - centres[index], axis=1), kind="stable")
    return [int(j) for j in order if j != index][:k]


def consistency_mask(
    view: PosedDepth, others: Sequence[PosedDepth], params: ConsistencyParams
) -> np.ndarray:
    """(H, W) bool: valid pixels whose depth the other views confirm.

    Each valid pixel is backprojected and projected into every view of `others`. A view
    agrees when its depth there is within params.rel_tol (relative) of the point's depth. A
    pixel is kept when at least params.min_agree views agree, or when no view has a valid
    depth where it projects (nothing to check it against): points that every neighbour sees
    through (floaters) or sees in front of (layers behind the surface) are dropped.
    """
    agree, checked = _agreement_counts(view, others, params.rel_tol)
    valid = np.isfinite(view.depth) & (view.depth > 0)
    return valid & ((agree >= params.min_agree) | (checked == 0))


def _agreement_counts(view: PosedDepth, others: Sequence[PosedDepth], rel_tol: float):
    """Per-pixel counts (H, W) of other views that agree with the view's depth / that have a
    valid depth where the pixel projects."""
    h, w = view.depth.shape
    world = transform_points(np.linalg.inv(view.cam_from_world), backproject(view.depth, view.K))
    agree = np.zeros((h, w), np.int32)
    checked = np.zeros((h, w), np.int32)
    for other in others:
        cam = transform_points(other.cam_from_world, world)
        K, (ho, wo) = other.K, other.depth.shape
        z = cam[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.floor(K[0, 0] * cam[..., 0] / z + K[0, 2])
            v = np.floor(K[1, 1] * cam[..., 1] / z + K[1, 2])
            inside = (z > 0) & (u >= 0) & (v >= 0) & (u < wo) & (v < ho)
        d = np.full((h, w), np.nan)
        d[inside] = other.depth[v[inside].astype(int), u[inside].astype(int)]
        with np.errstate(invalid="ignore"):
            agree += np.abs(d - z) <= rel_tol * z
            checked += d > 0
    return agree, checked


@dataclass(frozen=True)
class ViewSource:
    """Where the views to fuse come from, one at a time (files, or memory in tests)."""

    names: list[str]  # integration order
    K: dict[str, np.ndarray]  # name -> (3, 3) intrinsics, pixels
    cam_from_world: dict[str, np.ndarray]  # name -> (4, 4) world -> OpenCV camera
    frame: Callable[[str], Frame]  # the posed photo (may read it from disk)
    depth: Callable[[str], np.ndarray]  # (H, W) z-depth, world units; 0 or NaN = unknown
    extras: Callable[[str], dict[str, np.ndarray]]  # "normal" (H, W, 3), "confidence" (H, W)

    @classmethod
    def of_views(cls, views: Sequence[View]) -> ViewSource:
        """Views already in memory (their normals; no confidence)."""
        by_name = {v.frame.name: v for v in views}

        def extras(name: str) -> dict[str, np.ndarray]:
            normal = by_name[name].normal
            return {} if normal is None else {"normal": normal}

        return cls(
            names=list(by_name),
            K={n: v.frame.camera.K for n, v in by_name.items()},
            cam_from_world={n: v.frame.cam_from_world for n, v in by_name.items()},
            frame=lambda n: by_name[n].frame,
            depth=lambda n: by_name[n].depth,
            extras=extras,
        )


class DepthCache:
    """The last few views' depth maps (least recently used out), so a view's depth read as
    a neighbour is not read again for its own turn, and the other way round."""

    def __init__(self, load: Callable[[str], np.ndarray], size: int):
        self.load, self.size = load, size
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, name: str) -> np.ndarray:
        if name in self._maps:
            self._maps.move_to_end(name)
        else:
            self._maps[name] = self.load(name)
            if len(self._maps) > self.size:
                self._maps.popitem(last=False)
        return self._maps[name]


def fusion_views(
    source: ViewSource, params: FusionParams, rejected: list[float] | None = None
) -> Iterator[View]:
    """Fusion-ready views in `source.names` order: weights from `params.weighting` and, with
    params.consistency enabled, pixels no neighbour confirms removed (depth and weight 0).

    rejected: when given, receives per checked view the fraction (0..1) of its valid pixels
    the check removed.
    """
    check = params.consistency
    names = source.names
    centres = np.stack([camera_center(source.cam_from_world[n]) for n in names])
    cache = DepthCache(source.depth, max(check.neighbors + 3, 3))  # the view and its neighbours
    for index, name in enumerate(progress(names, desc="fuse", unit="view", leave=False)):
        frame = source.frame(name)
        arrays = source.extras(name)  # its depth comes from the cache
        depth, normal = cache.get(name), arrays.get("normal")
        if params.weighting == "uniform":
            weight = (depth > 0).astype(np.float32)
        else:
            weight = view_weights(
                depth, normal, frame.camera.K, arrays.get("confidence"), params.weights
            )
        if check.enabled and check.neighbors > 0:
            others = [
                PosedDepth(cache.get(names[j]), source.K[names[j]], source.cam_from_world[names[j]])
                for j in nearest_views(centres, index, check.neighbors)
            ]  # fmt: skip
            keep = consistency_mask(
                PosedDepth(depth, frame.camera.K, frame.cam_from_world), others, check
            )
            valid = depth > 0
            if rejected is not None:
                rejected.append(float(1.0 - keep[valid].mean()) if valid.any() else 0.0)
            # Rejected pixels leave the view entirely: depth 0 is "no observation" in any mode.
            depth = np.where(keep, depth, 0).astype(np.float32)
            weight = np.where(keep, weight, 0).astype(np.float32)
        yield View(frame=frame, depth=depth, normal=normal, weight=weight)
