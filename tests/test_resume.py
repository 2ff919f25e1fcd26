"""Killed and repeated runs: a rerun resumes, redoes only what was unfinished, and ends with
the same bytes as a run that was never stopped. Two runs into one folder: the second is
refused.

Every run is a real `lotus-recon scene` process (real SfM on a few sample views, simulated
predictions, coarse fusion) stopped by a real signal at a known call (tests/interrupt.py).
SfM runs on one thread: COLMAP's multi-threaded mapping differs from run to run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from pipelines.workspace import Workspace
from recon.atomic import TEMP_MARKER
from recon.fusion import canonical_order
from tests.cli_helpers import FAST, ROOM, copy_photos, room_names, simulate_predictions, stage_dirs

REPO = ROOM.parents[1]
DETERMINISTIC = [*FAST, "--set", "sfm.num_threads=1", "--priors", "nerfstudio"]
OUTPUTS = ("mesh.ply", "mesh.glb", "mesh.obj", "cameras.json", "sparse_points.ply")
STAGES = ("images", "sfm", "predict", "align", "fuse")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    photos = copy_photos(root / "photos", room_names(6))
    preds = simulate_predictions(root / "preds")
    reference = root / "reference"
    proc = _run(photos, preds, reference)
    assert proc.returncode == 0, proc.stderr
    return {"photos": photos, "preds": preds, "reference": reference}


def _argv(photos: Path, preds: Path, out: Path) -> list[str]:
    return ["-q", "scene", str(photos), "-o", str(out), "--predictions", str(preds), *DETERMINISTIC]


def _run(photos: Path, preds: Path, out: Path, stop: tuple | None = None, **kw):
    """One CLI process; `stop` = (signal, module:attr, nth, match) from tests/interrupt.py."""
    if stop is None:
        cmd = [sys.executable, "-m", "pipelines.cli", *_argv(photos, preds, out)]
    else:
        cmd = [sys.executable, "-m", "tests.interrupt", *map(str, stop), "--"]
        cmd += _argv(photos, preds, out)
    if kw.pop("background", False):
        return subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def _outputs(out: Path) -> dict[str, bytes]:
    """Final files by name; the output folder's own path (listed in priors.json) masked.
    report.json is compared without its clock readings (times, memory peaks)."""
    paths = [out / name for name in OUTPUTS] + sorted((out / "priors").rglob("*"))
    files = {
        p.relative_to(out).as_posix(): p.read_bytes().replace(str(out).encode(), b"OUT")
        for p in paths
        if p.is_file()
    }
    report = json.loads((out / "report.json").read_text())
    text = json.dumps(_without_clocks(report), sort_keys=True).replace(str(out), "OUT")
    files["report.json"] = text.encode()
    return files


CLOCKS = ("seconds", "finished", "peak_rss_mb", "peak_rss_mb_after")


def _without_clocks(data: object) -> object:
    if isinstance(data, dict):
        return {k: _without_clocks(v) for k, v in data.items() if k not in CLOCKS}
    if isinstance(data, list):
        return [_without_clocks(v) for v in data]
    return data


def _done(out: Path) -> dict[str, bool]:
    return {tag: any((d / "done.json").is_file() for d in stage_dirs(out, tag)) for tag in STAGES}


def _snapshot(out: Path, redo: str) -> dict[Path, int]:
    """Finished files the rerun must keep (modification times, ns); `redo` is the killed
    stage when it is redone as a whole (SfM, fusion)."""
    kept = {}
    for path in (out / "work").rglob("*"):
        stage = path.relative_to(out / "work").parts[0]
        if path.is_file() and TEMP_MARKER not in path.name and path.name != "lock":
            if not stage.startswith(f"{redo}-"):
                kept[path] = path.stat().st_mtime_ns
    return kept


# (stage killed, call that kills it, nth matching call, match, stages done before it)
KILLS = [
    ("images", "pipelines.stage_images:normalize_image", 3, "", 0),
    ("sfm", "recon.sfm:_map", 1, "", 1),
    ("predict", "os:replace", 3, "/predict-", 2),  # mid-write: its temp file is left behind
    ("align", "pipelines.stage_align:align_view", 4, "", 3),
    ("fuse", "recon.fusion:integrate_view", 3, "", 4),
    ("export", "pipelines.scene:export_cameras", 1, "", 5),
]


@pytest.mark.parametrize("stage,target,nth,match,done", KILLS, ids=[k[0] for k in KILLS])
def test_sigkill_then_rerun_resumes_to_identical_outputs(
    inputs, tmp_path, stage, target, nth, match, done
):
    out = tmp_path / "out"
    killed = _run(inputs["photos"], inputs["preds"], out, ("SIGKILL", target, nth, match))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(_done(out).values()) == [True] * done + [False] * (len(STAGES) - done)
    assert not (out / "report.json").exists()  # the run is not taken as finished
    if stage == "predict":
        leftovers = list(stage_dirs(out, "predict")[0].glob(f"*{TEMP_MARKER}*"))
        assert len(leftovers) == 1 and not (leftovers[0].parent / "0002.npz").exists()
    kept = _snapshot(out, stage if stage in ("sfm", "fuse") else "")

    rerun = _run(inputs["photos"], inputs["preds"], out)
    assert rerun.returncode == 0, rerun.stderr
    assert all(_done(out).values())
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished work was not redone
    assert not list((out / "work").rglob(f"*{TEMP_MARKER}*"))
    assert _outputs(out) == _outputs(inputs["reference"])


def test_sigterm_unwinds_cleanly_and_the_rerun_matches(inputs, tmp_path):
    out = tmp_path / "out"
    stop = ("SIGTERM", "pipelines.stage_predict:save_prediction", 3, "")
    stopped = _run(inputs["photos"], inputs["preds"], out, stop)
    assert stopped.returncode == 128 + signal.SIGTERM
    lines = stopped.stderr.strip().splitlines()
    assert lines == ["ERROR interrupted; rerun the same command to resume where it stopped"]
    predict = stage_dirs(out, "predict")[0]
    assert sorted(p.name for p in predict.iterdir()) == ["0000.npz", "0001.npz"]
    Workspace(out).lock()  # released: the next run can start
    rerun = _run(inputs["photos"], inputs["preds"], out)
    assert rerun.returncode == 0, rerun.stderr
    assert _outputs(out) == _outputs(inputs["reference"])


def test_second_run_into_the_same_folder_is_refused(inputs, tmp_path):
    out = tmp_path / "out"
    # The first run pauses itself half way through the predictions, holding the lock.
    stop = ("SIGSTOP", "pipelines.stage_predict:save_prediction", 3, "")
    first = _run(inputs["photos"], inputs["preds"], out, stop, background=True)
    try:
        _wait_stopped(first.pid)
        second = _run(inputs["photos"], inputs["preds"], out)
        assert second.returncode == 1
        line = second.stderr.strip()
        assert line.startswith("ERROR ") and "\n" not in line
        assert str(out) in line and "another run is using this output folder" in line
        assert "fix:" in line
        assert "another run" not in (out / "log.txt").read_text()  # the first run's log
    finally:
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=300) == 0, first.stderr.read()
    assert _outputs(out) == _outputs(inputs["reference"])


def _wait_stopped(pid: int) -> None:
    """Block until the process reports state T (stopped); no clock involved in the test."""
    while True:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        if state == "Z":
            raise AssertionError("the first run exited before pausing")
        subprocess.run(["sleep", "0.1"], check=True)


def test_canonical_order_makes_equal_meshes_equal_arrays():
    """The same triangles listed in another order (as a re-run's hash map gives them) come out
    identical, with every triangle's winding kept."""
    mesh = trimesh.creation.icosphere(subdivisions=2)
    colours = np.random.default_rng(0).integers(0, 255, (len(mesh.vertices), 4), dtype=np.uint8)
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(mesh.vertices))
    inverse = np.argsort(perm)
    faces = inverse[mesh.faces][rng.permutation(len(mesh.faces))]
    faces = np.roll(faces, 1, axis=1)  # same triangles, another starting corner
    a = canonical_order(mesh.vertices, mesh.faces, colours)
    b = canonical_order(mesh.vertices[perm], faces, colours[perm])
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    normals = trimesh.Trimesh(a[0], a[1], process=False).face_normals
    centres = a[0][a[1]].mean(axis=1)
    assert np.all((normals * centres).sum(axis=1) > 0)  # still facing outwards
