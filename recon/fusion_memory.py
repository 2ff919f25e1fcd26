"""How much memory a TSDF `VoxelBlockGrid` will take, from the scene's extent and voxel size.

Open3D allocates a block (block_resolution^3 voxels) wherever a view's truncation band
passes, and its memory grows with the block count until the machine runs out (a voxel 100x
finer than the automatic one reached 6-8 GB and segfaulted after minutes). The band follows
the scene's surfaces, so the block count grows with surface area / block side^2:

    blocks ~ BAND_BLOCKS * A / (block_resolution * voxel_size)^2

with A the surface area of the sparse points' robust bounding box (1-99 percentile; for a
room, its walls, floor and ceiling) and BAND_BLOCKS the blocks a truncation band crosses
(2 x trunc thick, plus one for misalignment and depth noise). Each block holds float32 tsdf,
weight and colour (5 channels x 4 bytes per voxel) plus the hash map's entry, and the hash map
doubles its capacity as it grows (HASH_GROWTH).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recon.errors import ConfigError
from recon.memory import budget_bytes, check_budget

HASH_GROWTH = 2.0  # capacity overshoot of a doubling hash map
HASH_ENTRY_BYTES = 64  # key (3 x int32), value index, bucket bookkeeping


@dataclass(frozen=True)
class FusionMemoryEstimate:
    blocks: float  # estimated active blocks
    bytes: float  # estimated grid memory (bytes)
    area: float  # surface area used (world units^2)


def band_blocks(trunc_voxels: float, block_resolution: int) -> float:
    """Blocks a truncation band of +-trunc_voxels crosses along a surface normal."""
    return 2.0 * trunc_voxels / block_resolution + 1.0


def scene_area(points_xyz: np.ndarray) -> float:
    """Surface area (world units^2) of the 1-99 percentile bounding box of the points (N, 3)."""
    pts = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) < 4:
        return 0.0
    lo, hi = np.percentile(pts, [1.0, 99.0], axis=0)
    x, y, z = np.maximum(hi - lo, 0.0)
    return float(2.0 * (x * y + y * z + z * x))


def estimate_fusion_memory(
    points_xyz: np.ndarray,
    voxel_size: float,
    trunc_voxels: float,
    block_resolution: int,
    integrate_color: bool = True,
) -> FusionMemoryEstimate:
    """Blocks and bytes a VoxelBlockGrid needs for a scene with these sparse points."""
    area = scene_area(points_xyz)
    side = block_resolution * voxel_size
    blocks = band_blocks(trunc_voxels, block_resolution) * area / side**2
    channels = 5 if integrate_color else 2
    per_block = block_resolution**3 * channels * 4 + HASH_ENTRY_BYTES
    return FusionMemoryEstimate(blocks, HASH_GROWTH * blocks * per_block, area)


def check_fusion_memory(points_xyz: np.ndarray, params) -> FusionMemoryEstimate:
    """Refuse (ConfigError naming the voxel size that fits) a grid over the memory budget.

    `params` is a `recon.fusion.FusionParams` with voxel_size set. The block count grows with
    1 / voxel_size^2, so the voxel size that fits is voxel_size * sqrt(estimate / budget).
    """
    est = estimate_fusion_memory(
        points_xyz,
        params.voxel_size,
        params.trunc_voxels,
        params.block_resolution,
        params.integrate_color,
    )
    budget = budget_bytes(params.memory_budget_gb)
    fits = params.voxel_size * math.sqrt(est.bytes / budget) * 1.05 if budget > 0 else math.inf
    check_budget(
        est.bytes,
        params.memory_budget_gb,
        f"TSDF fusion at fusion.voxel_size={params.voxel_size:.4g} (~{est.blocks:.3g} blocks)",
        "fusion.memory_budget_gb",
        f"set fusion.voxel_size to {fits:.3g} or more (world units), or leave it unset",
    )
    return est


def check_voxel_scale(points_xyz: np.ndarray, voxel_size: float) -> None:
    """Refuse a voxel larger than the scene itself: it gives an empty mesh, whatever the
    weight threshold."""
    pts = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) < 4:
        return
    lo, hi = np.percentile(pts, [1.0, 99.0], axis=0)
    extent = float(np.linalg.norm(hi - lo))
    if voxel_size > extent / 4:
        raise ConfigError(
            f"fusion.voxel_size={voxel_size:.4g} is larger than a quarter of the scene "
            f"(sparse points span {extent:.4g} world units): nothing could be meshed",
            fix=f"set fusion.voxel_size well below {extent / 4:.3g} (e.g. {extent / 256:.3g}), "
            "or leave it unset to derive it from the scene",
        )
