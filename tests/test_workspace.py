import subprocess
import sys

import pytest

from pipelines.workspace import Workspace, remove_temp_files
from recon.atomic import write_bytes, write_json
from recon.errors import WorkspaceError


def test_stage_hash_chains_through_parents(tmp_path):
    ws = Workspace(tmp_path)
    a1 = ws.stage("sfm", None, {"mapper": "incremental"})
    b1 = ws.stage("align", a1, {"k": 1})
    a2 = ws.stage("sfm", None, {"mapper": "global"})
    b2 = ws.stage("align", a2, {"k": 1})
    assert a1.hash != a2.hash
    assert b1.hash != b2.hash  # same own config, changed parent => redo
    assert ws.stage("align", a1, {"k": 1}).path == b1.path  # same inputs => same folder


def test_done_only_after_finish_and_temp_files_never_count(tmp_path):
    stage = Workspace(tmp_path).stage("predict", None, {})
    out = stage.begin()
    assert not stage.done
    # A run killed mid-write leaves a temp file under a non-final name.
    (out / "0001.npz.tmp-abc.npz").write_bytes(b"partial")
    assert not (out / "0001.npz").exists()
    assert remove_temp_files(out) == 1
    write_bytes(out / "0001.npz", b"data")
    stage.finish({"n": 1})
    assert stage.done and stage.result()["n"] == 1


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    class Boom:  # not JSON serialisable: the writer fails half way
        pass

    with pytest.raises(TypeError):
        write_json(tmp_path / "x.json", {"a": Boom()})
    assert list(tmp_path.iterdir()) == []


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    with Workspace(tmp_path):
        code = (
            "import sys; from pipelines.workspace import Workspace\n"
            "from recon.errors import WorkspaceError\n"
            f"try:\n    Workspace(r'{tmp_path}').lock()\nexcept WorkspaceError as e:\n"
            "    print(e); sys.exit(7)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 7, proc.stderr
        assert "another run" in proc.stdout
    Workspace(tmp_path).lock()  # released after the first run ends


def test_unwritable_output_is_a_workspace_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(WorkspaceError, match="not writable"):
        Workspace(blocker / "out")
