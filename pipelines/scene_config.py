"""The scene command's configuration: one section per stage, each the stage's own params."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pipelines.executor_base import ExecutorConfig
from pipelines.stage_images import ImagesConfig
from recon.align import AlignParams
from recon.fusion import FusionParams
from recon.mesh import MeshParams
from recon.refine import RefineParams
from recon.sfm import SfMParams
from recon.video import VideoParams

DEFAULT_DEPTH_MODEL = "jingheya/lotus-depth-g-v2-1-disparity"
DEFAULT_NORMAL_MODEL = "jingheya/lotus-normal-g-v1-1"


@dataclass(frozen=True)
class PredictorConfig:
    kind: Literal["lotus", "file"] = "lotus"
    depth_model: str = DEFAULT_DEPTH_MODEL  # hub id or local folder (diffusers layout)
    normal_model: str | None = DEFAULT_NORMAL_MODEL  # None: no normals (uniform-ish weights)
    predictions: str | None = None  # kind=file: folder of <image stem>.npz
    space: Literal["depth", "disparity"] | None = None  # None: from the checkpoint / files
    processing_res: int = 768  # px, long edge fed to the model
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    seed: int = 0  # Lotus-G noise seed
    ensemble: int = 1  # Lotus-G runs per view; > 1 gives an uncertainty-based confidence
    batch_size: int = 2  # views per model call (equal sizes are batched)
    # GiB the model may take at processing_res; None = 80 % of the memory available now.
    memory_budget_gb: float | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(self.device)):
            raise ValueError(
                f"predictor.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}"
            )
        if self.processing_res < 64:
            raise ValueError("predictor.processing_res must be >= 64")
        if self.ensemble < 1 or self.batch_size < 1:
            raise ValueError("predictor.ensemble and predictor.batch_size must be >= 1")


@dataclass(frozen=True)
class SceneConfig:
    images: ImagesConfig = field(default_factory=ImagesConfig)
    sfm: SfMParams = field(default_factory=SfMParams)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # where the model runs
    # Smooth shape correction on by default: the global affine fit leaves a low-frequency warp.
    align: AlignParams = field(default_factory=lambda: AlignParams(refine=RefineParams()))
    fusion: FusionParams = field(default_factory=FusionParams)
    mesh: MeshParams = field(default_factory=MeshParams)
    video: VideoParams = field(default_factory=VideoParams)  # clips and frame folders
