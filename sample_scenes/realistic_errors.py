"""Monocular depth errors that no smooth per-view warp explains.

`sample_scenes.simulate` models the error of a monocular prediction as an affine map, a smooth
low-frequency warp and noise. Real predictions also get these wrong, each applied here to a
(H, W) z-depth map before it is turned into affine-invariant values:

- per-object offsets: an object floats in front of, or sinks into, what is behind it
  (each connected part of the scene mesh other than the room shell / ground gets its own
  log-depth offset);
- far-range compression: depth beyond the median grows slower than it should (non-affine in
  depth and in disparity);
- flying pixels and bleeding at occlusion edges: pixels in a band around depth discontinuities
  take the foreground depth (bleeding) or a value between foreground and background (flying);
- scale drift across large uniform regions: on the room shell / ground, the log-depth error
  grows with the distance (in the image) from the nearest object or border.

Object labels come from ray casting the ground-truth mesh (`object_labels`): label 0 is the
largest connected part (the shell), -1 where nothing is hit.
"""

from __future__ import annotations

import functools

import numpy as np
import open3d as o3d
from scipy import ndimage

from recon.geometry import depth_edges

EDGE_STEP = 0.05  # relative depth jump between neighbours that counts as a discontinuity


def object_labels(scene, name: str) -> np.ndarray:
    """(H, W) int32 connected-part label of the surface each pixel sees; 0 = largest part
    (room shell or ground), -1 = no hit. Parts are found after welding coincident vertices, so
    the faces of one box are one part."""
    from sample_scenes.render import depth_and_normal
    from sample_scenes.scene import _raycaster, _stamp

    raycaster = _raycaster(str(scene.mesh_path), *_stamp(scene.mesh_path))
    cam = scene.camera
    _, _, hits = depth_and_normal(
        raycaster, cam.K, scene.cam_from_world[name], cam.width, cam.height
    )
    parts = _triangle_parts(str(scene.mesh_path), *_stamp(scene.mesh_path))
    tri = np.asarray(hits.triangle).reshape(cam.height, cam.width)
    return np.where(tri >= 0, parts[np.clip(tri, 0, None)], -1).astype(np.int32)


@functools.lru_cache(maxsize=4)
def _triangle_parts(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """(T,) part label per triangle of the mesh file, ranked by area (0 = largest)."""
    mesh = o3d.io.read_triangle_mesh(path).merge_close_vertices(1e-5)
    ids, _, area = mesh.cluster_connected_triangles()
    ids, area = np.asarray(ids), np.asarray(area)
    rank = np.empty(len(area), dtype=np.int32)
    rank[np.argsort(-area)] = np.arange(len(area), dtype=np.int32)
    return rank[ids]


def object_offsets(
    z: np.ndarray, labels: np.ndarray, rng: np.random.Generator, std: float
) -> np.ndarray:
    """z with every part other than the shell (label 0) scaled by exp(N(0, std)) of its own."""
    if std <= 0:
        return z
    factor = np.ones(z.shape)
    for label in np.unique(labels[labels > 0]):
        factor[labels == label] = np.exp(std * rng.standard_normal())
    return z * factor


def compress_far(z: np.ndarray, valid: np.ndarray, strength: float) -> np.ndarray:
    """Beyond the median valid depth m, z -> m (z / m)^(1 - strength): the far range shrinks."""
    if strength <= 0 or not valid.any():
        return z
    m = float(np.median(z[valid]))
    far = valid & (z > m)
    out = z.copy()
    out[far] = m * (z[far] / m) ** (1.0 - strength)
    return out


def flying_pixels(
    z: np.ndarray, valid: np.ndarray, rng: np.random.Generator, width: int
) -> np.ndarray:
    """Pixels within `width` px of a depth discontinuity: half take the nearest foreground
    depth (bleeding), half a uniform blend of foreground and background (flying pixels)."""
    if width <= 0:
        return z
    edge = depth_edges(np.where(valid, z, np.nan), EDGE_STEP)  # includes the unknown region
    band = ndimage.binary_dilation(edge, iterations=width) & valid
    size = 2 * width + 1
    big = np.where(valid, z, np.inf)
    fg = ndimage.minimum_filter(big, size=size, mode="nearest")
    bg = ndimage.maximum_filter(np.where(valid, z, -np.inf), size=size, mode="nearest")
    t = rng.uniform(0.0, 1.0, z.shape)
    bleed = rng.uniform(0.0, 1.0, z.shape) < 0.5
    with np.errstate(invalid="ignore"):  # windows with no valid pixel: inf, dropped below
        mixed = np.where(bleed, fg, fg + t * (bg - fg))
    return np.where(band & np.isfinite(mixed), mixed, z)


def shell_drift(
    z: np.ndarray, labels: np.ndarray, rng: np.random.Generator, rate: float
) -> np.ndarray:
    """On the shell (label 0), multiply depth by exp(+-rate * d), d = image distance to the
    nearest pixel that is not shell, as a fraction of the long side (sign random per view)."""
    if rate <= 0:
        return z
    shell = labels == 0
    if not shell.any():
        return z
    dist = ndimage.distance_transform_edt(shell) / max(z.shape)
    sign = 1.0 if rng.uniform() < 0.5 else -1.0
    return np.where(shell, z * np.exp(sign * rate * dist), z)
