"""The baseline side of bench/lotus_speed.py: a full-size random Lotus-G checkpoint in the
official layout (SD2 UNet, SD VAE, OpenCLIP-H text encoder) and upstream's per-image loop.

Both are only for timing: the weights are random (timing does not depend on weight values).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

STAGES = ("text", "encode", "unet", "decode")


# -- the full-size random checkpoint ----------------------------------------------------------
def sd2_unet(in_channels: int):
    from lotus_core.testing import lotus_unet

    return lotus_unet(
        in_channels,
        block_out_channels=(320, 640, 1280, 1280),
        cross_attn_blocks=3,
        layers_per_block=2,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        sample_size=96,
    )


def full_size_vae():
    import torch

    from lotus_core.testing import sd_vae

    vae = sd_vae(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=768)
    with torch.no_grad():  # log-variance half of the moments: std ~ 3e-7 (see docstring)
        vae.quant_conv.weight[4:].zero_()
        vae.quant_conv.bias[4:].fill_(-30.0)
    return vae


def openclip_h_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=23,
        num_attention_heads=16,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=512,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(config)


def build_checkpoint(folder: Path, variant: str) -> Path:
    """Save random full-size weights once (fp32, official layout); reuse when present."""
    import torch

    from lotus_core import testing

    if (folder / "model_index.json").is_file():
        return folder
    print(f"building the random SD2-size checkpoint in {folder} ...", flush=True)
    tmp = folder.with_name(folder.name + ".partial")
    testing.build_tiny_checkpoint(tmp, variant, "depth", "disparity", write_metadata=True)
    torch.manual_seed(0)
    sd2_unet(8 if variant == "g" else 4).save_pretrained(tmp / "unet")
    full_size_vae().save_pretrained(tmp / "vae")
    openclip_h_text_encoder().save_pretrained(tmp / "text_encoder")
    for stale in tmp.glob("empty_prompt_embedding.*"):
        stale.unlink()
    tmp.rename(folder)
    return folder


def test_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 image: smooth gradients plus texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x + 4 * y)], axis=-1) * 200
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


# -- the reference loop (what upstream infer.py + LotusGPipeline do per image) ---------------
class Reference:
    """fp32 weights; each image under torch.autocast; prompt re-encoded; sample() encode."""

    def __init__(self, path: Path, device: str = "cpu"):
        import torch
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        self.device = torch.device(device)
        load = dict(torch_dtype=torch.float32)
        self.unet = UNet2DConditionModel.from_pretrained(path / "unet", **load).to(device).eval()
        self.vae = AutoencoderKL.from_pretrained(path / "vae", **load).to(device).eval()
        self.text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", **load).eval()
        self.text_encoder.to(device)
        self.tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer")
        self.generator = torch.Generator(device=device)
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def _timed(self, stage: str, fn):
        start = time.perf_counter()
        out = fn()
        self.seconds[stage] += time.perf_counter() - start
        return out

    def _encode_prompt(self):
        from lotus_core.prompt import empty_prompt_ids

        ids = empty_prompt_ids(self.tokenizer)
        self.tokenizer("", padding="longest", return_tensors="pt")  # upstream's truncation check
        return self.text_encoder(ids.to(self.device))[0]

    def predict(self, image: np.ndarray, processing_res: int) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.no_grad(), torch.autocast(self.device.type):
            x = torch.tensor(image.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
            x = (x / 127.5 - 1.0).to(self.device)
            emb = torch.tensor([1, 0]).float().unsqueeze(0).to(self.device)
            emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
            h, w = x.shape[-2:]
            s = processing_res / max(h, w)
            x = F.interpolate(x, (int(h * s), int(w * s)), mode="bilinear", antialias=True)
            prompt = self._timed("text", self._encode_prompt)
            shape = (1, 4, x.shape[-2] // 8, x.shape[-1] // 8)
            self.generator.manual_seed(0)  # per image (upstream: per run) so outputs compare
            noise = torch.randn(
                shape, generator=self.generator, device=self.device, dtype=prompt.dtype
            )
            sf = self.vae.config.scaling_factor
            lat = self._timed("encode", lambda: self.vae.encode(x).latent_dist.sample() * sf)
            t = torch.tensor(999, device=self.device).long()
            x0 = self._timed(
                "unet",
                lambda: self.unet(
                    torch.cat([lat, noise], 1),
                    t,
                    encoder_hidden_states=prompt,
                    class_labels=emb,
                    return_dict=False,
                )[0],
            )
            img = self._timed("decode", lambda: self.vae.decode(x0 / sf, return_dict=False)[0])
            pred = (img / 2 + 0.5).clamp(0, 1).float()
            pred = F.interpolate(pred, size=(h, w), mode="nearest-exact")  # upstream resize_back
            return pred[0].mean(0).cpu().numpy()
