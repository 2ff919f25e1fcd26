"""Build the configured predictor, and the fingerprint that keys the prediction stage."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import to_dict
from pipelines.predictors import FilePredictor, Predictor
from pipelines.scene_config import PredictorConfig
from pipelines.workspace import folder_fingerprint
from recon.colmap_model import SparseScene
from recon.errors import ConfigError


def make_predictor(config: PredictorConfig, scene: SparseScene | None = None) -> Predictor:
    """The configured predictor; `scene` lets a file predictor follow undistortion."""
    if config.kind == "file":
        if not config.predictions:
            raise ConfigError(
                "predictor.kind is 'file' but no predictions folder is set",
                fix="pass --predictions DIR",
            )
        grid = scene.source_pixel_grid if scene is not None and scene.source_cameras else None
        return FilePredictor(Path(config.predictions), space=config.space, source_grid=grid)
    from pipelines.lotus_predictor import LotusPredictor  # imports torch: only when needed

    return LotusPredictor.from_config(config)


def predictor_fingerprint(config: PredictorConfig) -> dict:
    """What the predictions depend on: the config, and the files for a file predictor."""
    data = to_dict(config)
    data.pop("batch_size")  # batching does not change the predictions
    if config.kind == "file" and config.predictions:
        data["files"] = folder_fingerprint(Path(config.predictions))
    return data
