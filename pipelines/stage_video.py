"""Stage 1 for a clip: video file (or frame folder) -> chosen frames as normalised images.

Yields the same `ImageSet` and stage layout as the photo-folder intake (stage_images), so
every later stage is unchanged; adds `video.json` (per-frame timestamps, selection summary).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.stage_images import ImagesConfig, load_image_set
from pipelines.workspace import Stage
from recon.atomic import write_json, write_with
from recon.errors import InputError
from recon.images import check_stem_clashes, list_images, load_rgb, normalized_name
from recon.progress import progress
from recon.video import (
    Candidate,
    KeptFrame,
    SelectionStats,
    VideoParams,
    check_camera_motion,
    folder_candidates,
    is_video,
    probe_video,
    select_frames,
    video_candidates,
    window_length,
)

log = logging.getLogger(__name__)
JPEG_QUALITY = 95


def is_sequence_input(path: Path, params: VideoParams) -> bool:
    """A video file, or a photo folder flagged as a clip's frames (video.sequence)."""
    return is_video(path) or (params.sequence and Path(path).is_dir())


def prepare_sequence(
    source: Path, stage: Stage, images: ImagesConfig, params: VideoParams
) -> tuple:
    """Choose and write the frames of `source`; returns (ImageSet, timestamps by name (s))."""
    if stage.done:
        return load_image_set(stage), load_timestamps(stage)
    out = stage.begin()
    root = out / "images"
    frames, window, names_of = _candidates(source, params)
    stats = SelectionStats()
    start = time.perf_counter()
    names, sizes, timestamps, parallax = [], {}, {}, {}
    kept = select_frames(frames, window, params, stats)
    for frame in progress(kept, desc="frames", unit="frame", leave=False):
        name = names_of(frame)
        sizes[name] = _write_frame(root / name, frame.rgb, images.max_size)
        names.append(name)
        timestamps[name] = round(frame.time, 6)
        parallax[name] = frame.parallax
    stats.seconds = round(time.perf_counter() - start, 3)
    check_camera_motion(len(names), stats, source, root / names[0] if names else None)
    names = _thin(root, names, params.max_frames)
    _log_stats(source, stats, len(names))
    manifest = {
        "names": names,
        "source_names": {n: f"{source.name}@{timestamps[n]:.3f}s" for n in names},
        "sizes": {n: sizes[n] for n in names},
        "downscaled": {},
        # One device for the whole clip: SfM shares one camera.
        "devices": {n: "{}x{}|video".format(*sizes[n]) for n in names},
        "skipped": [],
    }
    write_json(out / "manifest.json", manifest)
    summary = _summary(stats, names, timestamps, parallax)
    write_json(out / "video.json", summary)
    stage.finish({"num_images": len(names), "num_skipped": 0, "video": summary["selection"]})
    return load_image_set(stage), {n: timestamps[n] for n in names}


def _candidates(source: Path, params: VideoParams):
    """(frame stream, window length, kept frame -> image name) for a video or a folder."""
    if is_video(source):
        info = probe_video(source)
        window = window_length(info.fps, info.frames, params)
        frames = video_candidates(source, info, params.analysis_size)
        return frames, window, lambda f: f.name
    names, _ = list_images(source)
    names, _ = check_stem_clashes(names)
    if len(names) < 2:
        raise InputError("fewer than 2 frames", path=source, fix="pass a folder of video frames")
    window = window_length(params.sequence_fps, len(names), params)
    frames = folder_candidates(source, names, params.sequence_fps, params.analysis_size, load_rgb)
    # Folder frames keep their own names (predictions files are named after them).
    return frames, window, lambda f: normalized_name(names[f.index])


def _write_frame(path: Path, rgb: np.ndarray, max_size: int) -> tuple[int, int]:
    """Write one frame (JPEG q95, or PNG when named so), downscaled to max_size; (w, h) px."""
    img = Image.fromarray(rgb)
    factor = min(1.0, max_size / max(img.size))
    if factor < 1.0:
        size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    write_with(path, lambda tmp: img.save(tmp, format=fmt, **options))
    return img.size


def _thin(root: Path, names: list[str], max_frames: int) -> list[str]:
    """Evenly keep `max_frames` of `names` (a clip whose length the container did not say can
    give more than the window planned for); the others' files are removed."""
    if len(names) <= max_frames:
        return names
    keep = {names[i] for i in np.linspace(0, len(names) - 1, max_frames).round().astype(int)}
    for name in names:
        if name not in keep:
            (root / name).unlink(missing_ok=True)
    return [n for n in names if n in keep]


def _summary(stats: SelectionStats, names: list[str], timestamps: dict, parallax: dict) -> dict:
    return {
        "selection": {
            "decoded": stats.decoded,
            "window": stats.window,
            "candidates": stats.candidates,
            "blurred": len(stats.blurred),
            "blurred_frames": stats.blurred,
            "near_duplicates": stats.duplicates,
            "kept": len(names),
            "seconds": stats.seconds,
        },
        "timestamps": {n: timestamps[n] for n in names},
        # Finite values only (JSON): a frame whose view changed too much to track gets None.
        "parallax": {n: (parallax[n] if np.isfinite(parallax[n]) else None) for n in names},
    }


def _log_stats(source: Path, stats: SelectionStats, kept: int) -> None:
    log.info(
        "%s: %d frames decoded, %d candidates (1 per %d), %d blurred, %d near-duplicates, "
        "%d kept (%.1f s)",
        source.name,
        stats.decoded,
        stats.candidates,
        stats.window,
        len(stats.blurred),
        stats.duplicates,
        kept,
        stats.seconds,
    )


def load_timestamps(stage: Stage) -> dict[str, float]:
    """Timestamps (s from the clip start) by image name, from a finished stage."""
    return dict(json.loads((stage.path / "video.json").read_text())["timestamps"])


def load_video_summary(stage: Stage) -> dict:
    return json.loads((stage.path / "video.json").read_text())


__all__ = ["Candidate", "KeptFrame", "is_sequence_input", "prepare_sequence", "load_timestamps"]
