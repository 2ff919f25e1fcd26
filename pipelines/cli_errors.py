"""Exceptions -> (one console line, exit code): the CLI's only translation of failures.

| code | meaning                                                                 |
| ---- | ----------------------------------------------------------------------- |
| 0    | done                                                                    |
| 1    | bad input or config, a missing dependency, or `-o` in use by another run |
| 2    | usage (unknown option, missing argument, empty `-o`)                    |
| 3    | disk full, or the output folder not writable                            |
| 70   | internal error (a bug: rerun with -v and report the traceback)          |
| 130  | interrupted (Ctrl-C, SIGINT)                                            |
| 143  | terminated (SIGTERM: `kill`, `timeout`, `docker stop`, Slurm)           |

The README's exit-code table lists the same rows; tests/test_bad_input_exit_codes.py runs one
case per row.
"""

from __future__ import annotations

import errno
import re
import sys
from pathlib import Path

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_DISK, EXIT_INTERNAL = 0, 1, 2, 3, 70
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM gives 128 + 15 = 143

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Optional libraries whose import can fail on a machine set up by hand, and the fix.
_INSTALL_FIX = {
    "open3d": "install the system library libusb (Debian/Ubuntu: "
    "sudo apt-get install -y libusb-1.0-0), then pip install open3d",
    "pycolmap": "pip install pycolmap",
    "torch": "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
    "diffusers": "pip install -e . (from the lotus-recon folder)",
    "transformers": "pip install -e . (from the lotus-recon folder)",
}


def one_line(text: object) -> str:
    """First line of a message, without terminal colour codes (Open3D colours its errors)."""
    lines = _ANSI.sub("", str(text)).strip().splitlines()
    return lines[0].strip() if lines else ""


def os_error(exc: OSError, output: Path | None) -> tuple[str, int]:
    """A failed read or write: disk full, permissions, or another OS error (exit 3)."""
    where = exc.filename or output or "I/O error"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space or choose another -o folder, then rerun to resume"
        return f"{where}: disk full — fix: {fix}", EXIT_DISK
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: permission denied — fix: choose a writable -o folder", EXIT_DISK
    reason = exc.strerror or one_line(exc)
    return f"{where}: {reason} — fix: check the path and rerun", EXIT_DISK


def disk_full_text(exc: BaseException) -> bool:
    """C++ libraries (COLMAP's SQLite) report a full disk as text, not as an errno."""
    text = str(exc).lower()
    return "disk is full" in text or "no space left" in text or "disk full" in text


def missing_dependency(exc: ImportError) -> tuple[str, int] | None:
    """A library that cannot be imported (missing, or missing a system library)."""
    root = (exc.name or "").split(".")[0]
    text = one_line(exc)
    if "libusb" in text:
        root = "open3d"
    if root not in _INSTALL_FIX:
        return None
    return f"cannot import {root} ({text}) — fix: {_INSTALL_FIX[root]}", EXIT_INPUT


def internal(exc: BaseException) -> tuple[str, int]:
    detail = one_line(exc)
    name = type(exc).__name__
    return f"unexpected {name}: {detail} (rerun with -v for the traceback)", EXIT_INTERNAL


def user_error_types() -> tuple[type[BaseException], ...]:
    from recon.errors import ReconError

    types: list[type[BaseException]] = [ReconError]
    lotus_errors = sys.modules.get("lotus_core.errors")
    if lotus_errors is not None and hasattr(lotus_errors, "LotusError"):
        types.append(lotus_errors.LotusError)
    return tuple(types)


def translate(exc: Exception, output: Path | None) -> tuple[str, int]:
    """Any exception the run raised -> (message, exit code)."""
    from recon.errors import OutputNotWritableError

    if isinstance(exc, OutputNotWritableError):
        return str(exc), EXIT_DISK
    if isinstance(exc, user_error_types()):
        return str(exc), EXIT_INPUT
    if isinstance(exc, OSError):
        return os_error(exc, output)
    if isinstance(exc, ImportError):
        found = missing_dependency(exc)
        if found is not None:
            return found
    if disk_full_text(exc):
        where = output or "the output folder"
        fix = "free space or choose another -o folder, then rerun to resume"
        return f"{where}: disk full ({one_line(exc)}) — fix: {fix}", EXIT_DISK
    return internal(exc)
