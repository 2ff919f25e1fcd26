"""Training a tiny AutoencoderKL for small-scale Lotus (Lotus itself freezes SD's VAE).

The VAE sees what the Lotus stage will ask it to encode and decode: photos, depth maps in
Lotus form (3 equal channels) and normal maps, with random horizontal flips. Loss: L1
reconstruction + `kl_weight` x KL. After training, `scaling_factor` is set to 1 / std of the
photo latents (Stable Diffusion's 0.18215 was chosen the same way), so scaled latents have
unit spread.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from lotus_core.training.config import VaeConfig, save_config
from lotus_core.training.data import load_dataset
from lotus_core.training.loop import train_loop
from lotus_core.training.models import build_vae

log = logging.getLogger(__name__)


def vae_batch(
    pool: torch.Tensor, batch_size: int, generator: torch.Generator, crop: int = 0
) -> torch.Tensor:
    """(B, 3, c, c) random crops (c = `crop`; 0: whole (H, W) images) of random samples of
    `pool` (N, 3, H, W), half of them mirrored. One crop window per batch."""
    index = torch.randint(0, pool.shape[0], (batch_size,), generator=generator)
    batch = pool[index]
    if crop:
        h, w = batch.shape[-2:]
        top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
        batch = batch[..., top : top + crop, left : left + crop]
    batch = batch.clone()
    flip = torch.rand(batch_size, generator=generator) < 0.5
    batch[flip] = batch[flip].flip(-1)
    return batch


def vae_losses(
    vae: torch.nn.Module, batch: torch.Tensor, kl_weight: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    posterior = vae.encode(batch).latent_dist
    recon = vae.decode(posterior.sample(generator=generator)).sample
    l1 = (recon - batch).abs().mean()
    kl = posterior.kl().mean() / batch[0].numel()
    return {"loss": l1 + kl_weight * kl, "l1": l1, "kl": kl}


@torch.no_grad()
def latent_scaling(vae: torch.nn.Module, images: torch.Tensor, count: int = 256) -> float:
    """1 / std of the latent modes of the first `count` images (N, 3, H, W)."""
    modes = [vae.encode(images[i : i + 32]).latent_dist.mode() for i in range(0, count, 32)]
    return float(1.0 / torch.cat(modes).std().clamp(min=1e-6))


def train_vae(config: VaeConfig) -> Path:
    """Train (or resume) a tiny VAE; writes config.json + weights, state.pt, loss.jsonl to out."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "train_config.json")
    data = load_dataset(config.data, config.space)
    pool = torch.cat([data["image"], data["depth"], data["normal"]])
    images = data["image"][
        torch.randperm(len(data["image"]), generator=torch.Generator().manual_seed(0))
    ]
    torch.manual_seed(config.seed)
    vae = build_vae(config)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        batch = vae_batch(pool, config.batch_size, generator, config.crop)
        return vae_losses(vae, batch, config.kl_weight, generator)

    def on_save(step: int) -> None:
        vae.eval()
        vae.register_to_config(scaling_factor=latent_scaling(vae, images, min(256, len(images))))
        vae.save_pretrained(out)
        vae.train()
        log.info("vae step %d saved to %s", step, out)

    train_loop(
        out,
        vae,
        optimizer,
        generator,
        step_fn,
        steps=config.steps,
        lr=config.lr,
        warmup=0,
        save_every=config.save_every,
        log_every=config.log_every,
        on_save=on_save,
    )
    return out
