"""Mesh from one depth map (and its normals): pixel-grid triangulation with discontinuity cuts.

Every valid pixel becomes a vertex at its backprojected pixel centre (row i, col j -> pixel
coordinates (j + 0.5, i + 0.5), COLMAP convention; z-depth). Each 2x2 block of pixels gives two
triangles, split along the diagonal with the smaller depth difference, wound so that the
triangle normal faces the camera (OpenCV frame: z < 0 for a fronto-parallel surface).

Discontinuity cut ("rubber sheets"): a triangle that bridges a foreground and a background
surface is nearly parallel to the viewing ray, while the predicted normals on both sides face
the camera. Two tests, both scale-free and both driven by the normals, cut such triangles:

* obliquity margin: an edge (or triangle) whose obliquity to the viewing ray (90 deg = seen
  edge-on) exceeds `min_cut_angle_deg` AND exceeds the most oblique predicted normal at its
  vertices by more than `angle_margin_deg`. A genuinely slanted surface (a floor at a grazing
  angle) has predicted normals just as oblique and is kept. Obliquity is the depth gradient
  relative to depth, expressed as an angle: tan(obliquity) ~ f * |grad z| / z.
* unexplained jump: the log-depth step along an edge minus the step that the plane through
  either endpoint (its own predicted normal) predicts; above `max_unexplained_jump` the step
  is a discontinuity. Taking the better of the two endpoints keeps creases (box corners).

Both tests ignore steps below a noise floor: `min_step`, raised to `noise_k` times the
per-step noise measured on the depth map itself (`step_noise`, from second differences), so
a noisy prediction is not shredded. Without normals, an edge or triangle is cut when its
obliquity exceeds `no_normal_angle_deg` (above the same floor).
After the cut, connected components smaller than `min_component_fraction` of the faces (or
`min_component_faces`) are dropped: they are flying-pixel debris along cut edges.

Also here: `export_mesh` (PLY / GLB / OBJ with vertex colours, OpenGL or OpenCV axes) and
`rubber_sheet_fraction` (the evaluation measure for bridging triangles). Scaling a relative
depth map (relative, or metric from one measurement) is in `recon.single_view_scale`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from recon.geometry import backproject, camera_rays
from recon.records import Camera


@dataclass(frozen=True)
class CutOptions:
    """Discontinuity cut parameters (angles in degrees; see the module docstring)."""

    min_cut_angle_deg: float = 75.0  # never cut an edge less oblique than this
    min_step: float = 0.02  # ... nor one whose |log-depth step| is below this (noise floor)
    noise_k: float = 3.0  # raise min_step and max_unexplained_jump to noise_k x the measured
    # per-step depth noise (0: fixed thresholds); see `step_noise`
    angle_margin_deg: float = 20.0  # cut when this much more oblique than the predicted normals
    max_unexplained_jump: float = 0.04  # |log-depth step - normal-predicted step| to cut at
    no_normal_angle_deg: float = 80.0  # obliquity cut when no normals are given
    max_normal_angle_deg: float = 85.0  # predicted normals clamped to this obliquity
    min_component_fraction: float = 0.002  # drop components with fewer faces than this share
    min_component_faces: int = 32  # ... or fewer faces than this
    enabled: bool = True  # False: keep every triangle with three valid vertices (for tests)


@dataclass(frozen=True)
class MeshStats:
    """What the mesher did, for logs and tests."""

    grid_faces: int  # triangles with three valid vertices before the cut
    cut_faces: int  # removed by the discontinuity cut
    cut_by_angle: int  # of which flagged by the obliquity test
    cut_by_jump: int  # of which flagged by the unexplained-jump test (may overlap)
    components_kept: int
    components_dropped: int
    faces_dropped_small: int  # faces in dropped components
    faces: int  # final triangle count
    vertices: int  # final vertex count
    step_noise: float = 0.0  # measured per-step log-depth noise (see `step_noise`)

    def summary(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DepthMesh:
    """Triangle mesh of one view, in that view's OpenCV camera frame."""

    vertices: np.ndarray  # (V, 3) float32, camera frame, depth units
    faces: np.ndarray  # (F, 3) int32 vertex indices, wound to face the camera
    pixels: np.ndarray  # (V, 2) int32 (row, col) of each vertex's pixel
    colors: np.ndarray | None  # (V, 3) uint8 RGB, or None
    normals: np.ndarray | None  # (V, 3) float32 predicted unit normals, camera frame, or None
    stats: MeshStats


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: finite, positive depth."""
    depth = np.asarray(depth)
    return np.isfinite(depth) & (depth > 0)


def _obliquity_cos(vec: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """cos(obliquity) of edges `vec` (..., 3) seen along rays to `mid` (..., 3).

    Obliquity = 90 deg minus the angle between edge and ray: 90 deg when the edge points
    along the ray (a rubber sheet), 0 deg when it is perpendicular to it.
    """
    num = np.abs(np.einsum("...k,...k->...", vec, mid))
    den = np.linalg.norm(vec, axis=-1) * np.linalg.norm(mid, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_ray = np.clip(num / den, 0.0, 1.0)
    return np.sqrt(1.0 - cos_ray**2)  # cos(obliquity) = sin(angle to ray)


def _facing_cos(normal: np.ndarray, rays: np.ndarray, max_angle_deg: float) -> np.ndarray:
    """|cos| of the angle between predicted normals and viewing rays, clamped below."""
    cos = np.abs(np.einsum("...k,...k->...", normal, rays)) / np.linalg.norm(rays, axis=-1)
    return np.maximum(np.nan_to_num(cos), np.cos(np.radians(max_angle_deg)))


def _plane_step(normal_a: np.ndarray, ray_a: np.ndarray, ray_b: np.ndarray, floor: np.ndarray):
    """log(z_b / z_a) predicted by the plane through point a with normal_a.

    Plane: n . X = n . (z_a r_a)  =>  z_b = z_a (n . r_a) / (n . r_b). Both dot products are
    taken on the camera-facing side and clamped to `floor` * |r| so that a grazing normal
    predicts a bounded step.
    """
    da = -np.einsum("...k,...k->...", normal_a, ray_a)
    db = -np.einsum("...k,...k->...", normal_a, ray_b)
    da = np.maximum(da, floor * np.linalg.norm(ray_a, axis=-1))
    db = np.maximum(db, floor * np.linalg.norm(ray_b, axis=-1))
    return np.log(da) - np.log(db)


def edge_flags(
    points: np.ndarray,
    rays: np.ndarray,
    normal: np.ndarray | None,
    pairs: tuple[tuple[slice, slice], tuple[slice, slice]],
    opts: CutOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Discontinuity flags for the edges between pixel blocks `a = pairs[0]`, `b = pairs[1]`.

    points, rays: (H, W, 3); normal: (H, W, 3) or None. Returns (by_angle, by_jump) bool maps
    with the shape of the sliced blocks.
    """
    (ra, ca), (rb, cb) = pairs
    pa, pb = points[ra, ca], points[rb, cb]
    cos_edge = _obliquity_cos(pb - pa, 0.5 * (pa + pb))
    if normal is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            big = np.abs(np.log(pb[..., 2]) - np.log(pa[..., 2])) > opts.min_step
        by_angle = (cos_edge < np.cos(np.radians(opts.no_normal_angle_deg))) & big
        return by_angle, np.zeros_like(by_angle)
    cos_min = np.cos(np.radians(opts.min_cut_angle_deg))
    fa = _facing_cos(normal[ra, ca], rays[ra, ca], opts.max_normal_angle_deg)
    fb = _facing_cos(normal[rb, cb], rays[rb, cb], opts.max_normal_angle_deg)
    pred_angle = np.degrees(np.arccos(np.minimum(fa, fb)))  # most oblique predicted normal
    edge_angle = np.degrees(np.arccos(np.clip(cos_edge, 0.0, 1.0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.log(pb[..., 2]) - np.log(pa[..., 2])
    by_angle = (cos_edge < cos_min) & (edge_angle > pred_angle + opts.angle_margin_deg)
    by_angle &= np.abs(step) > opts.min_step
    floor = np.cos(np.radians(opts.max_normal_angle_deg))
    with np.errstate(invalid="ignore", divide="ignore"):
        err_a = np.abs(step - _plane_step(normal[ra, ca], rays[ra, ca], rays[rb, cb], floor))
        err_b = np.abs(step + _plane_step(normal[rb, cb], rays[rb, cb], rays[ra, ca], floor))
    by_jump = np.fmin(err_a, err_b) > opts.max_unexplained_jump
    return by_angle, by_jump


# Edge families of the pixel grid as (block a, block b) slices over (H, W) maps.
EDGE_RIGHT = ((slice(None), slice(None, -1)), (slice(None), slice(1, None)))  # (H, W-1)
EDGE_DOWN = ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))  # (H-1, W)
EDGE_DIAG = ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None)))  # \ (H-1, W-1)
EDGE_ANTI = ((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None)))  # / (H-1, W-1)


def grid_faces(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two triangles per 2x2 pixel block, wound to face the camera.

    Returns faces (2 (H-1)(W-1), 3) int64 into the row-major pixel index, and `use_diag`
    (H-1, W-1) bool: True where the block is split along the (i, j)-(i+1, j+1) diagonal.
    The split follows the diagonal with the smaller depth difference (it stays on one side of
    a discontinuity more often).
    """
    h, w = depth.shape
    idx = np.arange(h * w).reshape(h, w)
    a, b = idx[:-1, :-1], idx[:-1, 1:]  # (i, j), (i, j+1)
    c, d = idx[1:, :-1], idx[1:, 1:]  # (i+1, j), (i+1, j+1)
    z = np.where(valid_depth(depth), depth, np.inf)
    with np.errstate(invalid="ignore"):
        diag = np.abs(z[:-1, :-1] - z[1:, 1:])
        anti = np.abs(z[1:, :-1] - z[:-1, 1:])
    use_diag = np.nan_to_num(diag, nan=np.inf) <= np.nan_to_num(anti, nan=np.inf)
    # Winding: +x is right (j), +y is down (i); (p, p+down, p+right) has a normal along -z.
    t1 = np.where(use_diag[..., None], np.stack([a, c, d], -1), np.stack([a, c, b], -1))
    t2 = np.where(use_diag[..., None], np.stack([a, d, b], -1), np.stack([c, d, b], -1))
    return np.concatenate([t1.reshape(-1, 3), t2.reshape(-1, 3)]), use_diag


def _face_edge_flags(flags: dict[str, np.ndarray], use_diag: np.ndarray) -> np.ndarray:
    """Per-face OR of the flags of its three edges, in `grid_faces` order."""
    top, bottom = flags["right"][:-1], flags["right"][1:]  # (H-1, W-1)
    left, right = flags["down"][:, :-1], flags["down"][:, 1:]
    t1 = np.where(use_diag, left | bottom | flags["diag"], left | top | flags["anti"])
    t2 = np.where(use_diag, flags["diag"] | right | top, bottom | right | flags["anti"])
    return np.concatenate([t1.ravel(), t2.ravel()])


def step_noise(depth: np.ndarray) -> float:
    """Robust std of the per-pixel log-depth step caused by noise (not by slopes or edges).

    Second differences of log depth cancel planar slopes; for independent noise of std s per
    pixel they have std sqrt(6) s while first differences (the steps the cut tests look at)
    have std sqrt(2) s. Estimated from the median absolute second difference (MAD, so edges
    do not count) along rows and columns.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        logz = np.log(np.where(valid_depth(depth), depth, np.nan))
    d2 = np.concatenate(
        [
            (logz[:, :-2] - 2 * logz[:, 1:-1] + logz[:, 2:]).ravel(),
            (logz[:-2] - 2 * logz[1:-1] + logz[2:]).ravel(),
        ]
    )
    d2 = d2[np.isfinite(d2)]
    if d2.size == 0:
        return 0.0
    mad = 1.4826 * float(np.median(np.abs(d2 - np.median(d2))))
    return mad * np.sqrt(2.0 / 6.0)


def noise_adapted(depth: np.ndarray, opts: CutOptions) -> tuple[CutOptions, float]:
    """`opts` with the step thresholds raised to noise_k x `step_noise(depth)`."""
    if opts.noise_k <= 0:
        return opts, 0.0
    sigma = step_noise(depth)
    floor = opts.noise_k * sigma
    adapted = replace(
        opts,
        min_step=max(opts.min_step, floor),
        max_unexplained_jump=max(opts.max_unexplained_jump, floor),
    )
    return adapted, sigma


def cut_flags(
    depth: np.ndarray, camera: Camera, normal: np.ndarray | None, opts: CutOptions
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Discontinuity flags per edge family: (by_angle, by_jump), each a dict of
    {"right": (H, W-1), "down": (H-1, W), "diag": (H-1, W-1), "anti": (H-1, W-1)} bool maps."""
    rays = camera_rays(camera.K, *depth.shape)
    points = rays * np.where(valid_depth(depth), depth, np.nan)[..., None]
    families = {"right": EDGE_RIGHT, "down": EDGE_DOWN, "diag": EDGE_DIAG, "anti": EDGE_ANTI}
    by_angle, by_jump = {}, {}
    for name, pairs in families.items():
        by_angle[name], by_jump[name] = edge_flags(points, rays, normal, pairs, opts)
    return by_angle, by_jump


def _triangle_oblique(verts: np.ndarray, normal_cos: np.ndarray | None, opts: CutOptions):
    """Per-face obliquity test on the triangle's own normal. verts: (F, 3, 3);
    normal_cos: (F,) |cos| of the most oblique predicted vertex normal, or None."""
    n = np.cross(verts[:, 1] - verts[:, 0], verts[:, 2] - verts[:, 0])
    centroid = verts.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_tri = np.abs(np.einsum("fk,fk->f", n, centroid)) / (
            np.linalg.norm(n, axis=1) * np.linalg.norm(centroid, axis=1)
        )
    cos_tri = np.nan_to_num(cos_tri, nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        logz = np.log(verts[..., 2])
    big = (logz.max(axis=1) - logz.min(axis=1)) > opts.min_step  # above the noise floor
    if normal_cos is None:
        return (cos_tri < np.cos(np.radians(opts.no_normal_angle_deg))) & big
    tri_angle = np.degrees(np.arccos(np.clip(cos_tri, 0, 1)))
    pred_angle = np.degrees(np.arccos(np.clip(normal_cos, 0, 1)))
    steep = cos_tri < np.cos(np.radians(opts.min_cut_angle_deg))
    return steep & big & (tri_angle > pred_angle + opts.angle_margin_deg)


def component_filter(faces: np.ndarray, num_vertices: int, opts: CutOptions):
    """Keep faces of connected components (vertex-shared) that are not tiny.

    Returns (keep mask (F,), components kept, components dropped)."""
    if len(faces) == 0:
        return np.zeros(0, dtype=bool), 0, 0
    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = sparse.coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), (num_vertices,) * 2)
    _, labels = csgraph.connected_components(graph, directed=False)
    face_label = labels[faces[:, 0]]
    counts = np.bincount(face_label)
    min_faces = max(opts.min_component_faces, opts.min_component_fraction * len(faces))
    big = counts >= min_faces
    present = counts > 0
    return big[face_label], int(np.sum(big & present)), int(np.sum(~big & present))


def face_cut_flags(depth, camera, normal, faces, use_diag, points, opts: CutOptions):
    """(by_angle, by_jump) (F,) bool per grid face: edge tests OR'ed over the face's edges,
    plus the obliquity test on the triangle's own normal (counted as by_angle)."""
    by_angle, by_jump = cut_flags(depth, camera, normal, opts)
    cut_angle = _face_edge_flags(by_angle, use_diag)
    cut_jump = _face_edge_flags(by_jump, use_diag)
    normal_cos = None
    if normal is not None:
        rays = camera_rays(camera.K, *depth.shape).reshape(-1, 3)
        fc = _facing_cos(np.asarray(normal).reshape(-1, 3), rays, opts.max_normal_angle_deg)
        normal_cos = fc[faces].min(axis=1)
    cut_angle |= _triangle_oblique(points[faces], normal_cos, opts)
    return cut_angle, cut_jump


def mesh_from_depth(
    depth: np.ndarray,
    camera: Camera,
    normal: np.ndarray | None = None,
    image: np.ndarray | None = None,
    opts: CutOptions | None = None,
) -> DepthMesh:
    """Triangulate a z-depth map into a camera-frame mesh with discontinuity cuts.

    depth: (H, W) z-depth (any unit; 0/NaN = no value); camera: intrinsics for (W, H);
    normal: (H, W, 3) unit normals, OpenCV camera frame, facing the camera, or None;
    image: (H, W, 3) uint8 RGB for vertex colours, or None.
    """
    opts = opts or CutOptions()
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    if (camera.width, camera.height) != (w, h):
        camera = camera.scaled(w, h)
    valid = valid_depth(depth)
    faces, use_diag = grid_faces(depth)
    ok = valid.ravel()[faces].all(axis=1)
    points = backproject(np.where(valid, depth, np.nan), camera.K).reshape(-1, 3)
    cut_angle = cut_jump = np.zeros(len(faces), dtype=bool)
    sigma = 0.0
    if opts.enabled:
        opts, sigma = noise_adapted(depth, opts)
        cut_angle, cut_jump = face_cut_flags(depth, camera, normal, faces, use_diag, points, opts)
    cut = (cut_angle | cut_jump) & ok
    kept = faces[ok & ~cut]
    keep, n_kept, n_dropped = component_filter(kept, h * w, opts)
    final = kept[keep]
    stats = MeshStats(
        grid_faces=int(ok.sum()),
        cut_faces=int(cut.sum()),
        cut_by_angle=int((cut_angle & ok).sum()),
        cut_by_jump=int((cut_jump & ok).sum()),
        components_kept=n_kept,
        components_dropped=n_dropped,
        faces_dropped_small=int((~keep).sum()),
        faces=len(final),
        vertices=len(np.unique(final)),
        step_noise=sigma,
    )
    return _compact(final, points, w, normal, image, stats)


def _compact(faces, points, width, normal, image, stats: MeshStats) -> DepthMesh:
    """Keep only the referenced pixel vertices (with their colours and normals)."""
    used = np.unique(faces)
    remap = np.full(len(points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    pixels = np.stack(np.divmod(used, width), axis=-1).astype(np.int32)
    colors = None if image is None else np.asarray(image).reshape(-1, 3)[used].astype(np.uint8)
    normals = None if normal is None else np.asarray(normal, np.float32).reshape(-1, 3)[used]
    return DepthMesh(
        vertices=points[used].astype(np.float32),
        faces=remap[faces].astype(np.int32),
        pixels=pixels,
        colors=colors,
        normals=normals,
        stats=stats,
    )


# --- export and measurement -----------------------------------------------------------------

MESH_FORMATS = ("ply", "glb", "obj")
# OpenCV camera frame (x right, y down, z forward) -> OpenGL/glTF (x right, y up, z backward):
# a rotation by 180 deg about x, so triangle winding (facing the camera) is preserved.
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])


def to_trimesh(mesh: DepthMesh, frame: str = "opengl"):
    """trimesh.Trimesh in `frame`: "opengl" (x right, y up, z toward the camera: viewers show
    it upright, camera at the origin looking down -z) or "opencv" (the camera frame)."""
    import trimesh

    if frame not in ("opengl", "opencv"):
        raise ValueError(f"frame must be 'opengl' or 'opencv', got {frame!r}")
    verts = mesh.vertices.astype(np.float64)
    if frame == "opengl":
        verts = verts @ OPENGL_FROM_OPENCV.T
    colors = None
    if mesh.colors is not None:
        colors = np.concatenate([mesh.colors, np.full((len(mesh.colors), 1), 255, np.uint8)], 1)
    return trimesh.Trimesh(verts, mesh.faces, vertex_colors=colors, process=False)


def export_mesh(mesh: DepthMesh, path, frame: str = "opengl") -> None:
    """Write PLY (binary), GLB or OBJ by the file suffix, atomically, with vertex colours."""
    from pathlib import Path

    from recon.atomic import write_bytes

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in MESH_FORMATS:
        raise ValueError(f"mesh format must be one of {MESH_FORMATS}, got {path.suffix!r}")
    tm = to_trimesh(mesh, frame)
    if kind == "obj":
        import trimesh

        data = trimesh.exchange.obj.export_obj(tm, include_color=True, include_normals=False)
        write_bytes(path, data.encode("utf-8"))
    else:
        write_bytes(path, tm.export(file_type=kind))


def rubber_sheet_fraction(mesh: DepthMesh, gt_depth: np.ndarray, rel: float = 0.1) -> float:
    """Share of faces whose three pixels straddle a ground-truth depth discontinuity.

    gt_depth: (H, W) true z-depth on the mesh's pixel grid (0/NaN = no surface). A face
    straddles when max/min of its pixels' true depths exceeds 1 + rel, or one of its pixels
    sees no surface.
    """
    if len(mesh.faces) == 0:
        return 0.0
    pix = mesh.pixels[mesh.faces]  # (F, 3, 2)
    z = np.asarray(gt_depth, dtype=np.float64)[pix[..., 0], pix[..., 1]]
    z = np.where(valid_depth(z), z, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.nanmax(z, axis=1) / np.nanmin(z, axis=1)
    bad = ~(ratio <= 1.0 + rel) | np.isnan(z).any(axis=1)
    return float(bad.mean())
