"""The scene pipeline: photo folder -> SfM -> predictions -> alignment -> fusion -> mesh.

Reads as a list of stage calls; each stage skips itself when its workspace folder is done.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipelines.config import dump_yaml, resolve, to_dict
from pipelines.executors import check_executor, executor_for
from pipelines.predictor_factory import (
    check_predictor,
    predictor_factory_for,
    predictor_fingerprint,
)
from pipelines.predictors import Predictor
from pipelines.priors import export_aligned_priors, resolve_formats
from pipelines.scene_config import SceneConfig
from pipelines.stage_align import align_predictions
from pipelines.stage_fuse import fuse_scene
from pipelines.stage_images import prepare_images
from pipelines.stage_predict import predict_views, without_failed_views
from pipelines.stage_sfm import load_sfm_report, reconstruct
from pipelines.workspace import Stage, Workspace, folder_fingerprint
from recon.atomic import write_json, write_text
from recon.colmap_model import SparseScene
from recon.mesh import clean_mesh, export_cameras, export_mesh, export_point_cloud
from recon.records import Alignment

log = logging.getLogger(__name__)


@dataclass
class SceneResult:
    out_dir: Path
    mesh_paths: dict[str, Path]
    report: dict = field(default_factory=dict)


@dataclass
class AlignedScene:
    """The first four stages' results: what both `scene` and `priors` build on."""

    scene: SparseScene
    align_dir: Path  # per-view metric depth, normals, confidence (pipelines.stage_align)
    alignments: dict[str, Alignment]
    report: dict  # images, sfm, alignment, producer


def align_scene(
    ws: Workspace,
    photo_dir: Path,
    config: SceneConfig,
    clock: _Clock | None = None,
    colmap_dir: Path | None = None,
    predictor_factory: Callable[[], Predictor] | None = None,
) -> tuple[AlignedScene, Stage]:
    """images -> sfm -> predict -> align; returns the result and the align stage.
    `clock` collects per-stage seconds (none kept when omitted)."""
    clock = clock or _Clock({})
    if predictor_factory is None:
        check_predictor(config.predictor)
    check_executor(executor_for(config.executor, config.predictor.kind))
    s_images = ws.stage(
        "images", None, {"photos": folder_fingerprint(photo_dir), "config": to_dict(config.images)}
    )
    with clock("images"):
        image_set = prepare_images(photo_dir, s_images, config.images)

    colmap = None if colmap_dir is None else folder_fingerprint(Path(colmap_dir))
    s_sfm = ws.stage("sfm", s_images, {"config": to_dict(config.sfm), "colmap": colmap})
    with clock("sfm"):
        scene = reconstruct(image_set, s_sfm, config.sfm, colmap_dir, photo_dir)

    s_pred = ws.stage("predict", s_sfm, predictor_fingerprint(config.predictor))
    with clock("predict"):
        factory = predictor_factory or predictor_factory_for(config.predictor, scene)
        executor = executor_for(config.executor, config.predictor.kind)
        pred_dir = predict_views(scene, factory, s_pred, config.predictor.batch_size, executor)
    scene = without_failed_views(scene, s_pred)

    align_key = to_dict(config.align)
    if s_pred.result().get("failed_predictions"):  # a rerun that predicts them realigns all
        align_key = {**align_key, "without": sorted(s_pred.result()["failed_predictions"])}
    s_align = ws.stage("align", s_pred, align_key)
    with clock("align"):
        alignments = align_predictions(scene, pred_dir, s_align, config.align)
    report = {
        "images": {
            "used": len(image_set.names),
            "skipped": [{"name": x.name, "reason": x.reason} for x in image_set.skipped],
        },
        "sfm": load_sfm_report(s_sfm),
        "alignment": {n: a.summary() for n, a in sorted(alignments.items())},
        "producer": s_pred.result().get("producer"),
    }
    if s_pred.result().get("failed_predictions"):
        report["failed_predictions"] = s_pred.result()["failed_predictions"]
    return AlignedScene(scene, s_align.path, alignments, report), s_align


def run_scene(
    photo_dir: Path,
    out_dir: Path,
    config: SceneConfig,
    colmap_dir: Path | None = None,
    predictor_factory: Callable[[], Predictor] | None = None,
    priors_formats: list[str] | None = None,
) -> SceneResult:
    """Run (or resume) the whole scene pipeline into `out_dir`."""
    photo_dir, out_dir = Path(photo_dir).resolve(), Path(out_dir)
    timings: dict[str, float] = {}
    with Workspace(out_dir) as ws:
        write_text(out_dir / "config.yaml", dump_yaml(config))
        clock = _Clock(timings)
        aligned, s_align = align_scene(ws, photo_dir, config, clock, colmap_dir, predictor_factory)
        scene = aligned.scene

        s_fuse = ws.stage("fuse", s_align, to_dict(config.fusion))
        with clock("fuse"):
            raw = fuse_scene(scene, aligned.align_dir, s_fuse, config.fusion)

        with clock("export"):
            mesh = clean_mesh(raw, config.mesh, scene.points_xyz)
            paths = export_mesh(mesh, out_dir, "mesh", config.mesh.formats)
            export_cameras(out_dir / "cameras.json", scene.cameras, scene.cam_from_world)
            export_point_cloud(scene.points_xyz, scene.points_rgb, out_dir / "sparse_points.ply")
        if priors_formats:
            with clock("priors"):
                export_aligned_priors(aligned, out_dir / "priors", priors_formats)

        report = {
            **aligned.report,
            "fusion": s_fuse.result(),
            "mesh": {"vertices": len(mesh.vertices), "faces": len(mesh.faces)},
            "seconds": timings,
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_mb_after": clock.peaks,
        }
        write_json(out_dir / "report.json", report)
    log.info("mesh: %d faces -> %s", len(mesh.faces), ", ".join(str(p) for p in paths.values()))
    return SceneResult(out_dir=out_dir, mesh_paths=paths, report=report)


def run_priors(
    photo_dir: Path,
    out_dir: Path,
    config: SceneConfig,
    formats: list[str],
    colmap_dir: Path | None = None,
) -> dict:
    """photo folder -> aligned per-view priors in each of `formats` (no fusion)."""
    resolve_formats(formats)  # fail on a typo before any work
    photo_dir, out_dir = Path(photo_dir).resolve(), Path(out_dir)
    timings: dict[str, float] = {}
    with Workspace(out_dir) as ws:
        write_text(out_dir / "config.yaml", dump_yaml(config))
        clock = _Clock(timings)
        aligned, _ = align_scene(ws, photo_dir, config, clock, colmap_dir)
        with clock("priors"):
            export_aligned_priors(aligned, out_dir, formats)
        report = {**aligned.report, "seconds": timings, "peak_rss_mb": peak_rss_mb()}
        write_json(out_dir / "report.json", report)
    return report


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Clock:
    """Times named stages into a dict (seconds), and notes the peak RSS (MB) after each."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings
        self.peaks: dict[str, float] = {}

    def __call__(self, name: str) -> _Clock:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self._name] = round(time.perf_counter() - self._start, 3)
        # The process peak so far: the stage that raises it is the one that needs the memory.
        self.peaks[self._name] = round(peak_rss_mb(), 1)


def config_from_args(args: argparse.Namespace) -> SceneConfig:
    """Preset + --config + --set, then the predictor flags (which win)."""
    config = resolve(SceneConfig, args.preset, args.config, args.overrides)
    predictor = config.predictor
    if getattr(args, "predictions", None):
        predictor = replace(
            predictor, kind="file", predictions=str(Path(args.predictions).resolve())
        )
    if getattr(args, "lotus_depth", None):
        predictor = replace(predictor, kind="lotus", depth_model=args.lotus_depth)
    if getattr(args, "lotus_normal", None):
        predictor = replace(predictor, normal_model=args.lotus_normal)
    if getattr(args, "device", None):
        predictor = replace(predictor, device=args.device)
    executor = config.executor
    if getattr(args, "executor", None):
        executor = replace(executor, kind=args.executor)
    if getattr(args, "ray_address", None):
        executor = replace(executor, kind="ray", address=args.ray_address)
    return replace(config, predictor=predictor, executor=executor)


def _log_predictor(config: SceneConfig) -> None:
    if config.predictor.kind == "file":
        log.info("depth/normals: precomputed predictions from %s", config.predictor.predictions)


def run_scene_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _log_predictor(config)
    if args.priors:
        resolve_formats(args.priors)
    run_scene(
        args.photo_dir, args.output, config, colmap_dir=args.colmap, priors_formats=args.priors
    )
    return 0


def run_priors_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _log_predictor(config)
    run_priors(args.photo_dir, args.output, config, args.formats, colmap_dir=args.colmap)
    return 0
