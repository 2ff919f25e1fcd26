"""OUT/log.txt, written only once this run owns the output folder.

Records are held in memory until the workspace lock is taken (`Workspace.lock` calls the
listeners in `pipelines.workspace.LOCK_LISTENERS`), then written out and streamed. A run refused because another run holds
the folder discards them, so it never writes into the other run's log. A run that stops before
taking the lock (a config error) writes its log when the CLI calls `open()` at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path


class RunLog(logging.Handler):
    """A file handler for `path` that buffers until `open()` (called when the lock is taken)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self._buffer: list[logging.LogRecord] = []
        self._file: logging.FileHandler | None = None
        self._discarded = False

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802 (logging API)
        super().setFormatter(fmt)
        if self._file is not None:
            self._file.setFormatter(fmt)

    def emit(self, record: logging.LogRecord) -> None:
        if self._discarded:
            return
        if self._file is None:
            self._buffer.append(record)
            return
        self._file.emit(record)

    def on_lock(self, out_dir: Path) -> None:
        if Path(out_dir).resolve() == self.path.parent.resolve():
            self.open()

    def open(self) -> None:
        """Start writing the file: the buffered records first. A folder that cannot be
        written is left alone (the workspace check reports it with a proper message)."""
        if self._file is not None or self._discarded:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = logging.FileHandler(self.path)
        except OSError:
            self._discarded = True
            return
        self._file.setFormatter(self.formatter)
        for record in self._buffer:
            self._file.emit(record)
        self._buffer.clear()

    def discard(self) -> None:
        """Drop what was buffered and write nothing from now on."""
        self._buffer.clear()
        self._discarded = True

    def close(self) -> None:
        from pipelines.workspace import LOCK_LISTENERS

        if self.on_lock in LOCK_LISTENERS:
            LOCK_LISTENERS.remove(self.on_lock)
        if self._file is not None:
            self._file.close()
        super().close()
