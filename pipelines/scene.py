"""The scene pipeline: photo folder -> SfM -> predictions -> alignment -> fusion -> mesh.

Reads as a list of stage calls; each stage skips itself when its workspace folder is done.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import resource
import time
from collections import Counter
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
from pipelines.sequence import (
    check_video_exists,
    intake,
    intake_fingerprint,
    sequence_report,
    sfm_params,
)
from pipelines.stage_align import align_predictions
from pipelines.stage_fuse import fuse_scene
from pipelines.stage_images import check_photo_folder
from pipelines.stage_predict import predict_views, without_failed_views
from pipelines.stage_sfm import load_sfm_report, reconstruct
from pipelines.stage_video import is_sequence_input
from pipelines.view_files import ViewFiles, load_view_arrays
from pipelines.workspace import Stage, Workspace, folder_fingerprint
from recon.atomic import write_json, write_text
from recon.colmap_model import SparseScene
from recon.errors import ConfigError
from recon.fusion import FusionParams, check_device
from recon.fusion_memory import check_fusion_memory, check_voxel_scale
from recon.mesh import clean_mesh, export_cameras, export_mesh, export_point_cloud
from recon.normal_check import convention_report, normal_depth_agreement
from recon.records import Alignment

log = logging.getLogger(__name__)

NORMAL_CHECK_SIZE = 128  # long side (blocks) at which the normal self-check compares


@dataclass
class SceneResult:
    out_dir: Path
    mesh_paths: dict[str, Path]
    report: dict = field(default_factory=dict)


@dataclass
class AlignedScene:
    """The first four stages' results: what both `scene` and `priors` build on."""

    scene: SparseScene
    views: ViewFiles  # usable views' metric depth, normals, confidence (pipelines.view_files)
    alignments: dict[str, Alignment]
    report: dict  # images, sfm, alignment, producer (+ video for clips)
    timestamps: dict[str, float] | None = None  # clips: seconds from the start, by name


def align_scene(
    ws: Workspace,
    photo_dir: Path,
    config: SceneConfig,
    clock: _Clock | None = None,
    colmap_dir: Path | None = None,
    predictor_factory: Callable[[], Predictor] | None = None,
    fusion: FusionParams | None = None,
) -> tuple[AlignedScene, Stage]:
    """images -> sfm -> predict -> align; returns the result and the align stage.
    `clock` collects per-stage seconds (none kept when omitted). `fusion`: settings of the
    fusion to come, whose user-set voxel size is checked as soon as the scene's extent is known."""
    clock = clock or _Clock({})
    # A video file or frame folder yields the same image set (plus timestamps): pipelines.sequence
    s_images = ws.stage("images", None, intake_fingerprint(photo_dir, config, ws.out_dir))
    colmap = None if colmap_dir is None else folder_fingerprint(Path(colmap_dir))
    sfm = sfm_params(photo_dir, config)
    s_sfm = ws.stage("sfm", s_images, {"config": to_dict(sfm), "colmap": colmap})
    s_pred = ws.stage("predict", s_sfm, predictor_fingerprint(config.predictor))
    if not s_images.done:  # the cheapest mistakes are reported first
        check_video_exists(photo_dir)
        if not is_sequence_input(photo_dir, config.video):
            check_photo_folder(photo_dir, ws.out_dir)
    if predictor_factory is None and not s_pred.done:
        # Model, cache and device are checked before the first stage, not after SfM; a resumed
        # run whose predictions are done needs none of them.
        check_predictor(config.predictor)
    check_executor(executor_for(config.executor, config.predictor.kind))

    with clock("images"):
        image_set, timestamps = intake(photo_dir, s_images, config, ws.out_dir)
    with clock("sfm"):
        scene = reconstruct(image_set, s_sfm, sfm, colmap_dir, photo_dir)
    if fusion is not None and fusion.voxel_size is not None:  # fail before predicting
        check_voxel_scale(scene.points_xyz, fusion.voxel_size)
        check_fusion_memory(scene.points_xyz, fusion)
    with clock("predict"):
        factory = predictor_factory or predictor_factory_for(config.predictor, scene)
        executor = executor_for(config.executor, config.predictor.kind)
        predictions = predict_views(scene, factory, s_pred, config.predictor.batch_size, executor)
    scene = without_failed_views(scene, s_pred)

    align_key = to_dict(config.align)
    if s_pred.result().get("failed_predictions"):  # a rerun that predicts them realigns all
        align_key = {**align_key, "without": sorted(s_pred.result()["failed_predictions"])}
    s_align = ws.stage("align", s_pred, align_key)
    with clock("align"):
        aligned = align_predictions(scene, predictions, s_align, config.align)
    alignments = aligned.alignments
    report = {
        "images": {
            "used": len(image_set.names),
            "skipped": [{"name": x.name, "reason": x.reason} for x in image_set.skipped],
        },
        "sfm": load_sfm_report(s_sfm),
        "alignment": {n: a.summary() for n, a in sorted(alignments.items())},
        "producer": s_pred.result().get("producer"),
        "normal_check": check_normals(scene, aligned.views),
        # The folders this run used under OUT/work (the report reads per-view files there).
        "stages": {s.tag: s.path.name for s in (s_images, s_sfm, s_pred, s_align)},
    }
    if s_pred.result().get("failed_predictions"):
        report["failed_predictions"] = s_pred.result()["failed_predictions"]
    warning = most_views_failed(alignments)
    if warning:  # a mesh from a few views is not what the user asked for: say so loudly
        log.warning("%s", warning)
        report["warnings"] = [warning]
    if timestamps is not None:
        report["video"] = sequence_report(
            s_images, scene, predictions.stage_dir, aligned.views.stage_dir, alignments
        )
    return AlignedScene(scene, aligned.views, alignments, report, timestamps), s_align


def check_normals(scene: SparseScene, views: ViewFiles) -> dict | None:
    """The normal-convention self-check (recon.normal_check) on every aligned view with
    normals: predicted normals against the normals of the view's aligned depth. None when no
    view has normals. A failed check is logged as a warning."""
    agreements = {}
    for name in views.names:
        arrays = load_view_arrays(views.stage_dir, name)
        if "normal" not in arrays:
            continue
        with contextlib.suppress(ValueError):  # no pixel to compare: the view says nothing
            depth, K = arrays["depth"], scene.cameras[name].K
            step = max(1, round(max(depth.shape) / NORMAL_CHECK_SIZE))
            agreements[name] = normal_depth_agreement(arrays["normal"], depth, K, step=step)
    if not agreements:
        return None
    result = convention_report(agreements)
    if not result["convention_ok"]:
        log.warning(
            "normals disagree with the aligned depth: median %.0f deg (%.0f deg if negated); "
            "a wrong normal convention? (--predictions files: check normal_convention)",
            result["median_deg"],
            result["median_negated_deg"],
        )
    return result


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
        check_device(config.fusion)
        clock = _Clock(timings)
        aligned, s_align = align_scene(
            ws, photo_dir, config, clock, colmap_dir, predictor_factory, config.fusion
        )
        scene = aligned.scene

        s_fuse = ws.stage("fuse", s_align, fusion_fingerprint(config))
        with clock("fuse"):
            raw = fuse_scene(scene, aligned.views, s_fuse, config.fusion)

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
            "stages": {**aligned.report["stages"], "fuse": s_fuse.path.name},
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


def most_views_failed(alignments: dict[str, Alignment]) -> str | None:
    """One line when fewer than half of the views aligned, with the commonest reason."""
    usable = sum(a.usable for a in alignments.values())
    if not alignments or usable * 2 >= len(alignments):
        return None
    failed = [a for a in alignments.values() if not a.usable]
    negative = sum(1 for a in failed if "scale" in a.message)
    reasons = Counter(a.message.split(" (")[0] or a.status for a in failed)
    text = (
        f"only {usable} of {len(alignments)} views aligned; the mesh comes from those "
        f"({len(failed)} failed, most often: {reasons.most_common(1)[0][0]})"
    )
    if negative * 2 >= len(failed):
        text += (
            f"; {negative} with a negative depth scale: the predicted depth is anti-correlated "
            "with the SfM points (wrong model, or depth/disparity mixed up)"
        )
    return text


def fusion_fingerprint(config: SceneConfig) -> dict:
    """What the fused mesh depends on: the fusion settings, less the memory budget (a budget
    refuses work, it never changes the result)."""
    data = to_dict(config.fusion)
    data.pop("memory_budget_gb", None)
    return data


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


def config_from_args(args: argparse.Namespace, cls: type = SceneConfig):
    """Preset + --config + --set, then the predictor flags (which win). `cls`: the command's
    config dataclass (it has a `predictor` section)."""
    config = resolve(cls, args.preset, args.config, args.overrides)
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
        try:
            predictor = replace(predictor, device=args.device)
        except ValueError as exc:  # the flag is checked like the config key it sets
            raise ConfigError(f"--device: {exc}", fix="use auto, cpu, cuda or mps") from exc
    if not hasattr(config, "executor"):  # `image` runs its model in this process
        return replace(config, predictor=predictor)
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
