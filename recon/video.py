"""Video (and frame-folder) intake: stream frames, choose the ones worth reconstructing.

Frame choice, in one pass over the clip with bounded memory (a few frames held at a time):

1. Rate / count: the clip is cut into windows of `window` consecutive frames, so that at most
   `VideoParams.fps` candidates per second of video, and at most `max_frames` in all, remain.
2. Blur: each window's candidate is its sharpest frame (variance of the Laplacian); a
   candidate whose sharpness is below `blur_ratio` x the median of its neighbouring windows'
   is rejected as motion-blurred (absolute sharpness depends on the scene; relative does not).
3. Parallax: a sharp candidate is kept only when the image content moved by at least
   `min_parallax` (median sparse optical-flow displacement, as a fraction of the image
   diagonal) since the last kept frame, so a camera at rest adds nothing.

Each kept frame keeps its index and timestamp (seconds from the start of the clip). A clip that
leaves fewer than two frames this way has no camera motion: `NoCameraMotionError`.
Names of kept frames sort in time order: `frame_{index:06d}.jpg` (index = decoded frame number).
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from recon.errors import InputError
from recon.tracking import sharpness, sparse_flow

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts")
MIN_TRACKED_FRACTION = 0.2  # fewer good tracks than this: the view changed a lot -> keep


class NoCameraMotionError(InputError):
    """A clip whose camera does not move: SfM has no parallax to work with."""


@dataclass(frozen=True)
class VideoParams:
    fps: float = 3.0  # candidates per second of video (one per window; the sharpest)
    max_frames: int = 150  # target count: windows grow so the clip gives at most this many
    blur_ratio: float = 0.5  # reject below this x the neighbouring windows' median sharpness
    blur_neighbours: int = 2  # windows on each side compared for blur
    min_parallax: float = 0.01  # median flow / image diagonal below this: near-duplicate
    analysis_size: int = 480  # px, long edge of the greyscale copy used for blur and flow
    sequence: bool = False  # treat a photo folder as a clip's frames (sorted names = time)
    sequence_fps: float = 30.0  # frame rate of such a folder (its frames' timestamps)

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.sequence_fps <= 0:
            raise ValueError("video.fps and video.sequence_fps must be > 0")
        if self.max_frames < 2:
            raise ValueError("video.max_frames must be >= 2")
        if not 0.0 <= self.blur_ratio < 1.0:
            raise ValueError("video.blur_ratio must be in [0, 1)")
        if self.min_parallax < 0 or self.analysis_size < 64 or self.blur_neighbours < 1:
            raise ValueError("video.min_parallax >= 0, analysis_size >= 64, blur_neighbours >= 1")


@dataclass
class Candidate:
    """One frame offered to the selection."""

    index: int  # decoded frame number (0-based)
    time: float  # seconds from the start of the clip
    grey: np.ndarray  # (h, w) float32 in [0, 1], long edge <= analysis_size
    rgb: Callable[[], np.ndarray]  # full-resolution (H, W, 3) uint8, decoded on demand
    sharpness: float = 0.0  # variance of the Laplacian of `grey`


@dataclass(frozen=True)
class KeptFrame:
    index: int  # decoded frame number
    time: float  # seconds from the start of the clip
    rgb: np.ndarray  # (H, W, 3) uint8
    parallax: float  # median flow since the previous kept frame / image diagonal (0: first)

    @property
    def name(self) -> str:
        return frame_name(self.index)


@dataclass
class SelectionStats:
    """What frame selection did, for the report."""

    decoded: int = 0  # frames read
    window: int = 1  # frames per window (one candidate each)
    candidates: int = 0
    blurred: list[int] = field(default_factory=list)  # frame numbers rejected as blurred
    duplicates: int = 0  # candidates skipped for too little parallax
    kept: int = 0
    max_parallax: float = 0.0  # largest parallax measured between candidates and kept frames
    seconds: float = 0.0  # wall time of decoding, selection and writing the kept frames


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.jpg"


def is_video(path: str | Path) -> bool:
    path = Path(path)
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def _grey_from_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    img = Image.fromarray(rgb).convert("L")
    scale = min(1.0, size / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    return np.asarray(img, dtype=np.float32) / 255.0


def _analysis_size(width: int, height: int, size: int) -> tuple[int, int]:
    scale = min(1.0, size / max(width, height))
    # Even sizes: swscale needs them for some pixel formats.
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


@dataclass(frozen=True)
class VideoInfo:
    width: int  # px
    height: int  # px
    fps: float  # average frame rate
    frames: int  # frame count from the container (0 when unknown)


def probe_video(path: Path) -> VideoInfo:
    """Size, frame rate and frame count of a clip's first video stream (InputError if none)."""
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError("no video stream", path=path, fix="pass a video file (mp4, mov)")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 30.0)
            frames = int(stream.frames or 0)
            if frames == 0 and container.duration:
                frames = int(container.duration / 1e6 * fps)
            ctx = stream.codec_context
            return VideoInfo(ctx.width, ctx.height, fps, frames)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"cannot read video ({type(exc).__name__}: {exc})".replace("\n", " "),
            path=path,
            fix="re-encode it as H.264 MP4, or extract the frames into a folder",
        ) from exc


def _import_av():
    try:
        import av
    except ImportError as exc:  # core dependency; a broken install gets the fix
        raise InputError("PyAV is not installed", fix="pip install av") from exc
    return av


def video_candidates(path: Path, info: VideoInfo, size: int) -> Iterator[Candidate]:
    """Stream every frame of `path` as a Candidate (greyscale analysis copy; RGB on demand).

    Only the current frame is decoded to memory; a Candidate keeps its VideoFrame (YUV, a few
    MB at 1080p) so that the RGB conversion is paid only for frames that are kept.
    """
    av = _import_av()
    aw, ah = _analysis_size(info.width, info.height, size)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start: float | None = None
            for index, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else index / info.fps
                start = t if start is None else start
                t -= start  # containers may start at a non-zero time (edited or cut clips)
                grey = frame.reformat(width=aw, height=ah, format="gray").to_ndarray()
                yield Candidate(
                    index, t, grey.astype(np.float32) / 255.0, _rgb_of(frame), sharpness=0.0
                )
    except av.error.FFmpegError as exc:
        raise InputError(
            f"video decoding failed ({exc})".replace("\n", " "),
            path=path,
            fix="re-encode it as H.264 MP4, or extract the frames into a folder",
        ) from exc


def _rgb_of(frame) -> Callable[[], np.ndarray]:
    return lambda: np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


def folder_candidates(
    root: Path, names: list[str], fps: float, size: int, load: Callable[[Path], np.ndarray]
) -> Iterator[Candidate]:
    """The photos `names` (sorted = time order) of a frame folder as Candidates, frame i at
    i / fps seconds. `load` decodes one photo to (H, W, 3) uint8."""
    for index, name in enumerate(names):
        rgb = load(root / name)
        grey = _grey_from_rgb(rgb, size)
        yield Candidate(index, index / fps, grey, lambda rgb=rgb: rgb)


def window_length(clip_fps: float, num_frames: int, params: VideoParams) -> int:
    """Frames per window: from the candidate rate, grown to respect `max_frames`."""
    window = max(1, round(clip_fps / params.fps))
    if num_frames > 0:
        window = max(window, -(-num_frames // params.max_frames))
    return window


def sharpest_per_window(
    frames: Iterable[Candidate], window: int, stats: SelectionStats
) -> Iterator[Candidate]:
    """The sharpest frame of each run of `window` consecutive frames."""
    best: Candidate | None = None
    count = 0
    for cand in frames:
        stats.decoded += 1
        cand.sharpness = sharpness(cand.grey)
        if best is None or cand.sharpness > best.sharpness:
            best = cand
        count += 1
        if count == window:
            stats.candidates += 1
            yield best
            best, count = None, 0
    if best is not None:
        stats.candidates += 1
        yield best


def reject_blurred(
    candidates: Iterable[Candidate], params: VideoParams, stats: SelectionStats
) -> Iterator[Candidate]:
    """Drop candidates much blurrier than their neighbours (`blur_neighbours` windows on each
    side; a look-ahead of that many candidates is held in memory)."""
    k = params.blur_neighbours
    history: deque[float] = deque(maxlen=k)
    pending: deque[Candidate] = deque()

    def decide(cand: Candidate) -> bool:
        around = list(history) + [c.sharpness for c in pending]
        ok = not around or cand.sharpness >= params.blur_ratio * statistics.median(around)
        history.append(cand.sharpness)
        if not ok:
            stats.blurred.append(cand.index)
        return ok

    for cand in candidates:
        pending.append(cand)
        if len(pending) > k:
            head = pending.popleft()
            if decide(head):
                yield head
    while pending:
        head = pending.popleft()
        if decide(head):
            yield head


def keep_with_parallax(
    candidates: Iterable[Candidate], params: VideoParams, stats: SelectionStats
) -> Iterator[KeptFrame]:
    """Keep the first candidate, then each one whose content moved by >= min_parallax (median
    sparse-flow displacement / diagonal) since the last kept frame."""
    last: Candidate | None = None
    for cand in candidates:
        if last is None:
            parallax = 0.0
        else:
            parallax = measure_parallax(last.grey, cand.grey)
            if np.isfinite(parallax):
                stats.max_parallax = max(stats.max_parallax, parallax)
            if parallax < params.min_parallax:
                stats.duplicates += 1
                continue
        last = cand
        stats.kept += 1
        yield KeptFrame(cand.index, cand.time, cand.rgb(), parallax)


def measure_parallax(a: np.ndarray, b: np.ndarray) -> float:
    """Median sparse-flow displacement from grey image `a` to `b` as a fraction of the image
    diagonal; +inf when too few points can be tracked (the view changed too much to match)."""
    flow = sparse_flow(a, b)
    if flow.tracked_fraction < MIN_TRACKED_FRACTION:
        return float("inf")
    return flow.median_displacement() / float(np.hypot(*a.shape))


def select_frames(
    frames: Iterable[Candidate], window: int, params: VideoParams, stats: SelectionStats
) -> Iterator[KeptFrame]:
    """Windows -> blur rejection -> parallax: the kept frames, in time order (streamed)."""
    stats.window = window
    sharp = reject_blurred(sharpest_per_window(frames, window, stats), params, stats)
    yield from keep_with_parallax(sharp, params, stats)


def check_camera_motion(
    kept: int, stats: SelectionStats, source: Path, frame: Path | None = None
) -> None:
    """Raise NoCameraMotionError when frame selection left fewer than two frames; `frame`
    (a written frame) is named in the fix."""
    if kept >= 2:
        return
    example = str(frame) if frame is not None else "FRAME.jpg"
    raise NoCameraMotionError(
        f"no camera motion: {stats.decoded} frames decoded, the image moved by at most "
        f"{100 * stats.max_parallax:.2f}% of its diagonal (SfM needs parallax)",
        path=source,
        fix="film while moving the camera around the scene, or reconstruct one frame with "
        f"`lotus-recon image {example} -o OUT`",
    )
