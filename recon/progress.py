"""Progress bars for loops over frames, behind one switch (the CLI's --quiet turns them off)."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

_enabled = True


def progress(iterable: Any = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)`, disabled while bars are switched off."""
    disable = kwargs.pop("disable", False) or not _enabled
    return tqdm(iterable, disable=disable, **kwargs)


def set_progress(enabled: bool) -> bool:
    """Switch every later bar on or off; returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, enabled
    return previous
