"""The normal-convention self-check: report.json says whether predicted normals agree with the
normals of the aligned depth, and flags normals given in the wrong convention (~180 deg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.normal_check import NormalAgreement, convention_report
from tests.cli_helpers import FAST, copy_photos, report, room_names, run_cli, simulate_predictions


def relabel(src: Path, dst: Path, convention: str) -> Path:
    """The prediction files of `src` with their normal_convention replaced (arrays unchanged)."""
    dst.mkdir()
    for path in sorted(src.glob("*.npz")):
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["normal_convention"] = np.array(convention)
        np.savez(dst / path.name, **arrays)
    return dst


def test_cli_reports_agreeing_normals_and_flags_a_flipped_convention(tmp_path, capfd):
    photos = copy_photos(tmp_path / "photos", room_names(6))
    good = simulate_predictions(tmp_path / "pred")  # OpenCV normals, labelled "opencv"
    flipped = relabel(good, tmp_path / "pred_flipped", "lotus")  # now read as negated
    out = tmp_path / "out"  # one output folder: the second run reuses the first's SfM
    args = ["scene", photos, "-o", out, *FAST, "--set", "sfm.num_threads=1"]

    code, err = run_cli([*args, "--predictions", good], capfd)
    assert code == 0, err
    check = report(out)["normal_check"]
    assert check["views_checked"] >= 5 and check["convention_ok"] and not check["flagged_views"]
    assert check["median_deg"] < 45 and check["median_negated_deg"] > 135
    assert "normals disagree" not in err

    # `priors` aligns like `scene` but does not fuse: with normals facing away from the camera
    # every fusion weight is 0, and `scene` would stop at "no view contributed to the TSDF".
    priors = ["priors", photos, "-o", out, "--format", "npz", *args[4:]]
    code, err = run_cli([*priors, "--predictions", flipped], capfd)
    assert code == 0, err
    check = report(out)["normal_check"]
    assert not check["convention_ok"]
    assert check["median_deg"] > 135 and check["median_negated_deg"] < 45
    assert len(check["flagged_views"]) == check["views_checked"]
    assert "normals disagree with the aligned depth" in err


def test_scene_verdict_follows_the_views_majority():
    ok, bad = NormalAgreement(12.0, 168.0, 100), NormalAgreement(170.0, 10.0, 100)
    result = convention_report({"a": ok, "b": ok, "c": bad})
    assert result["convention_ok"] and result["flagged_views"] == ["c"]
    assert result["views_checked"] == 3 and result["median_deg"] == 12.0
    assert not convention_report({"a": bad, "b": bad, "c": ok})["convention_ok"]
