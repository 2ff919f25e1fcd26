"""matplotlib plots for the report, as PNG data URIs (Agg backend, no display).

Per view: alignment residual, scale, sparse points used and inliers, depth agreement with the
nearest view; over the model: track lengths of the sparse points.
"""

from __future__ import annotations

import base64
import io

import numpy as np

STATUS_COLORS = {"ok": "#3b7dd8", "borrowed": "#e0a030"}  # anything else (failed): red
FAILED_COLOR = "#d8453b"


def _figure(width: float = 7.0, height: float = 2.6):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bars(names: list[str], values: list[float], colors: list[str], title: str, ylabel: str):
    fig, ax = _figure()
    x = np.arange(len(names))
    ax.bar(x, np.nan_to_num(values, nan=0.0), color=colors)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=9)
    step = max(1, len(names) // 30)  # label at most ~30 ticks
    ax.set_xticks(x[::step])
    ax.set_xticklabels(names[::step], rotation=70, fontsize=7)
    return fig, ax


def alignment_plots(alignment: dict[str, dict]) -> dict[str, str]:
    """{"residual", "scale", "inliers"} -> PNG data URIs from report.json's alignment table."""
    if not alignment:
        return {}
    names = sorted(alignment)
    rows = [alignment[n] for n in names]
    colors = [STATUS_COLORS.get(r.get("status"), FAILED_COLOR) for r in rows]
    out = {}
    fig, _ = _bars(
        names, [_num(r.get("residual")) for r in rows], colors,
        "Alignment residual per view (blue ok, orange borrowed, red failed)", "residual",
    )  # fmt: skip
    out["residual"] = _png(fig)
    fig, _ = _bars(names, [_num(r.get("scale")) for r in rows], colors, "Scale per view", "scale")
    out["scale"] = _png(fig)
    fig, ax = _bars(
        names, [_num(r.get("num_points")) for r in rows], ["#c8c8c8"] * len(rows),
        "Sparse points per view (grey) and inliers of the fit (blue)", "points",
    )  # fmt: skip
    ax.bar(np.arange(len(names)), [_num(r.get("num_inliers")) for r in rows], color=colors)
    out["inliers"] = _png(fig)
    return out


def track_length_plot(track_lengths: np.ndarray) -> str | None:
    """Histogram of how many views observe each sparse point."""
    if track_lengths is None or len(track_lengths) == 0:
        return None
    fig, ax = _figure()
    top = int(track_lengths.max())
    ax.hist(track_lengths, bins=np.arange(1.5, top + 1.5), color="#3b7dd8")
    ax.set_title(f"Track length of the {len(track_lengths)} sparse points", fontsize=10)
    ax.set_xlabel("views observing the point", fontsize=9)
    ax.set_ylabel("points", fontsize=9)
    return _png(fig)


def agreement_plot(agreement: dict[str, tuple[str, float]]) -> str | None:
    """Median relative depth difference of each view with its nearest view, in percent."""
    if not agreement:
        return None
    names = sorted(agreement)
    values = [100 * agreement[n][1] for n in names]
    fig, _ = _bars(
        names, values, ["#3b7dd8"] * len(names),
        "Depth agreement with the nearest view (median |difference| / depth)", "%",
    )  # fmt: skip
    return _png(fig)


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
