"""The slim single-step Lotus pipeline.

Per batch of equal-size images (B, 3, H, W in [-1, 1], padded to a multiple of 8):
  1. VAE-encode, latent mode (deterministic), times `vae.config.scaling_factor`.
  2. Lotus-G: concatenate a seeded Gaussian noise latent after the image latent (8 channels,
     image first, as upstream `pipeline.py` LotusGPipeline); Lotus-D: the image latent alone.
  3. One UNet call at t = 999 predicting x0, conditioned on the cached empty-prompt embedding
     and the annotation switcher `class_labels` = [sin 1, sin 0, cos 1, cos 0].
  4. VAE-decode; clamp to [-1, 1]. Depth: channels mapped to [0, 1] and averaged. Normals:
     unit-normalised, then negated into the OpenCV camera frame (see `lotus_core.normals`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lotus_core.checkpoints import CheckpointInfo, Space, Task, inspect_checkpoint
from lotus_core.errors import LotusInputError
from lotus_core.preprocessing import (
    Geometry,
    check_images,
    group_by_size,
    plan_geometry,
    restore,
    to_model_input,
)
from lotus_core.prompt import empty_prompt_embedding
from lotus_core.runtime import StageTimer, resolve_device, resolve_dtype

log = logging.getLogger(__name__)


def switcher_embedding(annotation: bool = True) -> torch.Tensor:
    """(1, 4) float32 task switcher: annotation [sin 1, sin 0, cos 1, cos 0]; the detail
    preserver (image reconstruction) [sin 0, sin 1, cos 0, cos 1]."""
    x = torch.tensor([[1.0, 0.0]] if annotation else [[0.0, 1.0]])
    return torch.cat([torch.sin(x), torch.cos(x)], dim=-1)


@dataclass(frozen=True)
class LotusResult:
    """One image's prediction, at the image's resolution. Plain numpy, no torch."""

    task: Task
    space: Space | None  # depth task: the space `values` are affine in; None for normals
    values: np.ndarray | None  # (H, W) float32 in [0, 1], affine-invariant depth or disparity
    normal: np.ndarray | None  # (H, W, 3) float32, unit, OpenCV camera frame (x right, y down)
    # (H, W) float32 >= 0, spread of a Lotus-G ensemble: depth task, standard deviation of
    # `values` (units of the [0, 1] range); normals, mean angle (radians) between members
    # and the mean normal. None for a single run or Lotus-D (deterministic).
    uncertainty: np.ndarray | None = None
    producer: str = "lotus"


def _load_component(cls: type, path: str, dtype: torch.dtype) -> torch.nn.Module:
    # Without accelerate diffusers cannot skip the random init; say so once, not per model.
    low_mem = importlib.util.find_spec("accelerate") is not None
    model = cls.from_pretrained(path, torch_dtype=dtype, low_cpu_mem_usage=low_mem)
    return model.eval().requires_grad_(False)


class LotusModel:
    """A loaded Lotus checkpoint: UNet + VAE + cached empty-prompt embedding."""

    def __init__(
        self,
        info: CheckpointInfo,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        prompt_embedding: torch.Tensor,
        *,
        device: torch.device,
        dtype: torch.dtype,
        processing_res: int = 768,
        batch_size: int | None = None,
    ):
        self.info = info
        self.unet, self.vae = unet, vae
        self.device, self.dtype = device, dtype
        self.processing_res = processing_res
        self.batch_size = batch_size or (1 if device.type == "cpu" else 4)
        self.prompt = prompt_embedding.to(device=device, dtype=dtype)  # (1, L, C)
        self.switcher = switcher_embedding().to(device=device, dtype=dtype)  # (1, 4)
        self.scaling = float(vae.config.scaling_factor)
        self.shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.timer = StageTimer(device)

    @classmethod
    def load(
        cls,
        source: str | os.PathLike,
        *,
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype | None = None,
        processing_res: int = 768,
        task: str | None = None,
        space: str | None = None,
        batch_size: int | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
        flag: str = "the checkpoint argument",
    ) -> LotusModel:
        """Load a hub id or local folder (diffusers layout). See `inspect_checkpoint` for how
        variant, task and space are found; `task`/`space` are the caller's expectation.

        dtype None picks the measured default for the device (`runtime.resolve_dtype`);
        channels_last None turns it on for the CPU, where oneDNN's channels-last convolutions
        halved the time per image (bench/lotus_speed.py: bf16 alone 1.0-1.1x the reference
        loop, bf16 + channels_last 1.9-2.2x).
        The tokenizer and text encoder are loaded only the first time, to compute the cached
        empty-prompt embedding, and freed right after.
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel

        info = inspect_checkpoint(source, task=task, space=space, flag=flag)
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        # Hub snapshots live in the shared HF cache: keep our file out of them.
        from_hub = not os.path.isdir(os.path.expanduser(os.fspath(source)))
        prompt = empty_prompt_embedding(info.path, prefer_user_cache=from_hub)
        unet = _load_component(UNet2DConditionModel, str(info.path / "unet"), dt).to(dev)
        vae = _load_component(AutoencoderKL, str(info.path / "vae"), dt).to(dev)
        if dev.type == "cpu" if channels_last is None else channels_last:
            unet.to(memory_format=torch.channels_last)
            vae.to(memory_format=torch.channels_last)
        if compile:
            unet = torch.compile(unet)
            vae.decoder = torch.compile(vae.decoder)
        return cls(
            info,
            unet,
            vae,
            prompt,
            device=dev,
            dtype=dt,
            processing_res=processing_res,
            batch_size=batch_size,
        )

    # -- stages ---------------------------------------------------------------------------
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 4, H/8, W/8) scaled latent mode."""
        with self.timer.stage("encode"):
            x = pixels.to(device=self.device, dtype=self.dtype)
            latent = self.vae.encode(x).latent_dist.mode()
            return (latent - self.shift) * self.scaling

    def noise(self, latent_shape: torch.Size, seed: int) -> torch.Tensor:
        """(1, C, h, w) standard normal noise from a CPU generator: the same for every device
        and every image of a batch, so batching never changes a result."""
        generator = torch.Generator("cpu").manual_seed(int(seed))
        shape = (1, self.info.latent_channels, *latent_shape[-2:])
        return torch.randn(shape, generator=generator).to(device=self.device, dtype=self.dtype)

    def denoise(self, latent: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """One UNet call at t = T - 1 (999): x0 prediction, (B, 4, h, w)."""
        with self.timer.stage("unet"):
            b = latent.shape[0]
            x = latent if noise is None else torch.cat([latent, noise.expand(b, -1, -1, -1)], 1)
            t = torch.full(
                (b,), self.info.num_train_timesteps - 1, device=self.device, dtype=torch.long
            )
            return self.unet(
                x,
                t,
                encoder_hidden_states=self.prompt.expand(b, -1, -1),
                class_labels=self.switcher.expand(b, -1),
                return_dict=False,
            )[0]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, 4, h, w) -> (B, 3, 8h, 8w) float32 clamped to [-1, 1]."""
        with self.timer.stage("decode"):
            image = self.vae.decode(latent / self.scaling + self.shift, return_dict=False)[0]
            return image.float().clamp_(-1.0, 1.0)

    def to_output(self, decoded: torch.Tensor) -> torch.Tensor:
        """Decoded (B, 3, H, W) -> depth (B, 1, H, W) in [0, 1] or OpenCV normals (B, 3, H, W).

        Depth follows upstream: per channel `x / 2 + 0.5` clamped to [0, 1], mean of channels.
        """
        if self.info.task == "depth":
            return (decoded / 2 + 0.5).mean(dim=1, keepdim=True)
        return -torch.nn.functional.normalize(decoded, dim=1, eps=1e-6)

    # -- prediction -----------------------------------------------------------------------
    def predict(
        self,
        images: Sequence[np.ndarray],
        *,
        seed: int = 0,
        ensemble: int = 1,
        batch_size: int | None = None,
    ) -> list[LotusResult]:
        """Predict each (H, W, 3) uint8 RGB image; results at each image's own resolution.

        Lotus-G: member k of an ensemble uses noise seeded `seed + k`; the result is the mean
        (normals: the normalised mean) and `uncertainty` the spread. Lotus-D is deterministic:
        `seed` and `ensemble` are ignored.
        """
        images = list(images)
        check_images(images)
        if ensemble < 1:
            raise LotusInputError(f"ensemble must be >= 1, got {ensemble}", fix="use 1 or more")
        if self.info.variant == "d":
            ensemble = 1
        results: list[LotusResult | None] = [None] * len(images)
        with torch.inference_mode():
            for indices in group_by_size(images, batch_size or self.batch_size):
                batch = [images[i] for i in indices]
                h, w = batch[0].shape[:2]
                geometry = plan_geometry(h, w, self.processing_res)
                for i, result in zip(indices, self._predict_batch(batch, geometry, seed, ensemble)):
                    results[i] = result
        return results  # type: ignore[return-value]

    def _predict_batch(
        self, batch: list[np.ndarray], geometry: Geometry, seed: int, ensemble: int
    ) -> list[LotusResult]:
        latent = self.encode(to_model_input(batch, geometry))
        members = []
        for k in range(ensemble):
            noise = self.noise(latent.shape, seed + k) if self.info.variant == "g" else None
            members.append(self.to_output(self.decode(self.denoise(latent, noise))))
        mean, spread = self._combine(torch.stack(members))
        mean = restore(mean, geometry)
        spread = None if spread is None else restore(spread, geometry)
        return [
            self._result(mean[j], None if spread is None else spread[j]) for j in range(len(batch))
        ]

    def _combine(self, members: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, B, C, H, W) member outputs -> mean (B, C, H, W) and spread (B, 1, H, W) or None."""
        if members.shape[0] == 1:
            return members[0], None
        if self.info.task == "depth":
            return members.mean(0), members.std(0, unbiased=False)
        mean = torch.nn.functional.normalize(members.mean(0), dim=1, eps=1e-6)
        cos = (members * mean.unsqueeze(0)).sum(2, keepdim=True).clamp(-1.0, 1.0)
        return mean, torch.arccos(cos).mean(0)

    def _result(self, output: torch.Tensor, spread: torch.Tensor | None) -> LotusResult:
        """(C, H, W) output at input size -> LotusResult with numpy arrays."""
        uncertainty = None if spread is None else spread[0].clamp_(min=0).cpu().numpy()
        if self.info.task == "depth":
            values = output[0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
            return LotusResult("depth", self.info.space, values, None, uncertainty, self.info.tag)
        normal = torch.nn.functional.normalize(output, dim=0, eps=1e-6).permute(1, 2, 0)
        normal_np = normal.cpu().numpy().astype(np.float32)
        return LotusResult("normal", None, None, normal_np, uncertainty, self.info.tag)

    def describe(self) -> str:
        """One line: checkpoint, variant, task/space, device, dtype, processing resolution."""
        space = f"/{self.info.space}" if self.info.space else ""
        dtype = str(self.dtype).replace("torch.", "")
        return (
            f"{self.info.name} (Lotus-{self.info.variant.upper()}, {self.info.task}{space}) on "
            f"{self.device.type} {dtype}, processing_res={self.processing_res}"
        )
