"""Lotus depth and normal inference: checkpoint loading and a slim single-step pipeline.

    from lotus_core import LotusModel
    model = LotusModel.load("jingheya/lotus-depth-g-v2-1-disparity", device="cpu")
    results = model.predict([rgb_uint8], seed=0, ensemble=1)   # list of LotusResult

Knows torch and diffusers, nothing of geometry files or of the rest of lotus-recon. Heavy
imports are deferred, so `import lotus_core` (or its errors) is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lotus_core.errors import CheckpointError, LotusError, LotusInputError

if TYPE_CHECKING:
    from lotus_core.checkpoints import CheckpointInfo, inspect_checkpoint
    from lotus_core.pipeline import LotusModel, LotusResult

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "LotusError",
    "LotusInputError",
    "LotusModel",
    "LotusResult",
    "inspect_checkpoint",
]

_LAZY = {
    "LotusModel": "lotus_core.pipeline",
    "LotusResult": "lotus_core.pipeline",
    "CheckpointInfo": "lotus_core.checkpoints",
    "inspect_checkpoint": "lotus_core.checkpoints",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lotus_core' has no attribute {name!r}")
