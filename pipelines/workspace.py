"""Workspace: one folder per stage, keyed by a hash chained through the stage's parents.

    OUT/work/<tag>-<hash>/     hash = sha1(parent hash + this stage's config), 10 hex digits
        done.json              written last (atomically): the stage finished
        <per-frame files>      each written atomically; a rerun skips frames already there

A changed setting changes the hash of its stage and of everything downstream, so stale results
are never reused; unchanged stages are found and skipped. A leftover temp file from a killed
run carries no final name, so it is never taken as done. A lock refuses a second concurrent run.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon.atomic import TEMP_MARKER, write_json
from recon.errors import WorkspaceError

log = logging.getLogger(__name__)

DONE_FILE = "done.json"


def config_hash(parent: str, config: Any) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(f"{parent}|{text}".encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Stage:
    """One stage's folder. `hash` feeds the stages that depend on it."""

    root: Path
    tag: str
    hash: str

    @property
    def path(self) -> Path:
        return self.root / f"{self.tag}-{self.hash}"

    @property
    def done(self) -> bool:
        return (self.path / DONE_FILE).is_file()

    def result(self) -> dict[str, Any]:
        return json.loads((self.path / DONE_FILE).read_text())

    def begin(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        remove_temp_files(self.path)
        return self.path

    def finish(self, summary: dict[str, Any]) -> None:
        write_json(self.path / DONE_FILE, {"finished": time.time(), **summary})


def folder_fingerprint(folder: Path) -> list[list]:
    """Names, sizes and modification times of a folder's files: changes when its content does."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return [
        [p.relative_to(folder).as_posix(), p.stat().st_size, int(p.stat().st_mtime)]
        for p in sorted(folder.rglob("*"))
        if p.is_file() and TEMP_MARKER not in p.name
    ]


def remove_temp_files(folder: Path) -> int:
    """Delete temp files left by a killed run (they are never outputs)."""
    count = 0
    for path in folder.rglob(f"*{TEMP_MARKER}*"):
        if path.is_file():
            path.unlink()
            count += 1
    return count


class Workspace:
    """The stage folders of one run, and the lock that keeps other runs out."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.work_dir = self.out_dir / "work"
        self._lock_file: Any = None
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            probe = self.work_dir / f".write-probe{TEMP_MARKER}{os.getpid()}"
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as exc:
            raise WorkspaceError(
                f"output folder is not writable ({exc.strerror})",
                path=self.out_dir,
                fix="choose a writable folder with -o, or fix its permissions",
            ) from exc

    def stage(self, tag: str, parent: Stage | None, config: Any) -> Stage:
        return Stage(self.work_dir, tag, config_hash(parent.hash if parent else "", config))

    def lock(self) -> None:
        """Take the workspace lock or fail at once (no waiting, no corruption)."""
        path = self.work_dir / "lock"
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise WorkspaceError(
                    "another run is using this output folder",
                    path=self.out_dir,
                    fix="wait for it to finish, or use another -o folder",
                ) from exc
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Workspace:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()
