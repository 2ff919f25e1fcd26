"""Stage 5: aligned views -> normal-guided TSDF (streamed one view at a time) -> raw mesh."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from pipelines.stage_align import load_view_arrays, view_path
from pipelines.workspace import Stage
from recon.atomic import write_with
from recon.colmap_model import SparseScene
from recon.fusion import (
    FusionParams,
    extract_mesh,
    fuse_views,
    scene_fusion_params,
    view_weights,
)
from recon.records import View

log = logging.getLogger(__name__)

RAW_MESH = "mesh_raw.ply"


def fuse_scene(
    scene: SparseScene, align_dir: Path, stage: Stage, params: FusionParams
) -> trimesh.Trimesh:
    """Fuse every aligned view; returns the raw (uncleaned) marching-cubes mesh."""
    if stage.done:
        return trimesh.load(stage.path / RAW_MESH, process=False)
    out = stage.begin()
    names = [n for n in scene.names if view_path(align_dir, n).is_file()]
    params = scene_fusion_params(
        [scene.cameras[n] for n in names],
        scene.points_xyz,
        depths=(_depth(align_dir, n) for n in names),
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
    volume = fuse_views(_views(scene, align_dir, names, params), params)
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
        }
    )
    return mesh


def _depth(align_dir: Path, name: str) -> np.ndarray:
    return load_view_arrays(align_dir, name)["depth"]


def _views(
    scene: SparseScene, align_dir: Path, names: list[str], params: FusionParams
) -> Iterator[View]:
    for name in tqdm(names, desc="fuse", unit="view", leave=False):
        frame = scene.frame(name)
        arrays = load_view_arrays(align_dir, name)
        depth, normal = arrays["depth"], arrays.get("normal")
        if params.weighting == "uniform":
            weight = (depth > 0).astype(np.float32)
        else:
            weight = view_weights(
                depth, normal, frame.camera.K, arrays.get("confidence"), params.weights
            )
        yield View(frame=frame, depth=depth, normal=normal, weight=weight)
