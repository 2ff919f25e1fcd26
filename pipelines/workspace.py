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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon.atomic import TEMP_MARKER, write_json
from recon.errors import OutputNotWritableError, WorkspaceBusyError

log = logging.getLogger(__name__)

DONE_FILE = "done.json"
# Called with the output folder once a run holds its lock. The CLI starts writing OUT/log.txt
# only then, so a run refused by the lock never writes into the running run's log.
LOCK_LISTENERS: list[Callable[[Path], None]] = []


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


def folder_fingerprint(folder: Path, exclude: Path | None = None) -> list[list]:
    """Names, sizes and modification times of a folder's files: changes when its content does.

    Symlinked folders are followed (each real folder once, like the photo intake); `exclude`
    (the run's own output folder inside the photo folder) is left out.
    """
    folder = Path(folder)
    if not folder.exists():
        return []
    skip = None if exclude is None else Path(exclude).resolve()
    rows, seen = [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        info = os.stat(top)
        if (info.st_dev, info.st_ino) in seen or (skip is not None and Path(top).resolve() == skip):
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs.sort()
        for name in files:
            path = Path(top) / name
            if TEMP_MARKER not in name and path.is_file():
                stat = path.stat()
                rows.append([path.relative_to(folder).as_posix(), stat.st_size, int(stat.st_mtime)])
    return sorted(rows)


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
            raise OutputNotWritableError(
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
                raise WorkspaceBusyError(
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
        for listener in list(LOCK_LISTENERS):
            listener(self.out_dir)

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
