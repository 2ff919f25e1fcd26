"""Fixtures shared by the bad-input, report, viewer and app test files."""

from __future__ import annotations

import pytest

from tests.cli_helpers import FAST, copy_photos, room_names, simulate_predictions, stage_dirs


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """Six photos, predictions for every view, and the COLMAP model of one clean run."""
    root = tmp_path_factory.mktemp("bad_input")
    photos = copy_photos(root / "photos", room_names(6))
    preds = simulate_predictions(root / "preds")
    out = root / "clean"
    from pipelines.cli import main

    argv = ["-q", "scene", str(photos), "-o", str(out), "--predictions", str(preds), *FAST]
    assert main(argv) == 0
    model = stage_dirs(out, "sfm")[0] / "model_raw"
    return {"root": root, "photos": photos, "preds": preds, "model": model, "clean": out}


@pytest.fixture(scope="session")
def scene_run(sample):
    """The clean sample run as the report, viewer and app tests see it (its report.html)."""
    return {"out": sample["clean"], "photos": sample["photos"], "preds": sample["preds"]}
