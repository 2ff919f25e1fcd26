"""Triangle-mesh primitives and the two scene layouts (room, objects on a ground plane).

World frame: metres, z up, the floor / ground plane at z = 0. Triangles are wound so that
their normals point out of solid objects and into the room (the side a camera sees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sample_scenes.textures import TextureParams, random_texture

Part = tuple[np.ndarray, np.ndarray]  # (vertices (V, 3) float64, triangles (T, 3) int64)


@dataclass(frozen=True)
class SceneMesh:
    """All surfaces of a scene in one mesh, plus which textured surface each triangle is on."""

    vertices: np.ndarray  # (V, 3) float32, world frame, metres
    triangles: np.ndarray  # (T, 3) int32 vertex indices
    surface: np.ndarray  # (T,) int32 index into `textures`
    textures: tuple[TextureParams, ...]
    vertex_surface: np.ndarray  # (V,) int32, the surface each vertex belongs to

    @property
    def extent(self) -> float:
        """Length of the bounding-box diagonal, metres."""
        return float(np.linalg.norm(self.vertices.max(0) - self.vertices.min(0)))


def grid_rect(origin: np.ndarray, u: np.ndarray, v: np.ndarray, nu: int, nv: int) -> Part:
    """Planar rectangle origin + s u + t v (s, t in [0, 1]) as an nu x nv grid; normal u x v."""
    s = np.arange(nu + 1) / nu
    t = np.arange(nv + 1) / nv
    ss, tt = np.meshgrid(s, t, indexing="ij")
    verts = origin + ss.reshape(-1, 1) * u + tt.reshape(-1, 1) * v
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    a, b = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
    c, d = idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return verts, tris


def _cells(length: float, cell: float) -> int:
    return max(1, int(np.ceil(length / cell)))


def box(
    centre: np.ndarray, size: np.ndarray, yaw: float, cell: float, inward: bool = False
) -> Part:
    """Axis-aligned box (sizes along x, y, z) rotated by `yaw` rad about z around `centre`.

    Faces are grids of about `cell` metres; `inward` flips the winding (a room's walls).
    """
    return merge(box_faces(centre, size, yaw, cell, inward))


def box_faces(
    centre: np.ndarray, size: np.ndarray, yaw: float, cell: float, inward: bool = False
) -> list[Part]:
    """The six faces of `box` as separate parts (order -x, +x, -y, +y, -z, +z). Vertices on
    shared edges are computed identically on both faces, so the faces meet without cracks."""
    half = np.asarray(size, dtype=np.float64) / 2.0
    n = [_cells(2 * h, cell) for h in half]
    parts: list[Part] = []
    for axis in range(3):
        a1, a2 = (axis + 1) % 3, (axis + 2) % 3
        for sign in (-1.0, 1.0):
            origin = np.zeros(3)
            origin[axis] = sign
            origin[a1] = origin[a2] = -1.0
            e1, e2 = np.zeros(3), np.zeros(3)
            e1[a1], e2[a2] = 2.0, 2.0
            u, v = (e1, e2) if (sign > 0) != inward else (e2, e1)
            nu, nv = (n[a1], n[a2]) if u is e1 else (n[a2], n[a1])
            verts, tris = grid_rect(origin, u, v, nu, nv)
            parts.append((_place(verts * half, centre, yaw), tris))
    return parts


def cylinder(base: np.ndarray, radius: float, height: float, segments: int, rings: int) -> Part:
    """Closed vertical cylinder standing on `base` (centre of its bottom disc)."""
    ang = 2 * np.pi * np.arange(segments) / segments
    ring = np.stack([np.cos(ang), np.sin(ang)], 1) * radius
    zs = np.linspace(0.0, height, rings + 1)
    side = np.concatenate([np.column_stack([ring, np.full(segments, z)]) for z in zs])
    i = np.arange(segments)
    j = (i + 1) % segments
    tris = []
    for r in range(rings):
        lo, hi = r * segments, (r + 1) * segments
        tris += [np.stack([lo + i, lo + j, hi + j], 1), np.stack([lo + i, hi + j, hi + i], 1)]
    parts: list[Part] = [(side, np.concatenate(tris))]
    for z, up in ((0.0, False), (height, True)):
        verts = np.vstack([[0.0, 0.0, z], np.column_stack([ring, np.full(segments, z)])])
        fan = np.stack([np.zeros(segments, int), 1 + i, 1 + j], 1)
        parts.append((verts, fan if up else fan[:, [0, 2, 1]]))
    verts, tris_all = merge(parts)
    return verts + np.asarray(base, dtype=np.float64), tris_all


def sphere(centre: np.ndarray, radius: float, n_lat: int, n_lon: int) -> Part:
    """UV sphere with outward-facing triangles."""
    theta = np.pi * np.arange(1, n_lat) / n_lat
    phi = 2 * np.pi * np.arange(n_lon) / n_lon
    tt, pp = np.meshgrid(theta, phi, indexing="ij")
    body = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], -1)
    verts = np.vstack([[0, 0, 1.0], body.reshape(-1, 3), [0, 0, -1.0]])
    south = len(verts) - 1
    i = np.arange(n_lon)
    j = (i + 1) % n_lon
    tris = [np.stack([np.zeros(n_lon, int), 1 + i, 1 + j], 1)]
    for r in range(n_lat - 2):
        a, b = 1 + r * n_lon, 1 + (r + 1) * n_lon
        tris += [np.stack([a + i, b + i, b + j], 1), np.stack([a + i, b + j, a + j], 1)]
    last = 1 + (n_lat - 2) * n_lon
    tris.append(np.stack([np.full(n_lon, south), last + j, last + i], 1))
    return verts * radius + np.asarray(centre, dtype=np.float64), np.concatenate(tris)


def merge(parts: list[Part]) -> Part:
    """Concatenate parts into one (vertices, triangles) pair."""
    offsets = np.cumsum([0] + [len(v) for v, _ in parts])
    verts = np.concatenate([v for v, _ in parts])
    tris = np.concatenate([t + o for (_, t), o in zip(parts, offsets)])
    return verts, tris


def _place(verts: np.ndarray, centre: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return verts @ rot.T + np.asarray(centre, dtype=np.float64)


def build_scene_mesh(parts: list[Part], textures: list[TextureParams]) -> SceneMesh:
    """One mesh from parts, part k textured by textures[k]; vertices rounded to float32."""
    verts, tris = merge(parts)
    surface = np.concatenate([np.full(len(t), k, np.int32) for k, (_, t) in enumerate(parts)])
    vsurf = np.concatenate([np.full(len(v), k, np.int32) for k, (v, _) in enumerate(parts)])
    return SceneMesh(
        vertices=verts.astype(np.float32),
        triangles=tris.astype(np.int32),
        surface=surface,
        textures=tuple(textures),
        vertex_surface=vsurf,
    )


def random_furniture(
    rng: np.random.Generator, x: float, y: float, max_half: float, low: bool = False
) -> list[Part]:
    """One furniture-like item standing on the floor at (x, y), footprint within max_half
    metres of it. `low` items (tables, balls) stay below eye level."""
    kinds = ["table", "ball", "stack"] if low else ["cabinet", "table", "column", "ball", "stack"]
    kind = rng.choice(kinds)
    yaw = float(rng.uniform(0, np.pi))
    if kind == "column":
        r = float(rng.uniform(0.12, min(0.3, max_half)))
        return [cylinder(np.array([x, y, 0.0]), r, float(rng.uniform(0.6, 1.8)), 40, 8)]
    if kind == "ball":
        r = float(rng.uniform(0.2, min(0.35, max_half)))
        return [sphere(np.array([x, y, r]), r, 24, 48)]
    half = rng.uniform(0.18, max_half, size=2) / np.sqrt(2)  # any yaw stays within max_half
    h = float(rng.uniform(0.9, 1.7) if kind == "cabinet" else rng.uniform(0.45, 0.8))
    size = np.array([2 * half[0], 2 * half[1], h])
    parts = [box(np.array([x, y, h / 2]), size, yaw, 0.1)]
    if kind == "stack":
        r = float(min(half) * 0.9)
        parts.append(sphere(np.array([x, y, h + r]), r, 20, 40))
    return parts


def room_layout(rng: np.random.Generator) -> tuple[SceneMesh, dict]:
    """A box room with furniture along its walls and a cluster in the middle.

    Returns the mesh and layout numbers for the camera path: `half` (2,) half extents in x, y
    and `height`, metres. Cameras circle between the middle cluster and the wall furniture.
    """
    half = np.array([rng.uniform(2.6, 3.2), rng.uniform(2.2, 2.7)])
    height = float(rng.uniform(2.5, 2.9))
    # One closed box: its faces share their edge vertices exactly, so no ray slips through.
    room = box_faces(
        np.array([0.0, 0.0, height / 2]), np.array([*(2 * half), height]), 0.0, 0.15, True
    )
    parts: list[Part] = list(room)
    n_wall = int(rng.integers(5, 8))
    for k in range(n_wall):
        theta = 2 * np.pi * k / n_wall + rng.uniform(-0.2, 0.2)
        radial = rng.uniform(0.8, 0.85)
        x, y = radial * half[0] * np.cos(theta), radial * half[1] * np.sin(theta)
        parts += random_furniture(rng, x, y, max_half=0.3)
    n_mid = int(rng.integers(2, 4))
    start = rng.uniform(0, 2 * np.pi)
    for k in range(n_mid):
        theta = start + 2 * np.pi * k / n_mid
        r = 0.18 * min(half)
        parts += random_furniture(rng, r * np.cos(theta), r * np.sin(theta), 0.28, low=True)
    textures = [random_texture(rng, fine=True) for _ in parts]
    return build_scene_mesh(parts, textures), {"half": half, "height": height}


def object_layout(rng: np.random.Generator) -> tuple[SceneMesh, dict]:
    """A few objects on a square ground plane. Layout numbers: `radius` of the object cluster."""
    g = 3.5
    ground = grid_rect(
        np.array([-g, -g, 0.0]), np.array([2 * g, 0, 0]), np.array([0, 2 * g, 0]), 28, 28
    )
    parts: list[Part] = [ground]
    n_items = int(rng.integers(4, 7))
    start = rng.uniform(0, 2 * np.pi)
    for k in range(n_items):
        theta = start + 2 * np.pi * k / n_items + rng.uniform(-0.2, 0.2)
        r = rng.uniform(0.35, 0.85) if k else 0.0
        parts += random_furniture(rng, r * np.cos(theta), r * np.sin(theta), max_half=0.3)
    textures = [random_texture(rng, fine=True) for _ in parts]
    return build_scene_mesh(parts, textures), {"radius": 0.9}
