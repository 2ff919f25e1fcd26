"""Assemble report.html: one file, its scripts, styles, images and data inline.

The page's Content-Security-Policy forbids every fetch (default-src 'none'; images only as
data: URIs), so a report cannot reach the network even if something in it tried to.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from string import Template

from pipelines.report.gallery import COLUMNS, RESIDUAL_CAP, GalleryRow

_HEADS = {
    "photo": "photo",
    "depth": "depth (aligned)",
    "normals": "normals",
    "confidence": "confidence",
    "sparse": "sparse points by residual",
}


def _resource(name: str) -> str:
    return resources.files("pipelines.report").joinpath(name).read_text(encoding="utf-8")


def problems_html(lines: list[str]) -> str:
    if not lines:
        return '<div class="problems none">Nothing flagged: every photo used, every view aligned.</div>'
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<div class="problems"><ul>{items}</ul></div>'


def table_html(rows: list[tuple], head: tuple[str, ...] | None = None) -> str:
    if not rows:
        return ""
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = [f"<th>{escape(str(row[0]))}</th>"] + [
            f"<td>{escape(str(c))}</td>" for c in row[1:]
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def view3d_html(payload: dict | None) -> str:
    if payload is None or not (payload.get("mesh") or payload.get("points")):
        return ""
    boxes = "".join(
        f'<label><input type="checkbox" id="show-{key}" checked> {label}</label>'
        for key, label in (("mesh", "mesh"), ("cameras", "cameras"), ("points", "sparse points"))
    )
    faces = payload["mesh"]["faces"] if payload.get("mesh") else 0
    return (
        "<h2>3D view</h2>"
        f'<p class="sub">Drag to orbit, right-drag to pan, scroll to zoom. Mesh shown with '
        f"{faces} faces (decimated for the page; the full mesh is in the output folder).</p>"
        f'<div class="toggles">{boxes}</div><div id="view3d"></div>'
    )


def plots_html(plots: dict[str, str | None]) -> str:
    images = "".join(
        f'<img alt="{escape(key)}" src="{uri}">' for key, uri in plots.items() if uri is not None
    )
    return f'<h2>Plots</h2><div class="plots">{images}</div>' if images else ""


def gallery_row_html(row: GalleryRow) -> str:
    a = row.alignment
    status = a.get("status", "")
    cls = "" if status in ("", "ok") else ' class="bad"'
    meta = f"<b>{escape(row.name)}</b>"
    if a:
        meta += (
            f"<br><span{cls}>{escape(str(status))}</span>"
            f"<br>scale {_fmt(a.get('scale'))}<br>residual {_fmt(a.get('residual'))}"
            f"<br>inliers {a.get('num_inliers')} / {a.get('num_points')}"
        )
        if a.get("message"):
            meta += f"<br>{escape(str(a['message']))}"
    cells = [f'<td class="meta">{meta}</td>']
    for key in COLUMNS:
        uri = row.images.get(key)
        cells.append(
            f'<td><img alt="{key}" src="{uri}"></td>'
            if uri
            else '<td><div class="missing">none</div></td>'
        )
    return '<tr class="view-row">' + "".join(cells) + "</tr>"


def render_page(
    title: str,
    subtitle: str,
    problems: list[str],
    summary: str,
    scene: dict | None,
    plots: dict[str, str | None],
    rows: list[GalleryRow],
) -> str:
    """The whole HTML document as a string."""
    scripts = ""
    if scene is not None and (scene.get("mesh") or scene.get("points")):
        data = json.dumps(scene).replace("</", "<\\/")
        scripts = (
            f'<script id="scene-data" type="application/json">{data}</script>'
            f"<script>{_resource('vendor/three.min.js')}</script>"
            f"<script>{_resource('viewer.js')}</script>"
        )
    legend = (
        '<p class="sub">Sparse points: colour = relative difference between the aligned depth '
        f"and the SfM depth of the point, blue 0 to red &ge; {RESIDUAL_CAP:.0%}; grey = no "
        "aligned depth there.</p>"
    )
    return Template(_resource("template.html")).substitute(
        title=escape(title),
        subtitle=escape(subtitle),
        problems=problems_html(problems),
        summary=summary,
        view3d=view3d_html(scene),
        plots=plots_html(plots),
        legend=legend,
        gallery_head="".join(f"<th>{_HEADS[k]}</th>" for k in COLUMNS),
        gallery_rows="\n".join(gallery_row_html(r) for r in rows),
        scripts=scripts,
    )


def _fmt(value, digits: int = 3) -> str:
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return "n/a"
