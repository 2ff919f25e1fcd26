"""Every row of the README's exit-code table, produced by a real case through the CLI."""

from __future__ import annotations

import os
import re
import signal

import pytest

from pipelines.cli_errors import EXIT_DISK, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE
from tests.cli_helpers import ROOM, run_cli
from tests.cli_helpers import scene_argv as _scene

README = ROOM.parents[1] / "README.md"


def readme_codes() -> dict[int, str]:
    """{code: meaning} from the README's exit-code table."""
    text = README.read_text()
    table = text[text.index("| code | meaning |") :].split("\n\n")[0]
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \| (.+) \|$", table, re.M)}


def _stage_raising(monkeypatch, action):
    """The first stage (image intake) replaced by `action`: the run stops there."""
    import pipelines.scene

    def first_stage(*args, **kwargs):
        action()

    monkeypatch.setattr(pipelines.scene, "intake", first_stage)


def _boom():
    raise RuntimeError("a bug")


def case(code: int, sample, tmp_path, monkeypatch) -> list:
    """Argv of a run that must end with `code` (signal cases also patch the first stage)."""
    out = tmp_path / "out"
    if code == EXIT_INPUT:
        return ["-q", "scene", tmp_path / "nope", "-o", out]
    if code == EXIT_USAGE:
        return ["scene", sample["photos"], "-o", out, "--no-such-option"]
    if code == EXIT_DISK:
        (tmp_path / "file").write_text("a file, not a folder")
        return _scene(sample, tmp_path / "file" / "out")
    if code == EXIT_INTERNAL:
        _stage_raising(monkeypatch, _boom)
    elif code == 128 + signal.SIGINT:
        _stage_raising(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGINT))
    elif code == 128 + signal.SIGTERM:
        _stage_raising(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGTERM))
    elif code != EXIT_OK:
        raise AssertionError(f"README lists exit code {code}, which no case produces")
    return _scene(sample, out)


def test_readme_table_lists_the_codes_the_cli_uses():
    assert sorted(readme_codes()) == [0, 1, 2, 3, 70, 130, 143]


@pytest.mark.parametrize("code", sorted(readme_codes()))
def test_every_exit_code_in_the_readme(sample, tmp_path, capfd, monkeypatch, code):
    argv = case(code, sample, tmp_path, monkeypatch)
    try:
        got, err = run_cli(argv, capfd)
    except SystemExit as stop:  # argparse's usage errors
        got, err = stop.code, capfd.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    if code == EXIT_USAGE:  # argparse's usage line and its error
        assert "error: unrecognized arguments: --no-such-option" in err
    elif code != EXIT_OK:
        assert [line for line in err.splitlines() if line.startswith("ERROR ")], err
