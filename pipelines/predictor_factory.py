"""Build the configured predictor, and the fingerprint that keys the prediction stage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pipelines.config import to_dict
from pipelines.predictors import FilePredictor, Predictor
from pipelines.scene_config import PredictorConfig
from pipelines.workspace import folder_fingerprint
from recon.colmap_model import SparseScene
from recon.errors import ConfigError
from recon.memory import check_budget

log = logging.getLogger(__name__)


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

    _warn_if_bundled(config)
    return LotusPredictor.from_config(config)


BUNDLED_MODELS = Path(__file__).resolve().parents[1] / "models"


def _warn_if_bundled(config: PredictorConfig) -> None:
    """One console line when a bundled demo model runs: it has only seen generated rooms."""
    for source in (config.depth_model, config.normal_model):
        if source and Path(source).expanduser().resolve().parent == BUNDLED_MODELS:
            log.warning(
                "%s is a bundled demo model trained on generated rooms only: on real photos "
                "its depth and normals are poor (see README for the official checkpoints)",
                source,
            )
            return


def predictor_factory_for(
    config: PredictorConfig, scene: SparseScene | None = None
) -> Callable[[], Predictor]:
    """A picklable factory (an executor may build the predictor in another process). Only a
    file predictor needs the scene, so a Lotus factory does not carry it to the workers."""
    return partial(make_predictor, config, scene if config.kind == "file" else None)


def check_predictor(config: PredictorConfig) -> None:
    """Fail before SfM, not after it, on a predictor that cannot work.

    File predictions: the folder and its space are checked. Lotus: the memory the processing
    resolution needs, each checkpoint inspected without loading weights (a missing folder, a
    typo'd local path, a normal model passed as the depth model, a hub id neither cached nor
    reachable) and the device. Callers skip this when the predictions are already done.
    """
    if config.kind == "file":
        make_predictor(config)
        return
    check_budget(
        lotus_memory_bytes(config.processing_res, config.batch_size),
        config.memory_budget_gb,
        f"Lotus at predictor.processing_res={config.processing_res}",
        "predictor.memory_budget_gb",
        "lower predictor.processing_res (768 is the models' training resolution)",
    )
    from lotus_core.checkpoints import inspect_checkpoint  # no torch import
    from lotus_core.errors import LotusError
    from pipelines.lotus_predictor import DEPTH_FLAG, NORMAL_FLAG, as_input_error

    wanted = [(config.depth_model, "depth", config.space, DEPTH_FLAG)]
    if config.normal_model:
        wanted.append((config.normal_model, "normal", None, NORMAL_FLAG))
    try:
        for source, task, space, flag in wanted:
            # A hub id is found in the local cache, or downloaded, now rather than after SfM.
            inspect_checkpoint(_as_path_if_local(source), task=task, space=space, flag=flag)
        from lotus_core.runtime import resolve_device  # imports torch: lotus runs need it

        resolve_device(config.device)
    except LotusError as exc:
        raise as_input_error(exc) from exc


def _as_path_if_local(source: str) -> str:
    """`source` unchanged, or written as a path ('./x/y') when it names a local path.

    Local: an existing path, one written as a path (absolute, ./, ~, more than one '/'), or
    one whose parent folder exists here (`models/lotus-depth-tinyy`, a typo next to
    `models/lotus-depth-tiny`); such a name is a missing folder, never a hub id."""
    path = Path(source).expanduser()
    local = path.exists() or source.startswith(("/", ".", "~")) or source.count("/") > 1
    local = local or (source.count("/") == 1 and path.parent.is_dir())
    if local and not source.startswith(("/", ".", "~")):
        return f"./{source}"
    return source


def lotus_memory_bytes(processing_res: int, batch_size: int) -> float:
    """A lower bound on Lotus's peak memory (bytes) at this resolution: the float32 input
    image (3 channels) and two full-resolution activations of the VAE encoder's first level
    (128 channels each), per image of a batch, for a 4:3 image whose long edge is
    `processing_res`. The UNet and weights come on top."""
    pixels = processing_res * processing_res * 3 / 4
    return batch_size * pixels * 4 * (3 + 2 * 128)


def predictor_fingerprint(config: PredictorConfig) -> dict:
    """What the predictions depend on: the config, and the files for a file predictor."""
    data = to_dict(config)
    data.pop("batch_size")  # batching does not change the predictions
    data.pop("memory_budget_gb")  # nor does the budget (it only refuses work)
    if config.kind == "file" and config.predictions:
        data["files"] = folder_fingerprint(Path(config.predictions))
    return data
