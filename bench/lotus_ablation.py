"""Ablation of the Lotus protocol at small scale (Lotus, ICLR 2025, Table 3 direction).

    python bench/lotus_ablation.py --data /tmp/lotus/train --heldout /tmp/lotus/heldout \
        --vae models/vae-tiny --work /tmp/lotus/ablation --steps 400

Trains one small Lotus-G depth model per row with `lotus_core.training` (same data, UNet, seed
and number of steps), then scores depth on held-out generated scenes (AbsRel, delta1 after a
per-image least-squares scale/shift in depth space):

  eps, multi-step       eps-prediction, t ~ U{0..999}; DDIM sampling, --sample-steps steps
  x0, multi-step        x0-prediction,  t ~ U{0..999}; DDIM sampling, --sample-steps steps
  x0, single step       x0-prediction,  t = 999;       one step (the Lotus inference)
  x0, single + DP       the same with the detail preserver (Lotus-G as released)

Runs resume from their folders. Printed, never asserted; --json writes the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from lotus_core.pipeline import LotusModel
from lotus_core.training.config import LotusConfig
from lotus_core.training.data import load_dataset
from lotus_core.training.lotus import alphas_cumprod, train_lotus
from lotus_core.training.metrics import depth_errors

ROWS = {  # label: (folder, config keys)
    "eps, multi-step": ("eps-multi", dict(prediction="epsilon", timesteps="uniform")),
    "x0, multi-step": ("x0-multi", dict(prediction="sample", timesteps="uniform")),
    "x0, single step": ("x0-single", dict(prediction="sample", timesteps="single")),
    "x0, single + DP": ("x0-single-dp", dict(prediction="sample", timesteps="single")),
}


@torch.no_grad()
def sample(model: LotusModel, image_latent: torch.Tensor, prediction: str, steps: int, seed: int):
    """(B, 4, h, w) photo latents -> (B, 4, h, w) annotation latents by DDIM (eta 0) from pure
    noise over `steps` evenly spaced timesteps from 999 down; steps = 1 is the Lotus step."""
    abar = alphas_cumprod().double()
    ts = torch.linspace(999, 0, steps + 1).round().long()[:-1]
    x = model.noise(image_latent.shape, seed).expand_as(image_latent).double()
    prompt = model.prompt.expand(len(image_latent), -1, -1)
    labels = model.switcher.expand(len(image_latent), -1)
    for i, t in enumerate(ts):
        out = model.unet(
            torch.cat([image_latent, x.float()], 1),
            torch.full((len(x),), int(t)),
            encoder_hidden_states=prompt,
            class_labels=labels,
        ).sample.double()
        a = abar[t]
        x0 = out if prediction == "sample" else (x - (1 - a).sqrt() * out) / a.sqrt()
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        a_next = abar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=torch.float64)
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x.float()


def evaluate(folder: Path, heldout: dict, prediction: str, steps: int) -> dict[str, float]:
    model = LotusModel.load(folder, device="cpu", dtype="float32", task="depth")
    errors = []
    for i in range(0, len(heldout["image"]), 16):
        latent = model.encode(heldout["image"][i : i + 16])
        depth = model.to_output(model.decode(sample(model, latent, prediction, steps, seed=0)))
        for values, truth in zip(depth[:, 0].numpy(), heldout["z"][i : i + 16]):
            errors.append(depth_errors(values, truth, "depth"))
    return {k: float(np.mean([e[k] for e in errors])) for k in ("abs_rel", "delta1")}


def load_heldout(folder: str) -> dict:
    from lotus_core.training.data import image_stems

    data = load_dataset([folder], "depth")
    stems = image_stems(Path(folder))
    z = [np.load(Path(folder) / "depth" / f"{s}.npy") for s in stems]
    return {"image": data["image"], "z": z}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="training folder")
    parser.add_argument("--heldout", required=True, help="held-out folder (other seeds)")
    parser.add_argument("--vae", required=True, help="frozen VAE folder")
    parser.add_argument("--work", required=True, help="one sub-folder per row")
    parser.add_argument("--steps", type=int, default=400, help="training steps per row")
    parser.add_argument("--sample-steps", type=int, default=10, help="DDIM steps (multi-step rows)")
    parser.add_argument("--block-out-channels", default="16,32,64,64")
    parser.add_argument("--seed", type=int, default=0, help="UNet init and batch sampling seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    heldout = load_heldout(args.heldout)
    table = {}
    for name, (slug, row) in ROWS.items():
        folder = Path(args.work) / slug
        config = LotusConfig(
            data=[args.data],
            out=str(folder),
            vae=args.vae,
            variant="g",
            steps=args.steps,
            seed=args.seed,
            block_out_channels=[int(c) for c in args.block_out_channels.split(",")],
            layers_per_block=1,
            norm_num_groups=8,
            lr=5e-4,
            save_every=50,
            log_every=10,
            detail_preserver=slug.endswith("-dp"),
            **row,
        )
        train_lotus(config)
        steps = 1 if row["timesteps"] == "single" else args.sample_steps
        table[name] = {**evaluate(folder, heldout, row["prediction"], steps), "sample_steps": steps}
        print(f"{name:18s} AbsRel {table[name]['abs_rel']:.3f}  delta1 {table[name]['delta1']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
