"""Typed errors of lotus_core. Each message is one line that names the problem and the fix."""

from __future__ import annotations


class LotusError(Exception):
    """Base class. `str(err)` is one line: what went wrong, then `fix: ...` when there is one."""

    def __init__(self, message: str, *, fix: str | None = None):
        self.message = " ".join(message.split())
        self.fix = fix
        text = f"{message} — fix: {fix}" if fix else message
        super().__init__(" ".join(text.split()))  # guarantee a single line


class CheckpointError(LotusError):
    """A checkpoint is missing, unreachable, malformed, or of the wrong task."""


class LotusInputError(LotusError, ValueError):
    """Images or arguments that the model cannot take."""
