"""Tiny random Lotus checkpoints in the official diffusers folder layout, built offline.

    model_index.json
    unet/          UNet2DConditionModel, projection class embedding of dim 4 (the switcher)
    vae/           AutoencoderKL with 4 blocks (8x down-sampling, like Stable Diffusion's)
    text_encoder/  CLIPTextModel
    tokenizer/     CLIPTokenizer (a handful of tokens: enough for the empty prompt)
    scheduler/     DDIMScheduler, prediction_type "sample"

Everything is saved with `save_pretrained`, so tests load it through the same code path as
the real checkpoints. A few hundred kB per checkpoint; builds in about a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

from lotus_core.checkpoints import METADATA_FILE

_VOCAB = [
    "<|startoftext|>",
    "<|endoftext|>",
    "!",
    "a",
    "b",
    "c",
    "a</w>",
    "b</w>",
    "c</w>",
    "ab",
    "bc</w>",
]
_MERGES = ["#version: 0.2", "a b", "b c</w>"]
CROSS_DIM = 32


def _seed(seed: int) -> None:
    torch.manual_seed(seed)


def lotus_unet(
    in_channels: int,
    *,
    block_out_channels: tuple[int, ...],
    cross_attn_blocks: int,
    layers_per_block: int,
    cross_attention_dim: int,
    attention_head_dim: int | tuple[int, ...],
    sample_size: int,
    norm_num_groups: int = 32,
) -> torch.nn.Module:
    """A random UNet of Lotus's layout at any size: Stable Diffusion 2's block pattern (the
    first `cross_attn_blocks` levels with cross-attention), 4 latent channels out, and the
    task switcher as a projection class embedding of dim 4. in_channels: 4 (Lotus-D) or 8
    (Lotus-G: image latent + noise latent)."""
    from diffusers import UNet2DConditionModel

    plain = len(block_out_channels) - cross_attn_blocks
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=layers_per_block,
        block_out_channels=block_out_channels,
        down_block_types=("CrossAttnDownBlock2D",) * cross_attn_blocks + ("DownBlock2D",) * plain,
        up_block_types=("UpBlock2D",) * plain + ("CrossAttnUpBlock2D",) * cross_attn_blocks,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups,
        use_linear_projection=True,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=4,
    )


def sd_vae(
    *,
    block_out_channels: tuple[int, int, int, int],
    layers_per_block: int,
    sample_size: int,
    norm_num_groups: int = 32,
) -> torch.nn.Module:
    """A random AutoencoderKL of Stable Diffusion's layout at any width: 4 blocks (8x
    down-sampling), 4 latent channels, scaling factor 0.18215."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        latent_channels=4,
        norm_num_groups=norm_num_groups,
        sample_size=sample_size,
        scaling_factor=0.18215,
    )


def _tiny_unet(in_channels: int) -> torch.nn.Module:
    return lotus_unet(
        in_channels,
        block_out_channels=(32, 64),
        cross_attn_blocks=1,
        layers_per_block=1,
        cross_attention_dim=CROSS_DIM,
        attention_head_dim=8,
        sample_size=8,
        norm_num_groups=8,
    )


def _tiny_vae() -> torch.nn.Module:
    return sd_vae(
        block_out_channels=(8, 8, 16, 16), layers_per_block=1, sample_size=32, norm_num_groups=8
    )


def _tiny_text_encoder() -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(_VOCAB),
        hidden_size=CROSS_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(config).eval()


def _write_tokenizer(folder: Path) -> None:
    """The slow-tokenizer files of Stable Diffusion 2's `tokenizer/` folder, by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(_VOCAB)}))
    (folder / "merges.txt").write_text("\n".join(_MERGES) + "\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "!",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        **special,
        "model_max_length": 77,
        "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _model_index(variant: str) -> dict:
    import diffusers

    return {
        "_class_name": "LotusGPipeline" if variant == "g" else "LotusDPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def build_tiny_checkpoint(
    folder: str | Path,
    variant: Literal["d", "g"] = "d",
    task: Literal["depth", "normal"] = "depth",
    space: Literal["depth", "disparity"] | None = "depth",
    *,
    seed: int = 0,
    write_metadata: bool = False,
) -> Path:
    """Write a tiny random Lotus checkpoint to `folder` and return it.

    The task and space are not stored unless `write_metadata` (then in `lotus_recon.json`):
    like the official checkpoints, the folder name tells them (name it e.g.
    `lotus-depth-g-v2-1-disparity`), or the caller does.
    """
    if variant not in ("d", "g") or task not in ("depth", "normal"):
        raise ValueError(f"bad variant/task {variant!r}/{task!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _seed(seed)
    _tiny_unet(8 if variant == "g" else 4).save_pretrained(folder / "unet")
    _tiny_vae().save_pretrained(folder / "vae")
    write_pipeline_components(folder, variant)
    if write_metadata:
        meta = {"task": task} if task == "normal" else {"task": task, "space": space}
        (folder / METADATA_FILE).write_text(json.dumps(meta) + "\n")
    return folder


def write_pipeline_components(
    folder: str | Path, variant: Literal["d", "g"], prediction_type: str = "sample"
) -> None:
    """Write everything but unet/ and vae/: the tiny text encoder (random, from torch's global
    RNG), tokenizer/, scheduler/ (`prediction_type` "sample" = x0, or "epsilon") and
    model_index.json."""
    from diffusers import DDIMScheduler

    folder = Path(folder)
    _tiny_text_encoder().save_pretrained(folder / "text_encoder")
    _write_tokenizer(folder / "tokenizer")
    DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    ).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps(_model_index(variant), indent=2) + "\n")
