"""Read what a run wrote into one record for the report, the viewer and the app.

Nothing here recomputes geometry: the mesh, cameras, sparse points, predictions and aligned
depths are the files the run left in OUT and OUT/work/<stage>-<hash>/.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

STAGE_TAGS = ("images", "sfm", "predict", "align", "fuse")


@dataclass
class RunData:
    """A finished run's outputs. Paths are None when the run did not write them."""

    out_dir: Path
    kind: str  # "scene" | "priors" | "image"
    report: dict  # OUT/report.json (scene, priors) or OUT/single_image.json (image)
    cameras: dict[str, dict] = field(default_factory=dict)  # cameras.json "images"
    mesh_path: Path | None = None
    sparse_path: Path | None = None
    stages: dict[str, Path] = field(default_factory=dict)  # tag -> OUT/work/<tag>-<hash>
    image_root: Path | None = None  # folder of the images SfM used (names are relative to it)

    @property
    def view_names(self) -> list[str]:
        """Registered views (cameras.json), else the views the alignment table lists."""
        if self.cameras:
            return sorted(self.cameras)
        return sorted(self.report.get("alignment", {}))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).is_file() else {}


def find_stage(out_dir: Path, tag: str, report: dict) -> Path | None:
    """The stage folder this run used: named in report.json, else the newest finished one."""
    work = Path(out_dir) / "work"
    named = report.get("stages", {}).get(tag)
    if named and (work / named).is_dir():
        return work / named
    done = [p for p in work.glob(f"{tag}-*") if (p / "done.json").is_file()]
    if not done:
        return None
    return max(done, key=lambda p: (p / "done.json").stat().st_mtime)


def load_run(out_dir: str | Path, kind: str = "scene") -> RunData:
    """Everything the report needs from `out_dir` (missing parts left empty)."""
    out_dir = Path(out_dir)
    if kind == "image":
        return RunData(
            out_dir=out_dir,
            kind=kind,
            report=read_json(out_dir / "single_image.json"),
            mesh_path=_first_existing(out_dir, ("mesh.ply", "mesh.glb", "mesh.obj")),
        )
    report = read_json(out_dir / "report.json")
    stages = {t: p for t in STAGE_TAGS if (p := find_stage(out_dir, t, report)) is not None}
    image_root = None
    if "sfm" in stages:
        root = read_json(stages["sfm"] / "scene.json").get("image_root")
        image_root = Path(root) if root else None
    return RunData(
        out_dir=out_dir,
        kind=kind,
        report=report,
        cameras=read_json(out_dir / "cameras.json").get("images", {}),
        mesh_path=_first_existing(out_dir, ("mesh.ply", "mesh.glb", "mesh.obj")),
        sparse_path=_first_existing(out_dir, ("sparse_points.ply",)),
        stages=stages,
        image_root=image_root,
    )


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an npz file ({} when it is absent)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def view_npz(run: RunData, tag: str, name: str) -> dict[str, np.ndarray]:
    """A view's arrays from a stage: predict (values, normal, confidence) or align (depth,
    normal, confidence; depth in world units, 0 = unknown)."""
    from pipelines.view_files import prediction_path

    stage = run.stages.get(tag)
    return {} if stage is None else load_npz(prediction_path(stage, name))


def load_sparse_scene(run: RunData):
    """The SfM model (recon.colmap_model.SparseScene) the run aligned to, or None."""
    if "sfm" not in run.stages:
        return None
    from pipelines.stage_sfm import load_sparse_scene as _load
    from pipelines.workspace import Stage

    folder = run.stages["sfm"]
    tag, digest = folder.name.split("-", 1)
    try:
        return _load(Stage(folder.parent, tag, digest))
    except Exception as exc:  # a damaged model leaves the gallery without sparse points
        log.debug("sparse model unreadable: %s", exc)
        return None
