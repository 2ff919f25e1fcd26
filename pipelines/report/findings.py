"""What went wrong (first on the page) and the summary table, from report.json's sections."""

from __future__ import annotations


def problems(report: dict) -> list[str]:
    """One line per thing a user should know went wrong, most basic first."""
    lines = []
    for item in report.get("images", {}).get("skipped", []):
        lines.append(f"photo skipped: {item.get('name')} ({item.get('reason')})")
    sfm = report.get("sfm", {})
    for line in sfm.get("problems", []):
        lines.append(f"SfM: {line}")
    unregistered = sfm.get("unregistered", [])
    if unregistered:
        lines.append(f"SfM left out {len(unregistered)} view(s): {_names(unregistered)}")
    weak = sfm.get("weak_views", [])
    if weak:
        lines.append(f"SfM registered {len(weak)} view(s) with few 3D points: {_names(weak)}")
    for name, a in sorted(report.get("alignment", {}).items()):
        status = a.get("status")
        if status not in (None, "ok"):
            lines.append(f"alignment {status}: {name} ({a.get('message', '')})")
    if report.get("mesh", {}).get("faces") == 0:
        lines.append("fusion produced an empty mesh")
    return lines


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """(label, value) rows for the summary table; only what the report holds."""
    rows = []
    images = report.get("images", {})
    if images:
        rows.append(("photos used / skipped", f"{images.get('used')} / {len(images['skipped'])}"))
    sfm = report.get("sfm", {})
    if sfm:
        rows.append(("registered views", f"{sfm.get('num_registered')} of {sfm.get('num_images')}"))
        rows.append(("mean reprojection error", f"{_fmt(sfm.get('mean_reprojection_error'))} px"))
        rows.append(("sparse points", str(sfm.get("num_points3d"))))
        rows.append(("mapper / matcher", f"{sfm.get('mapper')} / {sfm.get('matcher')}"))
    alignment = report.get("alignment", {})
    if alignment:
        ok = sum(a.get("status") == "ok" for a in alignment.values())
        rows.append(("views aligned", f"{ok} of {len(alignment)}"))
    if report.get("producer"):
        rows.append(("predictor", str(report["producer"])))
    mesh = report.get("mesh", {})
    if mesh:
        rows.append(("mesh", f"{mesh.get('vertices')} vertices, {mesh.get('faces')} faces"))
    if "peak_rss_mb" in report:
        rows.append(("peak memory", f"{_fmt(report['peak_rss_mb'], 0)} MB"))
    return rows


def stage_rows(report: dict) -> list[tuple[str, str, str]]:
    """(stage, seconds, peak RSS MB after it) for the timing table."""
    peaks = report.get("peak_rss_mb_after", {})
    return [
        (name, _fmt(sec, 1), _fmt(peaks.get(name), 0) if name in peaks else "")
        for name, sec in report.get("seconds", {}).items()
    ]


def single_image_rows(summary: dict) -> list[tuple[str, str]]:
    """Summary rows of an `image` run (single_image.json)."""
    rows = [("photo", str(summary.get("photo")))]
    intr = summary.get("intrinsics", {})
    if intr:
        rows.append(("intrinsics", str(intr.get("message"))))
    if summary.get("scale"):
        rows.append(("scale", str(summary["scale"].get("message"))))
    if summary.get("shift"):
        shift = summary["shift"]
        rows.append(("affine shift", f"{_fmt(shift.get('value'))} ({shift.get('source')})"))
    mesh = summary.get("mesh", {})
    for key, value in mesh.items():
        rows.append((f"mesh {key}", str(value)))
    return rows


def _fmt(value, digits: int = 3) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "n/a"
