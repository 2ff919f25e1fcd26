"""Model builders for training, and the checkpoint writer (official diffusers folder layout).

A trained model is saved exactly like a Lotus release (unet/, vae/, text_encoder/,
tokenizer/, scheduler/, model_index.json) plus `lotus_recon.json` (task, space), so
`LotusModel.load(folder)` reads it unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from lotus_core.checkpoints import METADATA_FILE
from lotus_core.testing import CROSS_DIM, write_pipeline_components
from lotus_core.training.config import LotusConfig, VaeConfig

LATENT_CHANNELS = 4


def build_vae(config: VaeConfig) -> torch.nn.Module:
    """A fresh AutoencoderKL; downsampling factor 2^(len(block_out_channels) - 1)."""
    from diffusers import AutoencoderKL

    n = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=config.norm_num_groups,
        sample_size=128,
        scaling_factor=1.0,  # set from the latents' spread after training
    )


def build_unet(config: LotusConfig) -> torch.nn.Module:
    """A fresh Lotus UNet: 4-d projection class embedding (the task switcher), cross-attention
    to the empty-prompt embedding (and self-attention) only in the lowest resolutions."""
    from diffusers import UNet2DConditionModel

    n = len(config.block_out_channels)
    attention = [i >= n - config.attention_levels for i in range(n)]
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention))
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=2 * LATENT_CHANNELS if config.variant == "g" else LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        layers_per_block=config.layers_per_block,
        block_out_channels=tuple(config.block_out_channels),
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=CROSS_DIM,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        use_linear_projection=True,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=4,
    )


def load_vae(path: str | Path) -> torch.nn.Module:
    """A frozen AutoencoderKL from a vae folder or a checkpoint folder holding vae/."""
    from diffusers import AutoencoderKL

    path = Path(path)
    if (path / "vae" / "config.json").is_file():
        path = path / "vae"
    return AutoencoderKL.from_pretrained(path).eval().requires_grad_(False)


def load_unet(path: str | Path, variant: str) -> torch.nn.Module:
    """The UNet of a checkpoint folder (its unet/) made into a Lotus UNet, for fine-tuning.

    A Lotus checkpoint loads as is. A Stable Diffusion UNet (no class embedding, 4 input
    channels) gets the 4-d projection class embedding (the task switcher, freshly initialised)
    and, for Lotus-G, a conv_in over 8 channels whose weights are the original ones duplicated
    and halved, so the image + noise input starts out seen like the original 4-channel input.
    """
    from diffusers import UNet2DConditionModel

    source = UNet2DConditionModel.from_pretrained(Path(path) / "unet")
    c_in = 2 * source.config.out_channels if variant == "g" else source.config.out_channels
    if source.config.class_embed_type == "projection" and source.config.in_channels == c_in:
        return source
    config = {
        **source.config,
        "in_channels": c_in,
        "class_embed_type": "projection",
        "projection_class_embeddings_input_dim": 4,
    }
    unet = UNet2DConditionModel.from_config(config)
    weights = source.state_dict()
    w = weights["conv_in.weight"]  # (C, in, 3, 3)
    if w.shape[1] != c_in:
        weights["conv_in.weight"] = torch.cat([w] * (c_in // w.shape[1]), 1) * (w.shape[1] / c_in)
    missing, unexpected = unet.load_state_dict(weights, strict=False)
    if unexpected or any(not k.startswith("class_embedding.") for k in missing):
        raise ValueError(f"{path}/unet does not fit a Lotus UNet: {missing + unexpected}")
    return unet


def write_static_parts(folder: str | Path, config: LotusConfig) -> Path:
    """Text encoder and tokenizer (`config.init`'s, else the tiny one seeded by `config.seed`),
    scheduler, model_index, metadata.

    Written once, before training, because the UNet is trained against this text encoder's
    empty-prompt embedding.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "text_encoder" / "config.json").is_file():
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            write_pipeline_components(folder, config.variant, config.prediction)
        if config.init:  # fine-tuning: the checkpoint's own text encoder and tokenizer
            for part in ("text_encoder", "tokenizer"):
                shutil.rmtree(folder / part)
                shutil.copytree(Path(config.init) / part, folder / part)
    meta = {"task": config.task}
    if config.task == "depth":
        meta["space"] = config.space
    (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def save_model(
    folder: str | Path, unet: torch.nn.Module, vae: torch.nn.Module, dtype: str = "float32"
) -> None:
    """Write unet/ and vae/ (safetensors, weights cast to `dtype`) next to the static parts.

    float16 halves the files; `LotusModel.load` casts them back to its compute dtype.
    """
    folder = Path(folder)
    for name, module in (("unet", unet), ("vae", vae)):
        if dtype != "float32":  # cast a copy: training goes on in float32
            module = copy_module(module).to(getattr(torch, dtype))
        module.save_pretrained(folder / name)


def copy_module(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module)
