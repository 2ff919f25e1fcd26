"""What the web app runs: the CLI's own commands in a worker thread, one folder per run.

No gradio here: a run is `python -m pipelines.cli ...` exactly as a user would type it (same
presets, workspace, report), and its progress is read from the workspace (a stage is done when
its OUT/work/<stage>-<hash>/done.json exists) and from the run's log lines.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recon.errors import InputError

SCENE_STAGES = ("images", "sfm", "predict", "align", "fuse")
_counter = itertools.count(1)


@dataclass
class AppSettings:
    """What `lotus-recon app` was started with; passed on to every run."""

    workdir: Path
    predictor_args: list[str] = field(default_factory=list)  # --predictions/--lotus-*/--device
    config_args: list[str] = field(default_factory=list)  # --preset / --set


def new_run_dir(workdir: Path, kind: str) -> Path:
    """workdir/<time>-<n>-<kind>: unique per run, sortable by start time."""
    path = Path(workdir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{next(_counter)}-{kind}"
    path.mkdir(parents=True)
    return path


def gather_photos(files: list[str | Path], dest: Path) -> Path:
    """Uploaded photos and/or zip archives -> one photo folder `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        f = Path(f)
        if zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as archive:
                archive.extractall(dest)  # zipfile drops absolute and '..' path parts
        else:
            shutil.copy2(f, dest / f.name)
    if not any(p.is_file() for p in dest.rglob("*")):
        raise InputError("no photos were uploaded", path=dest, fix="drop photos or a zip")
    return dest


@dataclass
class RunStatus:
    """A snapshot of a run for the page."""

    done_stages: list[str]
    log: list[str]
    finished: bool
    exit_code: int | None


def run_cli(argv: list[str], out: Path, poll: float = 0.5) -> Iterator[RunStatus]:
    """Run `lotus-recon ARGV` in a child process; yield its status every `poll` s and at the end.

    A child, not a thread: the run gets its own signals, logging and memory (freed when it
    ends), exactly as from a shell.
    """
    root = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "pipelines.cli", *argv]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    lines: list[str] = []
    reader = threading.Thread(target=_read_log, args=(proc.stderr, lines), daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            time.sleep(poll)
            yield RunStatus(finished_stages(out), list(lines), False, None)
    except GeneratorExit:  # the page went away: stop the run (rerunning resumes it)
        proc.terminate()
        proc.wait()
        raise
    proc.wait()
    reader.join(5)
    yield RunStatus(finished_stages(out), list(lines), True, proc.returncode)


def _read_log(stream, lines: list[str]) -> None:
    """Keep the log lines of the child's stderr (progress bars redraw with '\\r': dropped)."""
    for raw in stream:
        for part in raw.replace("\r", "\n").splitlines():
            if part.startswith(("INFO ", "WARNING ", "ERROR ")):
                lines.append(part.strip())


def finished_stages(out: Path) -> list[str]:
    work = Path(out) / "work"
    return [t for t in SCENE_STAGES if any(work.glob(f"{t}-*/done.json"))]


def scene_argv(settings: AppSettings, photos: Path, out: Path) -> list[str]:
    return ["scene", str(photos), "-o", str(out), *settings.predictor_args, *settings.config_args]


def image_argv(settings: AppSettings, photo: Path, out: Path) -> list[str]:
    # The image command reads predictions per photo stem too, so the same flags apply.
    return ["image", str(photo), "-o", str(out), *settings.predictor_args, *settings.config_args]


def downloads(out: Path) -> list[str]:
    """Files worth offering: meshes, report, cameras, points, depth; priors as one zip."""
    names = ("mesh.glb", "mesh.ply", "mesh.obj", "report.html", "report.json", "cameras.json")
    files = [out / n for n in (*names, "sparse_points.ply", "depth.npz", "single_image.json")]
    found = [str(p) for p in files if p.is_file()]
    priors = out / "priors"
    if priors.is_dir():
        found.append(shutil.make_archive(str(out / "priors"), "zip", priors))
    return found
