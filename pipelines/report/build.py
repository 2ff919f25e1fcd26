"""Build the report page's HTML from a run's folder (scene, priors or image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.report import findings
from pipelines.report.agreement import neighbour_agreement
from pipelines.report.collect import RunData, load_run, load_sparse_scene
from pipelines.report.gallery import GalleryRow, data_uri, gallery, thumb
from pipelines.report.page import render_page, table_html
from pipelines.report.plots import model_plot, per_view_plot
from pipelines.report.scene3d import scene_payload

TITLES = {"scene": "scene reconstruction", "priors": "aligned priors", "image": "single image"}


def build_html(out_dir: Path, kind: str) -> str:
    run = load_run(out_dir, kind)
    if kind == "image":
        return _image_page(run)
    return _multi_view_page(run)


def _multi_view_page(run: RunData) -> str:
    report = run.report
    sparse = load_sparse_scene(run)
    rows = gallery(run, sparse)
    tracks = None if sparse is None else sparse.points_track_length
    residuals = [r.point_residuals for r in rows if r.point_residuals is not None]
    residuals = np.concatenate(residuals) if residuals else np.zeros(0)
    plots = {
        "per view": per_view_plot(report.get("alignment", {}), neighbour_agreement(run)),
        "sparse points": model_plot(tracks, residuals[np.isfinite(residuals)]),
    }
    summary = table_html(findings.summary_rows(report)) + table_html(
        findings.stage_rows(report), head=("stage", "seconds", "peak RSS after (MB)")
    )
    scene = scene_payload(run) if (run.mesh_path or run.sparse_path) else None
    return render_page(
        title=f"{TITLES[run.kind]}: {run.out_dir.name}",
        subtitle=str(run.out_dir.resolve()),
        problems=findings.problems(report),
        summary=summary,
        scene=scene,
        plots=plots,
        rows=rows,
    )


def _image_page(run: RunData) -> str:
    """An `image` run: the photo, its previews and the mesh."""
    summary = run.report
    images: dict[str, str | None] = {}
    photo = Path(summary.get("photo", ""))
    if photo.is_file():
        with Image.open(photo) as im:
            images["photo"] = data_uri(thumb(np.asarray(im.convert("RGB"))))
    previews = run.out_dir / "previews"
    for column, suffix in (("depth", "depth"), ("normals", "normal"), ("confidence", "confidence")):
        found = sorted(previews.glob(f"*_{suffix}.png")) if previews.is_dir() else []
        if found:
            with Image.open(found[0]) as im:
                images[column] = data_uri(thumb(np.asarray(im.convert("RGB")), nearest=True))
    row = GalleryRow(photo.name or "photo", images)
    scene = scene_payload(run) if run.mesh_path else None
    return render_page(
        title=f"{TITLES['image']}: {photo.name}",
        subtitle=str(run.out_dir.resolve()),
        problems=[],
        summary=table_html(findings.single_image_rows(summary)),
        scene=scene,
        plots={},
        rows=[row],
    )
