"""Score a reconstruction of a generated scene against its ground-truth mesh.

A mesh from the scene pipeline lives in the SfM frame: `to_ground_truth_frame` maps it with the
similarity from the SfM camera centres (the run's `cameras.json`) to the true ones. `SceneScorer`
then gives accuracy, completeness and F-scores at fractions of the scene extent, against two
references: the whole ground-truth surface ("all": surfaces no camera sees count as missed) and
the part some camera sees ("seen": what a reconstruction can recover at best).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import trimesh

from recon.evaluate import (
    apply_similarity,
    point_metrics,
    sample_surface,
    similarity_from_poses,
)
from recon.geometry import transform_points
from sample_scenes.scene import SceneGroundTruth, render_ground_truth

THRESHOLDS = (0.005, 0.01, 0.02)  # fractions of the ground truth's extent


def to_ground_truth_frame(
    mesh: trimesh.Trimesh, cameras_json: Path, scene: SceneGroundTruth
) -> tuple[trimesh.Trimesh, float]:
    """Copy of an SfM-frame mesh in the ground-truth frame, and the similarity's scale
    (ground-truth metres per SfM unit). `cameras_json`: the run's `OUT/cameras.json`."""
    data = json.loads(Path(cameras_json).read_text())["images"]
    sfm = {name: np.asarray(v["cam_from_world"], dtype=np.float64) for name, v in data.items()}
    similarity = similarity_from_poses(sfm, scene.cam_from_world)
    out = mesh.copy()
    out.vertices = apply_similarity(mesh.vertices, similarity)
    return out, similarity[0]


def seen_mask(scene: SceneGroundTruth, points: np.ndarray, rel_tol: float = 0.03) -> np.ndarray:
    """(N,) bool: which world points (N, 3) some camera of the scene sees (depth test against
    the ray-cast ground-truth depth, relative tolerance `rel_tol`)."""
    K, w, h = scene.camera.K, scene.camera.width, scene.camera.height
    seen = np.zeros(len(points), bool)
    for name in scene.names:
        depth = render_ground_truth(scene, name)[0]
        cam = transform_points(scene.cam_from_world[name], points)
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.floor(K[0, 0] * cam[:, 0] / z + K[0, 2])
            v = np.floor(K[1, 1] * cam[:, 1] / z + K[1, 2])
        inside = (z > 0) & (u >= 0) & (v >= 0) & (u < w) & (v < h)
        d = np.zeros(len(z))
        d[inside] = depth[v[inside].astype(int), u[inside].astype(int)]
        seen |= inside & (np.abs(d - z) <= rel_tol * z)
    return seen


class SceneScorer:
    """Ground-truth surface samples of a scene (all, and those some camera sees)."""

    def __init__(self, scene: SceneGroundTruth, count: int = 200_000):
        self.extent = scene.extent
        self.all = sample_surface(trimesh.load(scene.mesh_path, process=False), count, seed=1)
        self.seen = self.all[seen_mask(scene, self.all)]

    def metrics(self, mesh: trimesh.Trimesh, count: int = 100_000) -> dict:
        """Metrics of a ground-truth-frame mesh. Distances in metres; `P@x%` precision,
        `R@x%_{seen,all}` recall and `F@x%_{seen,all}` F-score at x% of the extent.
        Accuracy and precision are always against the whole ground truth."""
        pts = sample_surface(mesh, count, seed=0)
        out: dict = {}
        for tag, ref in (("seen", self.seen), ("all", self.all)):
            m = point_metrics(pts, ref, THRESHOLDS, self.extent)
            out[f"completeness_{tag}"] = m.completeness
            for t, r in zip(THRESHOLDS, m.recall):
                out[f"R@{100 * t:g}%_{tag}"] = r
            if tag == "all":
                out["accuracy"] = m.accuracy
                out.update({f"P@{100 * t:g}%": p for t, p in zip(THRESHOLDS, m.precision)})
        for tag in ("seen", "all"):
            for t in THRESHOLDS:
                p, r = out[f"P@{100 * t:g}%"], out[f"R@{100 * t:g}%_{tag}"]
                out[f"F@{100 * t:g}%_{tag}"] = 2 * p * r / (p + r) if p + r else 0.0
        out["chamfer_seen"] = 0.5 * (out["accuracy"] + out["completeness_seen"])
        return out
