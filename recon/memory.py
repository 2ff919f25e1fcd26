"""Memory budgets: refuse work that would exhaust the machine before it starts.

A budget of None means a default derived from the machine: 80 % of the memory available now
(Linux `MemAvailable`), so the rest of the system keeps room. The estimates that are checked
against it live next to the work they describe (`recon.fusion_memory`,
`pipelines.predictor_factory`).
"""

from __future__ import annotations

import os
from pathlib import Path

from recon.errors import ConfigError

GIB = 2**30
DEFAULT_FRACTION = 0.8  # of the memory available when the run starts


def available_memory_bytes() -> int:
    """Memory the system can give a process now (bytes): MemAvailable, else free pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def budget_bytes(budget_gb: float | None) -> float:
    """The budget in bytes: `budget_gb` GiB, or the machine's default when None."""
    if budget_gb is None:
        return DEFAULT_FRACTION * available_memory_bytes()
    return float(budget_gb) * GIB


def check_budget(needed: float, budget_gb: float | None, what: str, setting: str, fix: str) -> None:
    """Raise ConfigError (one line: the estimate, the budget and `fix`) when `needed` bytes
    exceed the budget. `setting` names the budget the user can raise."""
    budget = budget_bytes(budget_gb)
    if needed > budget:
        source = (
            f"{setting}={budget_gb:g}"
            if budget_gb is not None
            else (f"{DEFAULT_FRACTION:.0%} of the memory available now; set {setting} to change it")
        )
        raise ConfigError(
            f"{what} needs about {needed / GIB:.3g} GB, over the memory budget of "
            f"{budget / GIB:.3g} GB ({source})",
            fix=fix,
        )
