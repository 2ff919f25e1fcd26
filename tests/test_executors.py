"""The Ray executor against the local one: same files, dead workers retried, done views skipped.

One Ray session for the module (2 CPUs, no dashboard) keeps the start-up cost to one start; the
CLI runs in this process and joins it. The reference is a local `priors` run with the bundled
tiny Lotus models on six photos of the sample scene; the Ray runs resume its workspace with the
prediction stage emptied, so only prediction (and what follows it) is redone.
"""

from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import FAST, copy_photos, report, room_names, run_cli, stage_dirs

ray = pytest.importorskip("ray", reason='needs the Ray extra: pip install "lotus-recon[ray]"')

ROOT = Path(__file__).resolve().parents[1]
DEPTH, NORMAL = ROOT / "models" / "lotus-depth-tiny", ROOT / "models" / "lotus-normal-tiny"
TINY = ["--lotus-depth", DEPTH, "--lotus-normal", NORMAL, "--set", "predictor.processing_res=128"]
RAY = ["--executor", "ray", "--set", "executor.workers=2", "--set", "executor.cpus_per_worker=1"]
RAY += ["--set", "executor.views_per_task=2"]


@pytest.fixture(scope="module")
def ray_session():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A local run: photos, output folder, and its prediction files by name."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each Ray worker; also avoids oversubscribing CI's cores
    root = tmp_path_factory.mktemp("executors")
    photos = copy_photos(root / "photos", room_names(6))
    out = root / "local"
    argv = ["-q", "priors", photos, "-o", out, "--format", "nerfstudio", *TINY, *FAST]
    try:
        code = _main(argv)
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return {"photos": photos, "out": out, "argv": argv, "preds": _predictions(out)}


def _main(argv: list) -> int:
    from pipelines.cli import main

    return main([str(a) for a in argv])


def _predictions(out: Path) -> dict[str, dict[str, np.ndarray]]:
    (folder,) = stage_dirs(out, "predict")
    files = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as data:
            files[path.name] = {k: data[k] for k in data.files}
    return files


def _assert_same_predictions(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name, arrays in want.items():
        assert sorted(got[name]) == sorted(arrays), name
        for key, value in arrays.items():
            if value.dtype.kind == "f":
                np.testing.assert_allclose(got[name][key], value, atol=1e-5, err_msg=name)
            else:
                assert got[name][key] == value, (name, key)


def _copy_without_predictions(reference: dict, dst: Path, keep: int = 0) -> Path:
    """The reference workspace with its prediction stage emptied but for `keep` files, and
    every stage after it removed."""
    shutil.copytree(reference["out"], dst)
    (pred_dir,) = stage_dirs(dst, "predict")
    (pred_dir / "done.json").unlink()
    for path in sorted(pred_dir.glob("*.npz"))[keep:]:
        path.unlink()
    for tag in ("align",):
        for folder in stage_dirs(dst, tag):
            shutil.rmtree(folder)
    return pred_dir


def test_ray_executor_writes_the_local_executors_files(ray_session, reference, tmp_path, capfd):
    """Two of six views done: the other four go to two Ray workers, and the resulting stage
    folder holds the local run's files (the two done ones not rewritten)."""
    out = tmp_path / "ray"
    pred_dir = _copy_without_predictions(reference, out, keep=2)
    kept = {p.name: p.stat().st_mtime_ns for p in pred_dir.glob("*.npz")}
    assert len(kept) == 2
    argv = [a if a != reference["out"] else out for a in reference["argv"]]
    code, err = run_cli([*argv[1:], *RAY], capfd)  # without -q: the log says what was skipped
    assert code == 0, err
    assert "2 of 6 views already done" in err
    assert {n: (pred_dir / n).stat().st_mtime_ns for n in kept} == kept
    _assert_same_predictions(_predictions(out), reference["preds"])
    assert "failed_predictions" not in report(out)
    # The pipeline went on from there: every view aligned, as in the local run.
    assert report(out)["alignment"].keys() == report(reference["out"])["alignment"].keys()


def _frames(photos: Path, names: list[str]):
    from recon.images import load_rgb
    from recon.records import Camera, Frame

    def load(name: str) -> Frame:
        image = load_rgb(photos / name)
        h, w = image.shape[:2]
        return Frame(name, image, Camera(np.diag([300.0, 300.0, 1.0]), w, h))

    return load


def _crashing_factory(marker: Path, victim: str, raising: str):
    """The tiny Lotus predictor, except that the first batch holding `victim` kills its
    worker process (marker written first), and every batch holding `raising` raises."""
    from pipelines.lotus_predictor import LotusPredictor

    inner = LotusPredictor.from_checkpoints(
        str(DEPTH), str(NORMAL), device="cpu", processing_res=128, progress=False
    )

    class Crashing:
        name, space = inner.name, inner.space

        def predict(self, frames):
            names = [f.name for f in frames]
            if raising in names:
                raise RuntimeError(f"cannot predict {raising}")
            if victim in names and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)  # the worker process dies, as on an out-of-memory kill
            return inner.predict(frames)

    return Crashing()


def _run_ray(reference: dict, factory, **config) -> tuple[object, dict]:
    from pipelines.executors import ExecutorConfig, run_predictions

    names = room_names(6)
    written: dict[str, object] = {}
    executor = ExecutorConfig(kind="ray", workers=2, cpus_per_worker=1, views_per_task=2, **config)
    result = run_predictions(
        executor,
        names,
        _frames(reference["photos"], names),
        factory,
        lambda name, pred: written.setdefault(name, pred),
        batch_size=2,
    )
    return result, written


def test_dead_workers_are_replaced_and_failing_views_reported(ray_session, reference, tmp_path):
    """0004's first batch kills its worker (retried on the restarted worker); 0002 raises on
    every try (reported, the run goes on)."""
    marker = tmp_path / "killed"
    factory = partial(_crashing_factory, marker, "0004.jpg", raising="0002.jpg")
    result, written = _run_ray(reference, factory, max_restarts=2, view_attempts=2)
    assert marker.exists()  # a worker did die holding 0004.jpg
    assert list(result.failed) == ["0002.jpg"]
    assert "cannot predict 0002.jpg" in result.failed["0002.jpg"]
    assert sorted(written) == [n for n in room_names(6) if n != "0002.jpg"]
    # The retried view's prediction is the one this process makes for it.
    load = _frames(reference["photos"], ["0004.jpg"])
    (want,) = factory().predict([load("0004.jpg")])
    np.testing.assert_allclose(written["0004.jpg"].values, want.values, atol=1e-5)
    np.testing.assert_allclose(written["0004.jpg"].normal, want.normal, atol=1e-5)


def test_missing_ray_extra_is_one_line_naming_the_install(reference, tmp_path, capfd, monkeypatch):
    from tests.cli_helpers import assert_one_line_error

    monkeypatch.setitem(os.sys.modules, "ray", None)  # `import ray` now raises ImportError
    out = tmp_path / "noray"
    argv = [a if a != reference["out"] else out for a in reference["argv"]]
    code, err = run_cli([*argv, "--executor", "ray"], capfd)
    assert code == 1
    assert_one_line_error(err, 'pip install "lotus-recon[ray]"')
    assert not stage_dirs(out, "sfm")  # refused before any work
