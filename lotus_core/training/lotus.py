"""The Lotus stage: adapting a UNet to dense prediction (Lotus, ICLR 2025, Sec. 3-4).

Per step, with the frozen VAE's scaled latent modes of B photos (z_x) and their annotations
(z_y), all (B, 4, h, w):
- timesteps: t = T - 1 (999) for every sample ("single", the paper's single-step protocol), or
  t ~ U{0..T-1} ("uniform", the standard multi-step diffusion protocol, for the ablation);
- Lotus-G: x_t = sqrt(abar_t) z + sqrt(1 - abar_t) eps, UNet input cat([z_x, x_t]) (image
  latent first, as the inference code); Lotus-D: the UNet input is z_x alone;
- regression target z ("sample", x0-prediction) or eps ("epsilon");
- the detail preserver appends the same B inputs with switcher [sin 0, sin 1, cos 0, cos 1]
  and z = z_x (reconstruct the photo); annotation rows use [sin 1, sin 0, cos 1, cos 0].
  Loss = MSE(annotation rows) + MSE(reconstruction rows).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from lotus_core.pipeline import switcher_embedding
from lotus_core.prompt import encode_empty_prompt
from lotus_core.training.config import LotusConfig, save_config
from lotus_core.training.data import load_dataset
from lotus_core.training.loop import train_loop
from lotus_core.training.models import (
    build_unet,
    load_unet,
    load_vae,
    save_model,
    write_static_parts,
)

log = logging.getLogger(__name__)
NUM_TRAIN_TIMESTEPS = 1000


def alphas_cumprod() -> torch.Tensor:
    """(T,) abar_t of Stable Diffusion's scaled-linear schedule (beta 0.00085..0.012)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, NUM_TRAIN_TIMESTEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


@dataclass(frozen=True)
class Batch:
    """One UNet call's worth of rows (R = B, or 2B with the detail preserver)."""

    inputs: torch.Tensor  # (R, 4 or 8, h, w) UNet input
    timesteps: torch.Tensor  # (R,) long
    class_labels: torch.Tensor  # (R, 4) task switcher
    target: torch.Tensor  # (R, 4, h, w) regression target (x0 or eps)
    annotation_rows: int  # the first this many rows are the annotation task


def check_config(config: LotusConfig) -> None:
    if config.variant == "d" and (config.prediction != "sample" or config.timesteps != "single"):
        raise ValueError("Lotus-D has no noise input: it needs prediction=sample, timesteps=single")


@torch.no_grad()
def encode(vae: torch.nn.Module, pixels: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, 4, H/f, W/f) scaled latent modes, as the inference code."""
    scaling = float(vae.config.scaling_factor)
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    parts = [
        vae.encode(pixels[i : i + chunk]).latent_dist.mode() for i in range(0, len(pixels), chunk)
    ]
    return (torch.cat(parts) - shift) * scaling


def make_batch(
    config: LotusConfig,
    image_latent: torch.Tensor,
    target_latent: torch.Tensor,
    generator: torch.Generator,
    abar: torch.Tensor,
) -> Batch:
    """Rows for one step from (B, 4, h, w) photo and annotation latents (module docstring)."""
    b = image_latent.shape[0]
    cond, clean = image_latent, target_latent
    labels = switcher_embedding(True).expand(b, -1)
    if config.detail_preserver:
        cond = torch.cat([image_latent, image_latent])
        clean = torch.cat([target_latent, image_latent])
        labels = torch.cat([labels, switcher_embedding(False).expand(b, -1)])
    rows = cond.shape[0]
    if config.timesteps == "single":
        t = torch.full((b,), NUM_TRAIN_TIMESTEPS - 1, dtype=torch.long)
    else:
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (b,), generator=generator)
    t = t.repeat(rows // b)
    if config.variant == "d":
        return Batch(cond, t, labels, clean, b)
    noise = torch.randn(clean.shape, generator=generator)
    a = abar[t].view(-1, 1, 1, 1)
    noisy = a.sqrt() * clean + (1 - a).sqrt() * noise
    target = clean if config.prediction == "sample" else noise
    return Batch(torch.cat([cond, noisy], 1), t, labels, target, b)


def lotus_losses(
    unet: torch.nn.Module, batch: Batch, prompt: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Annotation MSE + reconstruction MSE (0 without the detail preserver)."""
    rows = batch.inputs.shape[0]
    pred = unet(
        batch.inputs,
        batch.timesteps,
        encoder_hidden_states=prompt.expand(rows, -1, -1),
        class_labels=batch.class_labels,
        return_dict=False,
    )[0]
    k = batch.annotation_rows
    annotation = torch.nn.functional.mse_loss(pred[:k], batch.target[:k])
    losses = {"loss": annotation, "annotation": annotation}
    if rows > k:
        recon = torch.nn.functional.mse_loss(pred[k:], batch.target[k:])
        losses.update(loss=annotation + recon, reconstruction=recon)
    return losses


def prepare_latents(config: LotusConfig, vae: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Photo and annotation latents of the whole dataset, (N, 4, h, w) each (VAE frozen)."""
    data = load_dataset(config.data, config.space)
    return encode(vae, data["image"]), encode(vae, data[config.task])


def train_lotus(config: LotusConfig) -> Path:
    """Train (or resume) a Lotus model into config.out (diffusers layout, loadable by
    `LotusModel.load`), with state.pt and loss.jsonl beside it."""
    check_config(config)
    out = write_static_parts(config.out, config)
    save_config(config, out / "train_config.json")
    vae = load_vae(config.vae or config.init)
    image_latent, target_latent = prepare_latents(config, vae)
    prompt = encode_empty_prompt(out)
    torch.manual_seed(config.seed)
    unet = load_unet(config.init, config.variant) if config.init else build_unet(config)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(config.seed)
    abar = alphas_cumprod()
    log.info("lotus: %d samples, unet %.2fM params", len(image_latent), count_params(unet) / 1e6)

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        index = torch.randint(0, len(image_latent), (config.batch_size,), generator=generator)
        batch = make_batch(config, image_latent[index], target_latent[index], generator, abar)
        return lotus_losses(unet, batch, prompt)

    def on_save(step: int) -> None:
        save_model(out, unet, vae, config.save_dtype)
        log.info("lotus step %d saved to %s", step, out)

    train_loop(
        out,
        unet,
        optimizer,
        generator,
        step_fn,
        steps=config.steps,
        lr=config.lr,
        warmup=config.lr_warmup,
        save_every=config.save_every,
        log_every=config.log_every,
        on_save=on_save,
    )
    return out


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
