"""Lotus training on tiny data: targets, batches, loss decrease, bit-identical resume, loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lotus_core import LotusModel
from lotus_core.pipeline import switcher_embedding
from lotus_core.testing import build_tiny_checkpoint
from lotus_core.train import main as train_main
from lotus_core.training.config import LotusConfig, VaeConfig
from lotus_core.training.data import load_dataset, lotus_normal, normalise_depth
from lotus_core.training.lotus import alphas_cumprod, make_batch, train_lotus
from lotus_core.training.metrics import depth_errors, normal_angles
from lotus_core.training.models import load_unet
from lotus_core.training.state import read_log

H, W = 48, 64
TINY_UNET = {"block_out_channels": [16, 32], "attention_head_dim": 8, "norm_num_groups": 8}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOTUS_RECON_CACHE", str(tmp_path_factory.mktemp("lotus_cache")))


def write_sample(root, stem: str, rng: np.random.Generator) -> None:
    """A tilted plane: depth ramp, its constant normal, a random texture."""
    for sub in ("images", "depth", "normal"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tilt = rng.uniform(-0.5, 0.5)
    depth = 2.0 + tilt * np.linspace(-1, 1, W)[None, :] + np.zeros((H, 1))
    normal = np.zeros((H, W, 3), np.float32)
    normal[...] = np.array([tilt, 0.0, -1.0]) / np.hypot(tilt, 1.0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "images" / f"{stem}.png")
    np.save(root / "depth" / f"{stem}.npy", depth.astype(np.float32))
    np.save(root / "normal" / f"{stem}.npy", normal)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(4):
        write_sample(root, f"s{i}", rng)
    return root


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "d")


def lotus_config(data, vae_folder, out, **kw) -> LotusConfig:
    base = dict(data=[str(data)], out=str(out), vae=str(vae_folder), batch_size=4, lr=2e-3)
    base.update(lr_warmup=1, save_every=2, log_every=1, **TINY_UNET)
    return LotusConfig(**{**base, **kw})


def test_depth_targets_map_percentiles_to_unit_range_and_unknown_to_far():
    depth = np.linspace(1.0, 5.0, 101).reshape(1, -1)
    depth[0, 0] = 0.0  # unknown
    d = normalise_depth(depth, "depth")
    assert d.min() == -1.0 and d[0, -1] == 1.0 and d[0, 0] == 1.0
    assert np.all(np.diff(d[0, 1:]) >= 0)
    disp = normalise_depth(depth, "disparity")
    assert disp[0, 0] == -1.0 and disp[0, 1] == 1.0 and np.all(np.diff(disp[0, 1:]) <= 0)


def test_normal_targets_are_the_negated_opencv_normal():
    wall = np.array([[[0.0, 0.0, -2.0]]])  # facing the camera, OpenCV frame, not unit
    assert np.allclose(lotus_normal(wall), [[[0.0, 0.0, 1.0]]])


def test_detail_preserver_rows_reconstruct_the_image_latent_with_switcher_0_1():
    image = torch.randn(3, 4, 6, 8)
    target = torch.randn(3, 4, 6, 8)
    gen = torch.Generator().manual_seed(0)
    cfg = LotusConfig(variant="g", detail_preserver=True)
    batch = make_batch(cfg, image, target, gen, alphas_cumprod())
    assert batch.annotation_rows == 3 and batch.inputs.shape == (6, 8, 6, 8)
    assert torch.equal(batch.class_labels[:3], switcher_embedding(True).expand(3, -1))
    assert torch.equal(batch.class_labels[3:], switcher_embedding(False).expand(3, -1))
    assert torch.allclose(
        batch.class_labels[3], torch.tensor([0.0, np.sin(1), 1.0, np.cos(1)], dtype=torch.float32)
    )
    assert torch.equal(batch.target[:3], target) and torch.equal(batch.target[3:], image)
    assert torch.equal(batch.inputs[:, :4], torch.cat([image, image]))  # image latent first
    assert torch.all(batch.timesteps == 999)


def test_lotus_d_single_step_without_preserver_is_plain_regression():
    image, target = torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
    cfg = LotusConfig(variant="d", detail_preserver=False)
    batch = make_batch(cfg, image, target, torch.Generator(), alphas_cumprod())
    assert torch.equal(batch.inputs, image) and torch.equal(batch.target, target)
    eps = make_batch(
        LotusConfig(variant="g", prediction="epsilon", timesteps="uniform", detail_preserver=False),
        image,
        target,
        torch.Generator().manual_seed(1),
        alphas_cumprod(),
    )
    assert not torch.equal(eps.target, target) and eps.timesteps.unique().numel() > 1


def test_a_few_steps_reduce_the_loss(data, vae_folder, tmp_path):
    train_lotus(lotus_config(data, vae_folder, tmp_path / "m", steps=30, detail_preserver=False))
    losses = [r["loss"] for r in read_log(tmp_path / "m")]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_resumed_run_continues_bit_identically(data, vae_folder, tmp_path, monkeypatch):
    import lotus_core.training.lotus as lotus

    kw = dict(steps=6, variant="g")
    train_lotus(lotus_config(data, vae_folder, tmp_path / "full", **kw))
    full = read_log(tmp_path / "full")
    real, calls = lotus.lotus_losses, {"n": 0}

    def crash_in_step_6(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # step 5 was logged after the save at step 4
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lotus, "lotus_losses", crash_in_step_6)
    with pytest.raises(KeyboardInterrupt):
        train_lotus(lotus_config(data, vae_folder, tmp_path / "cut", **kw))
    assert [r["step"] for r in read_log(tmp_path / "cut")] == [1, 2, 3, 4, 5]
    monkeypatch.setattr(lotus, "lotus_losses", real)
    train_lotus(lotus_config(data, vae_folder, tmp_path / "cut", **kw))
    resumed = read_log(tmp_path / "cut")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "annotation", "reconstruction"):
        assert [r[key] for r in resumed] == [r[key] for r in full]


def test_saved_model_loads_and_predicts(data, vae_folder, tmp_path):
    out = train_lotus(
        lotus_config(data, vae_folder, tmp_path / "n", steps=2, task="normal", save_dtype="float16")
    )
    assert json.loads((out / "lotus_recon.json").read_text()) == {"task": "normal"}
    model = LotusModel.load(out, device="cpu", processing_res=64)
    assert (model.info.variant, model.info.task) == ("d", "normal")
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    (result,) = model.predict([image])
    assert result.normal.shape == (H, W, 3)
    assert np.allclose(np.linalg.norm(result.normal, axis=-1), 1.0, atol=1e-4)
    # a run stopped at its last save is finished by rerunning with steps = that step
    import shutil

    shutil.rmtree(out / "unet")
    train_lotus(lotus_config(data, vae_folder, out, steps=2, task="normal"))
    assert (out / "unet" / "config.json").is_file() and len(read_log(out)) == 2


def test_vae_stage_trains_saves_and_sets_a_latent_scaling(data, tmp_path):
    out = train_main(
        ["vae", "--set", f'data=["{data}"]', "--set", f"out={tmp_path / 'vae'}"]
        + ["--set", "steps=4", "--set", "save_every=2", "--set", "log_every=2"]
        + ["--set", "block_out_channels=[8,16]", "--set", "norm_num_groups=8", "--set", "crop=32"]
    )
    assert out == 0
    config = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert config["scaling_factor"] > 0 and config["scaling_factor"] != 1.0
    assert [r["step"] for r in read_log(tmp_path / "vae")] == [2, 4]
    lotus = lotus_config(data, tmp_path / "vae", tmp_path / "m", steps=2)
    LotusModel.load(train_lotus(lotus), device="cpu", processing_res=64).predict(
        [np.zeros((H, W, 3), np.uint8)]
    )


def test_dataset_stacks_targets(data):
    loaded = load_dataset([str(data)], "disparity")
    assert loaded["image"].shape == (4, 3, H, W) and loaded["depth"].shape == (4, 3, H, W)
    assert loaded["depth"].min() >= -1 and loaded["depth"].max() <= 1


def test_metrics_are_zero_for_an_exact_affine_prediction():
    depth = np.random.default_rng(0).uniform(1.0, 4.0, (8, 8))
    assert depth_errors(0.3 * depth + 1.0, depth, "depth")["abs_rel"] < 1e-9
    errors = depth_errors(2.0 / depth - 0.1, depth, "disparity")
    assert errors["abs_rel"] < 1e-9 and errors["delta1"] == 1.0
    normal = np.zeros((4, 4, 3))
    normal[..., 2] = -1.0
    assert np.allclose(normal_angles(normal, normal), 0.0)
    assert np.allclose(normal_angles(-normal, normal), 180.0)


def test_unknown_config_keys_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown"):
        from lotus_core.training.config import from_dict

        from_dict(VaeConfig, {"stepz": 3})


def test_fine_tuning_a_stable_diffusion_like_unet_into_lotus_g(data, tmp_path):
    from diffusers import UNet2DConditionModel

    sd = build_tiny_checkpoint(tmp_path / "sd", "d")
    config = dict(UNet2DConditionModel.load_config(sd / "unet"))
    config.update(class_embed_type=None, projection_class_embeddings_input_dim=None)
    plain = UNet2DConditionModel.from_config(config)
    plain.save_pretrained(sd / "unet")
    cfg = LotusConfig(
        data=[str(data)],
        out=str(tmp_path / "g"),
        init=str(sd),
        variant="g",
        steps=2,
        batch_size=2,
        save_every=2,
        log_every=1,
    )
    out = train_lotus(cfg)
    model = LotusModel.load(out, device="cpu", processing_res=64, task="depth")
    assert model.info.variant == "g" and model.unet.config.in_channels == 8
    assert (out / "text_encoder").is_dir() and len(read_log(out)) == 2
    lotus_g = load_unet(sd, "g")  # the switcher added, conv_in widened to image + noise
    assert lotus_g.config.class_embed_type == "projection"
    w = plain.conv_in.weight
    assert torch.equal(lotus_g.conv_in.weight, torch.cat([w, w], 1) * 0.5)
