"""Stage 5: aligned views -> normal-guided TSDF (streamed one view at a time) -> raw mesh.

Each view's weights and multi-view consistency check come from `recon.consistency.fusion_views`
(one view and its k nearest neighbours' depth maps in memory at a time). Depth maps are read
from the align stage's files once for the scene's fusion settings (depth range, voxel size) and
once more for fusion, where one cache serves a view's own turn and its turns as a neighbour.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import trimesh

from pipelines.view_files import ViewFiles, load_view_depth, load_view_extras
from pipelines.workspace import Stage
from recon.atomic import write_with
from recon.colmap_model import SparseScene
from recon.consistency import ViewSource, fusion_views
from recon.errors import FusionError
from recon.fusion import (
    FusionParams,
    extract_mesh,
    fuse_views,
    scene_fusion_params,
)
from recon.fusion_memory import check_fusion_memory, check_voxel_scale
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
    check_voxel_scale(scene.points_xyz, params.voxel_size)
    check_fusion_memory(scene.points_xyz, params)  # before Open3D grows past the machine
    log.info(
        "fusion: %d views, voxel %.4g, truncation %.4g, depth range %.3g-%.3g, %s weights",
        len(names),
        params.voxel_size,
        params.trunc,
        params.depth_min,
        params.depth_max,
        params.weighting,
    )
    rejected: list[float] = []
    zero_weight: list[str] = []
    views_in = _watch_zero_weight(
        fusion_views(_source(scene, views), params, rejected), zero_weight
    )
    try:
        volume = fuse_views(views_in, params)
    except FusionError as err:
        if names and len(zero_weight) == len(names):
            raise FusionError(
                "every view has depth but zero fusion weight everywhere: the normals are "
                "zero or invalid",
                path=align_dir,
                fix="check the normal maps of the predictions, or --set fusion.weighting=uniform",
            ) from err
        raise
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
            "consistency_rejected": _mean(rejected),
        }
    )
    return mesh


def _source(scene: SparseScene, views: ViewFiles) -> ViewSource:
    """The aligned views, read from the align stage one at a time."""
    align_dir = views.stage_dir
    return ViewSource(
        names=views.names,
        K={n: scene.cameras[n].K for n in views.names},
        cam_from_world=scene.cam_from_world,
        frame=scene.frame,
        depth=lambda name: load_view_depth(align_dir, name),
        extras=lambda name: load_view_extras(align_dir, name),
    )


def _watch_zero_weight(views: Iterator[View], zero_weight: list[str]) -> Iterator[View]:
    """Pass views through, noting those with depth but zero weight everywhere."""
    for view in views:
        if np.any(view.depth > 0) and not np.any(view.weight > 0):
            zero_weight.append(view.frame.name)
        yield view


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None
