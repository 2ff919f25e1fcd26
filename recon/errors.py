"""Typed errors. Library code raises these; only the CLI turns them into one-line messages."""

from __future__ import annotations


class ReconError(Exception):
    """Base class. `str(err)` is one line naming the file (when there is one) and the fix."""

    def __init__(self, message: str, *, path: object | None = None, fix: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.fix = fix
        parts = [f"{self.path}: {message}" if self.path else message]
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__(" — ".join(parts))


class InputError(ReconError):
    """Unreadable or unsuitable user input (images, predictions, COLMAP models)."""


class SfMError(ReconError):
    """Structure from motion failed or produced a model that fails its checks."""


class AlignmentError(ReconError):
    """No view could be aligned to the sparse points."""


class FusionError(ReconError):
    """TSDF fusion produced nothing usable."""


class ConfigError(ReconError):
    """Invalid configuration key or value."""


class WorkspaceError(ReconError):
    """Workspace locked, not writable, or out of space."""


class OutputNotWritableError(WorkspaceError):
    """The output folder cannot be created or written (exit code 3, like a full disk)."""


class WorkspaceBusyError(WorkspaceError):
    """Another run holds the output folder's lock."""
