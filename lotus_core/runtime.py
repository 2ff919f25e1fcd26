"""Device and dtype choice, and per-stage timing.

Default dtypes, by measurement (bench/lotus_speed.py, full-size SD2 architecture):
- CPU: bfloat16 where oneDNN has native bf16 kernels (AVX512-BF16 / AMX), else float32.
  float16 on CPU is never a default: it ran ~17x slower than the reference loop.
- CUDA / MPS: float16, upstream's `--half_precision` setting (not measured here: no GPU).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from lotus_core.errors import LotusInputError

log = logging.getLogger(__name__)

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """`auto`/None: CUDA, then MPS, then CPU. Raises when the named device is not available."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LotusInputError("CUDA is not available in this torch build", fix="use device='cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LotusInputError("MPS is not available", fix="use device='cpu'")
    if device.type not in ("cpu", "cuda", "mps"):
        raise LotusInputError(f"unsupported device {device}", fix="use cpu, cuda or mps")
    return device


def cpu_has_bf16() -> bool:
    """True when oneDNN reports native bfloat16 support on this CPU."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The weight/compute dtype: the given one, or the measured default for `device`."""
    if dtype is None or dtype == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_bf16() else torch.float32
        return torch.float16
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise LotusInputError(f"unknown dtype {dtype!r}", fix=f"use one of {sorted(DTYPES)}")
        dtype = DTYPES[dtype]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise LotusInputError(f"unsupported dtype {dtype}", fix="use float32, float16 or bfloat16")
    if dtype == torch.float16 and device.type == "cpu":
        log.warning(
            "float16 on CPU is very slow (no native kernels); bfloat16 or float32 is faster"
        )
    return dtype


class StageTimer:
    """Accumulated wall time per stage (seconds); synchronises CUDA so numbers are real."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - start

    def reset(self) -> None:
        self.seconds.clear()
