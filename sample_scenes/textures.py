"""Procedural solid textures evaluated at 3D points (world frame, metres).

Every pattern is a pure function of the 3D point and a per-surface integer seed (integer
hashing, no global random state), so the same point has the same colour in every view: the
photos are multi-view consistent and SIFT matches them. Patterns mix scales from decimetres
to a couple of centimetres: smooth value noise, fine value-noise grain, random coloured discs
(spheres of a jittered lattice cut by the surface) and stripes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_PRIMES = (np.uint32(73856093), np.uint32(19349663), np.uint32(83492791))


@dataclass(frozen=True)
class TextureParams:
    """Parameters of one surface's texture. Frequencies in cycles per metre, sizes in metres."""

    seed: int  # integer seed of every hashed pattern on this surface
    rotation: np.ndarray  # (3, 3) orthogonal map applied to points first: lattices are not axis
    # aligned, so a wall at any position cuts the disc lattice (an axis-aligned plane at an
    # unlucky coordinate would miss every sphere)
    base_colors: np.ndarray  # (3, 3) RGB in [0, 1]: dark and light base, colour of patches
    base_freq: float  # frequency of the lowest noise octave
    grain_freq: float  # frequency of the fine multiplicative grain
    grain_strength: float  # grain modulates albedo by 1 +- grain_strength / 2
    blob_cells: tuple[float, ...]  # lattice cell sizes of the coloured-disc layers
    blob_density: float  # fraction of lattice cells that hold a disc
    stripe_dir: np.ndarray | None  # (3,) unit stripe normal, None = no stripes
    stripe_freq: float  # stripes per metre
    stripe_color: np.ndarray  # (3,) RGB in [0, 1]


def hash01(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic hash of integer lattice coordinates to floats in [0, 1). Shapes broadcast."""
    with np.errstate(over="ignore"):
        h = (
            ix.astype(np.uint32) * _PRIMES[0]
            ^ iy.astype(np.uint32) * _PRIMES[1]
            ^ iz.astype(np.uint32) * _PRIMES[2]
            ^ np.uint32((seed * 2654435761) & 0xFFFFFFFF)
        )
        # murmur3 finaliser: spreads low-entropy lattice coordinates over all 32 bits
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h.astype(np.float64) * (1.0 / 4294967296.0)


def value_noise(points: np.ndarray, freq: float, seed: int) -> np.ndarray:
    """Trilinear value noise in [0, 1] at (N, 3) points; features of size ~1 / freq metres."""
    q = points * freq
    i0 = np.floor(q)
    f = q - i0
    f = f * f * (3.0 - 2.0 * f)  # smoothstep: continuous first derivative across cells
    i0 = i0.astype(np.int64)
    out = np.zeros(len(points))
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1.0 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1.0 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1.0 - f[:, 2]
                corner = hash01(i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz, seed)
                out += wx * wy * wz * corner
    return out


def fbm(points: np.ndarray, freq: float, octaves: int, seed: int) -> np.ndarray:
    """Fractal sum of `octaves` value-noise octaves (frequency x2, weight x0.5), in [0, 1]."""
    total = np.zeros(len(points))
    norm = 0.0
    for k in range(octaves):
        weight = 0.5**k
        total += weight * value_noise(points, freq * 2.0**k, seed + 101 * k)
        norm += weight
    return total / norm


def blob_layer(
    points: np.ndarray, cell: float, density: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random coloured spheres on a jittered lattice, cut by the surface into discs.

    Each lattice cell of size `cell` holds, with probability `density`, one sphere that stays
    inside its cell, so one cell lookup per point suffices. Returns (inside (N,) bool,
    colour (M, 3) for the M inside points).
    """
    q = points / cell
    c = np.floor(q).astype(np.int64)
    local = q - c
    ix, iy, iz = c[:, 0], c[:, 1], c[:, 2]
    centre = 0.3 + 0.4 * np.stack([hash01(ix, iy, iz, seed + k) for k in range(3)], axis=1)
    radius = 0.12 + 0.16 * hash01(ix, iy, iz, seed + 3)  # <= 0.28: never leaves its cell
    present = hash01(ix, iy, iz, seed + 4) < density
    inside = present & (np.sum((local - centre) ** 2, axis=1) < radius**2)
    ix, iy, iz = ix[inside], iy[inside], iz[inside]
    hsv = np.stack([hash01(ix, iy, iz, seed + k) for k in (5, 6, 7)], axis=1)
    hsv[:, 1] = 0.35 + 0.65 * hsv[:, 1]
    hsv[:, 2] = 0.1 + 0.9 * hsv[:, 2]
    return inside, hsv_to_rgb(hsv)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(N, 3) HSV in [0, 1] to RGB in [0, 1]."""
    h, s, v = hsv[:, 0] * 6.0, hsv[:, 1], hsv[:, 2]
    k = np.stack([(5.0 + h) % 6.0, (3.0 + h) % 6.0, (1.0 + h) % 6.0], axis=1)
    return v[:, None] - (v * s)[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def evaluate(params: TextureParams, points: np.ndarray) -> np.ndarray:
    """Albedo (N, 3) float64 in [0, 1] of the surface at world points (N, 3) in metres."""
    points = np.asarray(points, dtype=np.float64) @ params.rotation.T
    mix = fbm(points, params.base_freq, 3, params.seed)[:, None]
    mix = np.clip((mix - 0.5) * 2.2 + 0.5, 0.0, 1.0)  # stretch contrast
    c0, c1, c2 = params.base_colors
    albedo = (1.0 - mix) * c0 + mix * c1
    patches = value_noise(points, params.base_freq * 3.0, params.seed + 3)[:, None]
    albedo = np.where(patches > 0.68, 0.25 * albedo + 0.75 * c2, albedo)
    grain = value_noise(points, params.grain_freq, params.seed + 7)[:, None]
    albedo = albedo * (1.0 + params.grain_strength * (grain - 0.5))
    if params.stripe_dir is not None:
        phase = points @ params.stripe_dir * params.stripe_freq
        on = (np.sin(2.0 * np.pi * phase) > 0.6)[:, None]
        albedo = np.where(on, 0.35 * albedo + 0.65 * params.stripe_color, albedo)
    for k, cell in enumerate(params.blob_cells):
        inside, colour = blob_layer(points, cell, params.blob_density, params.seed + 1000 * (k + 1))
        albedo[inside] = colour
    return np.clip(albedo, 0.0, 1.0)


def random_texture(rng: np.random.Generator, fine: bool = True) -> TextureParams:
    """Draw one surface's texture. `fine` adds centimetre-scale discs (for near surfaces)."""
    hsv = np.column_stack(
        [
            rng.uniform(0, 1, 3),
            rng.uniform(0.3, 0.9, 3),
            [rng.uniform(0.2, 0.45), *rng.uniform(0.6, 0.95, 2)],
        ]
    )
    stripes = rng.uniform() < 0.5
    direction = rng.normal(size=3)
    cells = (0.35, 0.15, 0.07) if fine else (0.6, 0.25)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return TextureParams(
        seed=int(rng.integers(0, 2**31 - 1)),
        rotation=rotation,
        base_colors=hsv_to_rgb(hsv),
        base_freq=float(rng.uniform(1.5, 3.0)),
        grain_freq=float(rng.uniform(12.0, 22.0)),
        grain_strength=float(rng.uniform(0.35, 0.6)),
        blob_cells=cells,
        blob_density=float(rng.uniform(0.5, 0.8)),
        stripe_dir=direction / np.linalg.norm(direction) if stripes else None,
        stripe_freq=float(rng.uniform(3.0, 8.0)),
        stripe_color=hsv_to_rgb(rng.uniform([0, 0.3, 0.1], [1, 1, 1], size=(1, 3)))[0],
    )
