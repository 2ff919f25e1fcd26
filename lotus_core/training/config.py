"""Training configurations: plain dataclasses, read from and written to JSON with strict keys.

The resolved config is written next to every checkpoint (`train_config.json`), so a saved
model says how it was made.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")


@dataclass
class VaeConfig:
    """A tiny AutoencoderKL trained on photos and Lotus-form depth/normal maps."""

    data: list[str] = field(default_factory=list)  # dataset folders (see training.data)
    out: str = "vae"  # output folder: diffusers AutoencoderKL + state.pt + loss.jsonl
    space: Literal["depth", "disparity"] = "depth"  # how depth maps are shown to the VAE
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    layers_per_block: int = 1
    norm_num_groups: int = 16
    steps: int = 2000
    batch_size: int = 8
    crop: int = 0  # train on random crop x crop patches (0: whole images); fully convolutional
    lr: float = 1e-3
    kl_weight: float = 1e-6  # as Stable Diffusion's VAE: a near-deterministic latent
    seed: int = 0
    save_every: int = 100  # steps between resumable checkpoints
    log_every: int = 10


@dataclass
class LotusConfig:
    """The Lotus stage. Defaults are the paper's protocol (x0 at t = T, detail preserver)."""

    data: list[str] = field(default_factory=list)  # dataset folders (see training.data)
    out: str = "lotus"  # output folder: the model (diffusers layout) + state.pt + loss.jsonl
    vae: str = ""  # frozen AutoencoderKL: its folder, or a checkpoint with vae/ ("": init's)
    init: str = ""  # Lotus or Stable Diffusion checkpoint to fine-tune (unet/, text encoder)
    task: Literal["depth", "normal"] = "depth"
    space: Literal["depth", "disparity"] = "depth"  # depth task only
    variant: Literal["d", "g"] = "d"  # g: noise latent concatenated after the image latent
    prediction: Literal["sample", "epsilon"] = "sample"  # x0- or noise-prediction
    timesteps: Literal["single", "uniform"] = "single"  # t = T only, or t ~ U{0..T-1}
    detail_preserver: bool = True  # add image reconstruction with switcher [0, 1]
    block_out_channels: list[int] = field(default_factory=lambda: [64, 128, 128])
    layers_per_block: int = 2
    attention_levels: int = 1  # cross/self-attention in the lowest this many resolutions
    attention_head_dim: int = 16
    norm_num_groups: int = 16
    steps: int = 4000
    batch_size: int = 8
    lr: float = 3e-4
    lr_warmup: int = 100  # linear warm-up steps
    seed: int = 0
    save_every: int = 100
    log_every: int = 10
    save_dtype: Literal["float32", "float16"] = "float32"  # weights as written for inference


def load_config(cls: type[T], path: str | Path, overrides: dict[str, Any] | None = None) -> T:
    """Read a config JSON file (unknown keys are errors), then apply `overrides`."""
    raw = json.loads(Path(path).read_text()) if path else {}
    raw.update(overrides or {})
    return from_dict(cls, raw)


def from_dict(cls: type[T], raw: dict[str, Any]) -> T:
    """`cls(**raw)` with a clear error for unknown keys."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")
    return cls(**raw)


def to_dict(config: Any) -> dict[str, Any]:
    return asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(config), indent=2) + "\n")
