"""OUT/report.html: one self-contained page showing what a run produced and what went wrong.

`write_report(out_dir, kind)` reads the run's files (pipelines.report.collect) and writes the
page atomically. It never fails a run: any error becomes one warning line.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def build_report(out_dir: str | Path, kind: str = "scene") -> Path:
    """Write OUT/report.html for a finished `scene`, `priors` or `image` run; returns its path."""
    from pipelines.report.build import build_html
    from recon.atomic import write_text

    out_dir = Path(out_dir)
    path = out_dir / "report.html"
    write_text(path, build_html(out_dir, kind))
    return path


def write_report(out_dir: str | Path, kind: str = "scene") -> Path | None:
    """build_report, but a failure is logged as one warning line and returns None."""
    start = time.perf_counter()
    try:
        path = build_report(out_dir, kind)
    except Exception as exc:  # the report is a view of the run; it must never fail the run
        detail = str(exc).splitlines()[0] if str(exc) else ""
        log.warning("report.html not written (%s: %s)", type(exc).__name__, detail)
        return None
    log.info("report: %s (%.1f s)", path, time.perf_counter() - start)
    return path
