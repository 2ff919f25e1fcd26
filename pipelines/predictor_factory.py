"""Build the configured predictor, and the fingerprint that keys the prediction stage."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
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


def predictor_factory_for(
    config: PredictorConfig, scene: SparseScene | None = None
) -> Callable[[], Predictor]:
    """A picklable factory (an executor may build the predictor in another process). Only a
    file predictor needs the scene, so a Lotus factory does not carry it to the workers."""
    return partial(make_predictor, config, scene if config.kind == "file" else None)


def check_predictor(config: PredictorConfig) -> None:
    """Fail before SfM, not after it, on a predictor that cannot work.

    File predictions: the folder and its space are checked. Lotus checkpoints given as local
    paths are inspected without loading weights (a missing folder, a normal model passed as
    the depth model); hub ids are left to the prediction stage, which a resumed run whose
    predictions are done never reaches.
    """
    if config.kind == "file":
        make_predictor(config)
        return
    from lotus_core.checkpoints import inspect_checkpoint  # no torch import
    from lotus_core.errors import LotusError
    from pipelines.lotus_predictor import DEPTH_FLAG, NORMAL_FLAG, as_input_error

    wanted = [(config.depth_model, "depth", config.space, DEPTH_FLAG)]
    if config.normal_model:
        wanted.append((config.normal_model, "normal", None, NORMAL_FLAG))
    for source, task, space, flag in wanted:
        if not _looks_local(source):
            continue
        try:
            inspect_checkpoint(source, task=task, space=space, flag=flag)
        except LotusError as exc:
            raise as_input_error(exc) from exc


def _looks_local(source: str) -> bool:
    """An existing path, or one written as a path (absolute, ./, ~): not a hub id."""
    return Path(source).expanduser().exists() or source.startswith(("/", ".", "~"))


def predictor_fingerprint(config: PredictorConfig) -> dict:
    """What the predictions depend on: the config, and the files for a file predictor."""
    data = to_dict(config)
    data.pop("batch_size")  # batching does not change the predictions
    if config.kind == "file" and config.predictions:
        data["files"] = folder_fingerprint(Path(config.predictions))
    return data
