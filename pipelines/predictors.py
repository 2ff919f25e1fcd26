"""The predictor interface and the predictor that reads user-supplied prediction files.

A predictor turns frames into `MonoPrediction`s at each frame's resolution. The pipeline only
talks to this interface, so Lotus, a file reader, or a test oracle are interchangeable.

Prediction file format (`--predictions DIR`), one file per image:
    DIR/<image name without extension>.npz   (image name relative to the image root)
    values      (H, W) float32   affine-invariant depth or disparity (any resolution; resized
                                 bilinearly to the image's). NaN/inf/<=0-disparity = unknown.
    space       0-d str          "depth" or "disparity"
    normal      (H, W, 3) float  optional, unit normals
    normal_convention 0-d str    optional, "opencv" (default: x right, y down, z forward, a
                                 surface facing the camera has z < 0) or "lotus" (DSINE: the
                                 negated OpenCV normal, a camera-facing surface has z > 0)
    confidence  (H, W) float     optional, in [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from pipelines.view_files import prediction_path
from recon.errors import InputError
from recon.records import DEPTH_SPACES, DepthSpace, Frame, MonoPrediction
from recon.resample import normalize, remap_map, resize_map

# name -> ((H, W, 2) where each frame pixel lies in the original photo, photo width, height)
SourceGrid = Callable[[str], "tuple[np.ndarray, int, int] | None"]


@runtime_checkable
class Predictor(Protocol):
    """Anything that predicts affine-invariant depth (and optionally normals) per frame."""

    name: str  # short tag recorded in outputs and used in the workspace hash
    space: DepthSpace  # the space its `values` are affine in

    def predict(self, frames: Sequence[Frame]) -> list[MonoPrediction]:
        """One prediction per frame, at the frame's image resolution."""
        ...


class FilePredictor:
    """Reads predictions written by any depth model in the documented npz format."""

    def __init__(
        self,
        root: str | Path,
        space: DepthSpace | None = None,
        source_grid: SourceGrid | None = None,
    ):
        """source_grid: for undistorted frames, maps frame pixels to the original photo, on
        whose pixel grid the files were made; None = files match the frames' grid."""
        self.root = Path(root)
        self._source_grid = source_grid
        if not self.root.is_dir():
            raise InputError(
                "predictions folder not found",
                path=self.root,
                fix="pass --predictions a folder holding one <image stem>.npz per image",
            )
        self._space_override = space
        self.name = f"file:{self.root.name}"
        self.space = space or self._detect_space()

    def _detect_space(self) -> DepthSpace:
        first = next(iter(sorted(self.root.rglob("*.npz"))), None)
        if first is None:
            raise InputError(
                "no .npz prediction files",
                path=self.root,
                fix="write one npz per image (see README)",
            )
        return _read_space(first)

    def predict(self, frames: Sequence[Frame]) -> list[MonoPrediction]:
        return [self.load(frame) for frame in frames]

    def load(self, frame: Frame) -> MonoPrediction:
        path = prediction_path(self.root, frame.name)
        if not path.is_file():
            raise InputError(
                f"no prediction for image {frame.name}",
                path=path,
                fix="write that file or remove the image from the folder",
            )
        try:
            data = np.load(path, allow_pickle=False)
            values = np.asarray(data["values"], dtype=np.float32)
        except Exception as exc:  # corrupt zip, missing key, pickled object arrays
            raise InputError(
                f"unreadable prediction file ({type(exc).__name__}: {exc})",
                path=path,
                fix="rewrite it with numpy.savez(values=..., space=...)",
            ) from exc
        space = self._space_override or _read_space(path, data)
        if space != self.space:
            raise InputError(
                f"space {space!r} differs from the folder's {self.space!r}",
                path=path,
                fix="use one space for every file in a predictions folder",
            )
        if values.ndim != 2:
            raise InputError(
                f"values must be (H, W), got {values.shape}", path=path, fix="squeeze it"
            )
        to_frame = self._resampler(frame)
        values = _sanitize_values(to_frame(values), space)
        normal = None
        if "normal" in data.files:
            normal = _load_normal(data, path, to_frame)
        confidence = None
        if "confidence" in data.files:
            confidence = np.clip(to_frame(np.asarray(data["confidence"], np.float32)), 0, 1)
            confidence = np.nan_to_num(confidence, nan=0.0)
        return MonoPrediction(
            values=values, space=space, normal=normal, confidence=confidence, producer=self.name
        )

    def _resampler(self, frame: Frame) -> Callable[[np.ndarray], np.ndarray]:
        """(h, w) map on the file's grid -> (H, W) map on the frame's grid."""
        h, w = frame.image.shape[:2]
        grid = self._source_grid(frame.name) if self._source_grid else None
        if grid is None:
            return lambda m: resize_map(m, w, h)
        uv, src_w, src_h = grid
        return lambda m: remap_map(resize_map(m, src_w, src_h), uv)


def _read_space(path: Path, data: np.lib.npyio.NpzFile | None = None) -> DepthSpace:
    try:
        data = data if data is not None else np.load(path, allow_pickle=False)
        space = str(data["space"]) if "space" in data.files else ""
    except Exception as exc:
        raise InputError(
            f"unreadable prediction file ({exc})", path=path, fix="rewrite it"
        ) from exc
    if space not in DEPTH_SPACES:
        raise InputError(
            f"'space' is {space!r}",
            path=path,
            fix='store space="depth" or space="disparity" in the npz',
        )
    return space  # type: ignore[return-value]


def _sanitize_values(values: np.ndarray, space: DepthSpace) -> np.ndarray:
    """Non-finite values become NaN (unknown); the aligner and fusion skip NaN pixels."""
    values = values.astype(np.float32, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def _load_normal(
    data: np.lib.npyio.NpzFile, path: Path, to_frame: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    normal = np.asarray(data["normal"], dtype=np.float32)
    if normal.ndim != 3 or normal.shape[2] != 3:
        raise InputError(
            f"normal must be (H, W, 3), got {normal.shape}", path=path, fix="fix its shape"
        )
    convention = str(data["normal_convention"]) if "normal_convention" in data.files else "opencv"
    if convention not in ("opencv", "lotus"):
        raise InputError(
            f"normal_convention is {convention!r}", path=path, fix='use "opencv" or "lotus"'
        )
    normal = normalize(np.nan_to_num(np.stack([to_frame(normal[..., c]) for c in range(3)], -1)))
    if convention == "lotus":
        normal = -normal
    return normal
