"""Stage 5: aligned views -> normal-guided TSDF (streamed one view at a time) -> raw mesh.

With fusion.consistency enabled, each view's pixels are checked against its k nearest views
(camera centres) before integration; only those k depth maps are loaded alongside the view (a
small cache serves neighbours shared by consecutive views), so memory does not grow with the
number of views.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import trimesh

from pipelines.view_files import ViewFiles, load_view_depth, load_view_extras
from pipelines.workspace import Stage
from recon.atomic import write_with
from recon.colmap_model import SparseScene
from recon.fusion import (
    FusionParams,
    PosedDepth,
    consistency_mask,
    extract_mesh,
    fuse_views,
    nearest_views,
    scene_fusion_params,
    view_weights,
)
from recon.progress import progress
from recon.records import View

log = logging.getLogger(__name__)

RAW_MESH = "mesh_raw.ply"


def fuse_scene(
    scene: SparseScene, views: ViewFiles, stage: Stage, params: FusionParams
) -> trimesh.Trimesh:
    """Fuse every aligned view; returns the raw (uncleaned) marching-cubes mesh."""
    if stage.done:
        return trimesh.load(stage.path / RAW_MESH, process=False)
    out = stage.begin()
    align_dir, names = views.stage_dir, views.names
    params = scene_fusion_params(
        [scene.cameras[n] for n in names],
        scene.points_xyz,
        depths=(load_view_depth(align_dir, n) for n in names),
        base=params,
    )
    log.info(
        "fusion: %d views, voxel %.4g, truncation %.4g, depth range %.3g-%.3g, %s weights",
        len(names),
        params.voxel_size,
        params.trunc,
        params.depth_min,
        params.depth_max,
        params.weighting,
    )
    stats: dict[str, list[float]] = {"rejected": []}
    volume = fuse_views(_views(scene, align_dir, names, params, stats), params)
    mesh = extract_mesh(volume, params.weight_threshold)
    write_with(out / RAW_MESH, lambda tmp: mesh.export(tmp, file_type="ply"))
    stage.finish(
        {
            "num_views": volume.num_views,
            "voxel_size": params.voxel_size,
            "trunc": params.trunc,
            "depth_min": params.depth_min,
            "depth_max": params.depth_max,
            "seconds": volume.seconds,
            "faces": len(mesh.faces),
            "consistency_rejected": _mean(stats["rejected"]),
        }
    )
    return mesh


def _views(
    scene: SparseScene,
    align_dir: Path,
    names: list[str],
    params: FusionParams,
    stats: dict[str, list[float]],
) -> Iterator[View]:
    check = params.consistency
    centres = np.stack([scene.centers()[n] for n in names])
    cache = _DepthCache(align_dir, max(check.neighbors + 3, 3))  # the view and its neighbours
    for index, name in enumerate(progress(names, desc="fuse", unit="view", leave=False)):
        frame = scene.frame(name)
        arrays = load_view_extras(align_dir, name)  # its depth comes from the cache
        depth, normal = cache.get(name), arrays.get("normal")
        if params.weighting == "uniform":
            weight = (depth > 0).astype(np.float32)
        else:
            weight = view_weights(
                depth, normal, frame.camera.K, arrays.get("confidence"), params.weights
            )
        if check.enabled and check.neighbors > 0:
            others = [
                PosedDepth(cache.get(names[j]), scene.cameras[names[j]].K, scene.cam_from_world[names[j]])
                for j in nearest_views(centres, index, check.neighbors)
            ]  # fmt: skip
            keep = consistency_mask(
                PosedDepth(depth, frame.camera.K, frame.cam_from_world), others, check
            )
            valid = depth > 0
            stats["rejected"].append(float(1.0 - keep[valid].mean()) if valid.any() else 0.0)
            # Rejected pixels leave the view entirely: depth 0 is "no observation" in any mode.
            depth = np.where(keep, depth, 0).astype(np.float32)
            weight = np.where(keep, weight, 0).astype(np.float32)
        yield View(frame=frame, depth=depth, normal=normal, weight=weight)


class _DepthCache:
    """The last few views' depth maps read from the align stage (least recently used out)."""

    def __init__(self, align_dir: Path, size: int):
        self.align_dir, self.size = align_dir, size
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, name: str) -> np.ndarray:
        if name in self._maps:
            self._maps.move_to_end(name)
        else:
            self._maps[name] = load_view_depth(self.align_dir, name)
            if len(self._maps) > self.size:
                self._maps.popitem(last=False)
        return self._maps[name]


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None
