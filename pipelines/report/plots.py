"""matplotlib plots for the report, as PNG data URIs (Agg backend, no display).

Two figures, so the page costs two renders: per view (alignment residual, scale, sparse points
used and inliers, depth agreement with the nearest view; one shared x axis), and over the model
(track lengths of the sparse points, each point's aligned-depth difference).
"""

from __future__ import annotations

import base64
import io

import numpy as np

STATUS_COLORS = {"ok": "#3b7dd8", "borrowed": "#e0a030"}  # anything else (failed): red
FAILED_COLOR = "#d8453b"


def _figure(rows: int, cols: int, width: float, height: float, **kwargs):
    from matplotlib.figure import Figure  # the Agg canvas: no display, no pyplot state

    fig = Figure(figsize=(width, height), dpi=80)
    return fig, fig.subplots(rows, cols, squeeze=False, **kwargs)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def per_view_plot(
    alignment: dict[str, dict], agreement: dict[str, tuple[str, float]]
) -> str | None:
    """Residual, scale, points/inliers and neighbour agreement per view, stacked."""
    if not alignment:
        return None
    names = sorted(alignment)
    rows = [alignment[n] for n in names]
    colors = [STATUS_COLORS.get(r.get("status"), FAILED_COLOR) for r in rows]
    x = np.arange(len(names))
    panels = 4 if agreement else 3
    fig, axes = _figure(panels, 1, 9.0, 1.7 * panels + 0.9, sharex=True)
    axes = axes[:, 0]
    fig.subplots_adjust(
        left=0.08, right=0.99, top=0.96, bottom=0.9 / (1.7 * panels + 0.9), hspace=0.35
    )
    axes[0].bar(x, [_num(r.get("residual")) for r in rows], color=colors)
    axes[0].set_title("alignment residual (blue ok, orange borrowed, red failed)", fontsize=9)
    axes[1].bar(x, [_num(r.get("scale")) for r in rows], color=colors)
    axes[1].set_title("scale", fontsize=9)
    axes[2].bar(x, [_num(r.get("num_points")) for r in rows], color="#c8c8c8")
    axes[2].bar(x, [_num(r.get("num_inliers")) for r in rows], color=colors)
    axes[2].set_title("sparse points of the view (grey) and inliers of the fit", fontsize=9)
    if agreement:
        values = [100 * agreement[n][1] if n in agreement else np.nan for n in names]
        axes[3].bar(x, np.nan_to_num(values, nan=0.0), color="#3b7dd8")
        axes[3].set_title("depth difference with the nearest view, median % of depth", fontsize=9)
    step = max(1, len(names) // 40)  # at most ~40 labels
    axes[-1].set_xticks(x[::step])
    axes[-1].set_xticklabels(names[::step], rotation=70, fontsize=7)
    for ax in axes:
        ax.tick_params(labelsize=7)
    return _png(fig)


def model_plot(track_lengths: np.ndarray | None, residuals: np.ndarray) -> str | None:
    """Track-length histogram and the sparse points' |aligned depth - SfM depth| / depth."""
    has_tracks = track_lengths is not None and len(track_lengths) > 0
    if not has_tracks and len(residuals) == 0:
        return None
    fig, axes = _figure(1, 2, 9.0, 2.6)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.88, bottom=0.2, wspace=0.25)
    left, right = axes[0]
    if has_tracks:
        top = int(track_lengths.max())
        left.hist(track_lengths, bins=np.arange(1.5, top + 1.5), color="#3b7dd8")
        left.set_title(f"track length of the {len(track_lengths)} sparse points", fontsize=9)
        left.set_xlabel("views observing the point", fontsize=8)
    if len(residuals):
        right.hist(np.clip(100 * residuals, 0, 30), bins=60, color="#3b7dd8")
        right.set_title("sparse points: |aligned depth - SfM depth| / SfM depth", fontsize=9)
        right.set_xlabel("% (clipped at 30)", fontsize=8)
    for ax in (left, right):
        ax.tick_params(labelsize=7)
    return _png(fig)


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
