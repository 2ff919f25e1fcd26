"""`lotus-recon app`: a local Gradio page. Drop photos (or a zip) for a scene, or one photo for a
single-image mesh; watch the stages finish; get the 3D model, the report and the downloads.

Every run is the CLI's own command (pipelines.app_runs), in its own folder under --workdir.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
from pathlib import Path

from pipelines.app_runs import (
    SCENE_STAGES,
    AppSettings,
    RunStatus,
    downloads,
    gather_photos,
    image_argv,
    new_run_dir,
    run_cli,
    scene_argv,
)

log = logging.getLogger(__name__)


def stage_markdown(status: RunStatus, stages: tuple[str, ...]) -> str:
    """One line per stage: done, running (the first not done) or waiting; then the outcome."""
    lines = []
    running = next((s for s in stages if s not in status.done_stages), None)
    for stage in stages:
        if stage in status.done_stages:
            mark = "done"
        elif stage == running and not status.finished:
            mark = "running"
        else:
            mark = "waiting" if not status.finished else "not run"
        lines.append(f"- **{stage}**: {mark}")
    if status.finished:
        outcome = "finished" if status.exit_code == 0 else f"failed (exit {status.exit_code})"
        lines.append(f"\n**Run {outcome}**")
    return "\n".join(lines)


def report_frame(out: Path) -> str:
    """The run's report.html in an iframe (its own scripts run inside, offline)."""
    page = out / "report.html"
    if not page.is_file():
        return "<p>No report was written (see the log).</p>"
    doc = html.escape(page.read_text(encoding="utf-8"), quote=True)
    return f'<iframe id="report-frame" srcdoc="{doc}" style="width:100%;height:900px;border:0"></iframe>'


def _updates(status: RunStatus, out: Path, stages: tuple[str, ...]):
    """(stages, log, report, downloads) for the page."""
    text = "\n".join(status.log[-200:])
    if not status.finished:
        return stage_markdown(status, stages), text, "", None
    return stage_markdown(status, stages), text, report_frame(out), downloads(out) or None


def scene_handler(settings: AppSettings):
    def run_scene(files):
        if not files:
            raise _gr().Error("Drop photos or a zip first.")
        run_dir = new_run_dir(settings.workdir, "scene")
        photos = gather_photos([getattr(f, "name", f) for f in files], run_dir / "photos")
        out = run_dir / "out"
        for status in run_cli(scene_argv(settings, photos, out), out):
            yield _updates(status, out, SCENE_STAGES)

    return run_scene


def image_handler(settings: AppSettings):
    def run_image(photo):
        if not photo:
            raise _gr().Error("Drop a photo first.")
        run_dir = new_run_dir(settings.workdir, "image")
        out = run_dir / "out"
        for status in run_cli(image_argv(settings, Path(photo), out), out):
            yield _updates(status, out, ())

    return run_image


def _gr():
    import gradio

    return gradio


def build_app(settings: AppSettings):
    """The gr.Blocks page (not launched)."""
    gr = _gr()
    with gr.Blocks(title="lotus-recon") as demo:
        gr.Markdown("# lotus-recon\nPhotos to 3D geometry with Lotus depth and normal priors.")
        with gr.Tab("Scene (several photos or a zip)"):
            files = gr.File(file_count="multiple", label="Photos or a zip", elem_id="scene-files")
            scene_button = gr.Button(
                "Reconstruct the scene", variant="primary", elem_id="run-scene"
            )
        with gr.Tab("One photo"):
            photo = gr.Image(type="filepath", label="Photo", elem_id="image-photo")
            image_button = gr.Button("Make a mesh", variant="primary", elem_id="run-image")
        with gr.Row():
            stages = gr.Markdown(elem_id="stages")
            log_box = gr.Textbox(label="Log", lines=8, max_lines=8, elem_id="log")
        # The run's report.html: its 3D view (mesh, cameras, points) and the per-view gallery.
        report = gr.HTML(elem_id="report")
        files_out = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")
        outputs = [stages, log_box, report, files_out]
        scene_button.click(scene_handler(settings), files, outputs, api_name="scene")
        image_button.click(image_handler(settings), photo, outputs, api_name="image")
    return demo


def settings_from_args(args: argparse.Namespace) -> AppSettings:
    predictor: list[str] = []
    if args.predictions:
        predictor += ["--predictions", str(Path(args.predictions).resolve())]
    for flag, value in (
        ("--lotus-depth", args.lotus_depth),
        ("--lotus-normal", args.lotus_normal),
        ("--device", args.device),
    ):
        if value:
            predictor += [flag, value]
    config = ["--preset", args.preset] + [x for s in args.overrides for x in ("--set", s)]
    return AppSettings(Path(args.workdir).resolve(), predictor, config)


def run_app_command(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local app calls no one
    gr = _gr()
    settings = settings_from_args(args)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    demo = build_app(settings)
    # System fonts: the default theme would fetch web fonts, and the app must work offline.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])
    demo.queue(default_concurrency_limit=1)  # one reconstruction at a time
    _, url, _ = demo.launch(
        server_name=args.host,
        server_port=args.port,
        prevent_thread_lock=True,
        quiet=True,
        theme=theme,
        allowed_paths=[str(settings.workdir)],
    )
    print(f"lotus-recon app: {url.rstrip('/')}  (Ctrl-C to stop)", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    log.info("app stopped")
    return 0
