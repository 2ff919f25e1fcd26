"""The Lotus predictor: `lotus_core` models behind the `pipelines.predictors.Predictor` interface.

A depth checkpoint gives `values` (affine-invariant depth or disparity, as the checkpoint
predicts); an optional normal checkpoint adds unit normals in the OpenCV camera frame. Lotus-G
ensembles (`ensemble` > 1) turn their per-pixel spread into `confidence`:

    confidence = tau^2 / (tau^2 + sigma^2)

an inverse-variance weight scaled to [0, 1] that is 0.5 where the spread sigma equals tau
(depth: `depth_tau`, in units of the model's [0, 1] output range; normals: `normal_tau`,
radians). With both models in an ensemble the two confidences multiply. Lotus-D and single
runs give no confidence (None): every pixel is equally trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from recon.errors import InputError
from recon.progress import progress
from recon.records import DepthSpace, Frame, MonoPrediction

if TYPE_CHECKING:
    from lotus_core.pipeline import LotusModel, LotusResult
    from pipelines.scene_config import PredictorConfig

DEPTH_FLAG = "--lotus-depth"
NORMAL_FLAG = "--lotus-normal"


def confidence_from_spread(spread: np.ndarray, tau: float) -> np.ndarray:
    """(H, W) spread >= 0 -> (H, W) float32 confidence in [0, 1]; NaN spread -> 0."""
    spread = np.nan_to_num(np.asarray(spread, dtype=np.float64), nan=np.inf)
    with np.errstate(over="ignore"):
        conf = tau**2 / (tau**2 + np.square(spread))
    return np.clip(conf, 0.0, 1.0).astype(np.float32)


def as_input_error(exc: Exception) -> InputError:
    """lotus_core's one-line errors as the pipeline's typed input errors."""
    message = getattr(exc, "message", str(exc))
    return InputError(message, fix=getattr(exc, "fix", None))


class LotusPredictor:
    """Lotus depth (and optionally normals) for frames; implements `Predictor`."""

    def __init__(
        self,
        depth_model: LotusModel,
        normal_model: LotusModel | None = None,
        *,
        seed: int = 0,
        ensemble: int = 1,
        batch_size: int | None = None,
        depth_tau: float = 0.02,
        normal_tau: float = 0.1,
        progress: bool = True,
    ):
        if depth_model.info.task != "depth":
            raise InputError(
                f"{depth_model.info.name} is not a depth checkpoint",
                fix=f"pass a lotus-depth-* checkpoint to {DEPTH_FLAG}",
            )
        if normal_model is not None and normal_model.info.task != "normal":
            raise InputError(
                f"{normal_model.info.name} is not a normal checkpoint",
                fix=f"pass a lotus-normal-* checkpoint to {NORMAL_FLAG}",
            )
        self.depth_model, self.normal_model = depth_model, normal_model
        self.seed, self.ensemble, self.batch_size = seed, ensemble, batch_size
        self.depth_tau, self.normal_tau = depth_tau, normal_tau
        self.progress = progress
        self.space: DepthSpace = depth_model.info.space  # type: ignore[assignment]
        self.name = self._tag()

    @classmethod
    def from_checkpoints(
        cls,
        depth: str,
        normal: str | None = None,
        *,
        device: str = "auto",
        dtype: str | None = None,
        processing_res: int = 768,
        space: DepthSpace | None = None,
        **kwargs: object,
    ) -> LotusPredictor:
        """Load hub ids or local folders. `space` overrides what the depth checkpoint's name or
        config says only where they say nothing (a contradiction is an error). Other keyword
        arguments go to the constructor."""
        from lotus_core.errors import LotusError
        from lotus_core.pipeline import LotusModel

        common = dict(device=device, dtype=dtype, processing_res=processing_res)
        try:
            depth_model = LotusModel.load(
                depth, task="depth", space=space, flag=DEPTH_FLAG, **common
            )
            normal_model = (
                None
                if normal is None
                else LotusModel.load(normal, task="normal", flag=NORMAL_FLAG, **common)
            )
        except LotusError as exc:
            raise as_input_error(exc) from exc
        return cls(depth_model, normal_model, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, config: PredictorConfig, progress: bool = True) -> LotusPredictor:
        """Build from the scene config's `predictor` section (kind "lotus")."""
        return cls.from_checkpoints(
            config.depth_model,
            config.normal_model,
            device=config.device,
            dtype=None if config.dtype in (None, "auto") else config.dtype,
            processing_res=config.processing_res,
            space=config.space,
            seed=config.seed,
            ensemble=config.ensemble,
            batch_size=config.batch_size,
            progress=progress,
        )

    def _tag(self) -> str:
        """Producer tag; also keys the workspace, so it names what changes the outputs."""
        models = [self.depth_model] + ([self.normal_model] if self.normal_model else [])
        names = "+".join(m.info.name for m in models)
        m = self.depth_model
        dtype = str(m.dtype).replace("torch.", "")
        stochastic = any(x.info.variant == "g" for x in models)
        seed = f",seed{self.seed},ens{self.ensemble}" if stochastic else ""
        return f"lotus:{names}@{m.processing_res},{dtype}{seed}"

    def predict(self, frames: Sequence[Frame]) -> list[MonoPrediction]:
        """One MonoPrediction per frame, at the frame's image resolution."""
        from lotus_core.errors import LotusError

        order = sorted(range(len(frames)), key=lambda i: frames[i].image.shape[:2])
        step = self.batch_size or self.depth_model.batch_size
        out: list[MonoPrediction | None] = [None] * len(frames)
        bar = progress(total=len(frames), desc="lotus", unit="frame", disable=not self.progress)
        try:
            for k in range(0, len(order), step):
                chunk = order[k : k + step]
                images = [frames[i].image for i in chunk]
                for i, pred in zip(chunk, self._predict_images(images)):
                    out[i] = pred
                bar.update(len(chunk))
        except LotusError as exc:
            raise as_input_error(exc) from exc
        finally:
            bar.close()
        return out  # type: ignore[return-value]

    def _predict_images(self, images: list[np.ndarray]) -> list[MonoPrediction]:
        run = dict(seed=self.seed, ensemble=self.ensemble, batch_size=self.batch_size)
        depths = self.depth_model.predict(images, **run)
        normals: list[LotusResult | None] = [None] * len(images)
        if self.normal_model is not None:
            normals = self.normal_model.predict(images, **run)
        return [self._convert(d, n) for d, n in zip(depths, normals)]

    def _convert(self, depth: LotusResult, normal: LotusResult | None) -> MonoPrediction:
        confidence = None
        if depth.uncertainty is not None:
            confidence = confidence_from_spread(depth.uncertainty, self.depth_tau)
        if normal is not None and normal.uncertainty is not None:
            normal_conf = confidence_from_spread(normal.uncertainty, self.normal_tau)
            confidence = normal_conf if confidence is None else confidence * normal_conf
        return MonoPrediction(
            values=np.asarray(depth.values, dtype=np.float32),
            space=self.space,
            normal=None if normal is None else np.asarray(normal.normal, dtype=np.float32),
            confidence=confidence,
            producer=self.name,
        )
