"""lotus_core on tiny random checkpoints, loaded through the same path as the real ones."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from lotus_core import CheckpointError, LotusInputError, LotusModel
from lotus_core.checkpoints import inspect_checkpoint, parse_name, write_metadata
from lotus_core.pipeline import switcher_embedding
from lotus_core.preprocessing import group_by_size, plan_geometry
from lotus_core.prompt import encoder_key
from lotus_core.runtime import cpu_has_bf16, resolve_dtype
from lotus_core.testing import build_tiny_checkpoint

RES = 64  # processing resolution for the tiny models


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """No test may reach the network or write to the user's caches."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOTUS_RECON_CACHE", str(tmp_path_factory.mktemp("lotus_cache")))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_cache")))


CKPTS = {
    "depth-d": ("lotus-depth-d-v1-0", "d", "depth", "depth"),
    "disp-d": ("lotus-depth-d-v2-0-disparity", "d", "depth", "disparity"),
    "disp-g": ("lotus-depth-g-v2-1-disparity", "g", "depth", "disparity"),
    "depth-g": ("lotus-depth-g-v1-0", "g", "depth", "depth"),
    "normal-d": ("lotus-normal-d-v1-1", "d", "normal", None),
    "normal-g": ("lotus-normal-g-v1-1", "g", "normal", None),
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """Build each tiny checkpoint once per module; folder named after the hub id."""
    root = tmp_path_factory.mktemp("ckpts")
    built: dict = {}

    def get(key: str):
        if key not in built:
            name, variant, task, space = CKPTS[key]
            built[key] = build_tiny_checkpoint(root / name, variant, task, space)
        return built[key]

    return get


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def load(path, **kw) -> LotusModel:
    kw.setdefault("processing_res", RES)
    kw.setdefault("dtype", "float32")
    return LotusModel.load(path, device="cpu", **kw)


def test_switcher_is_annotation_embedding():
    expected = [math.sin(1), 0.0, math.cos(1), 1.0]
    assert torch.allclose(switcher_embedding()[0], torch.tensor(expected))
    assert torch.allclose(
        switcher_embedding(False)[0], torch.tensor([0.0, math.sin(1), 1.0, math.cos(1)])
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        ("jingheya/lotus-depth-g-v2-1-disparity", ("depth", "disparity")),
        ("jingheya/lotus-depth-d-v2-0-disparity", ("depth", "disparity")),
        ("jingheya/lotus-depth-g-v1-0", ("depth", "depth")),
        ("jingheya/lotus-normal-d-v1-1", ("normal", None)),
        ("/c/models--jingheya--lotus-depth-d-v1-0/snapshots/ab", ("depth", "depth")),
        ("my-model", (None, None)),
    ],
)
def test_parse_name(name, expected):
    assert parse_name(name) == expected


@pytest.mark.parametrize("key", list(CKPTS))
def test_load_and_predict_every_kind(ckpt, key):
    _, variant, task, space = CKPTS[key]
    model = load(ckpt(key))
    assert (model.info.variant, model.info.task, model.info.space) == (variant, task, space)
    assert model.info.num_train_timesteps == 1000
    (result,) = model.predict([image(40, 56)], seed=1)
    assert (result.task, result.space) == (task, space)
    if task == "depth":
        assert result.normal is None and result.values.shape == (40, 56)
        assert result.values.dtype == np.float32
        assert 0.0 <= result.values.min() and result.values.max() <= 1.0
    else:
        assert result.values is None and result.normal.shape == (40, 56, 3)
        assert np.allclose(np.linalg.norm(result.normal, axis=-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("hw", [(37, 53), (53, 37), (9, 5), (130, 70)])
def test_odd_sizes_come_back_at_input_resolution(ckpt, hw):
    model = load(ckpt("disp-g"))
    (result,) = model.predict([image(*hw)])
    assert result.values.shape == hw and np.isfinite(result.values).all()


def test_geometry_pads_to_multiple_of_8():
    g = plan_geometry(37, 53, 768)
    assert g.resized_hw == (536, 768) and g.padded_hw == (536, 768)
    g = plan_geometry(433, 768, 768)
    assert g.padded_hw == (440, 768) and g.pad == (7, 0)
    assert plan_geometry(37, 53, 0).padded_hw == (40, 56)


def test_group_by_size_keeps_order_and_limits_batches():
    imgs = [image(4, 6), image(5, 5), image(4, 6), image(4, 6)]
    assert group_by_size(imgs, 2) == [[0, 2], [3], [1]]


@pytest.mark.parametrize("key", ["disp-d", "disp-g", "normal-g"])
def test_batching_equals_one_by_one(ckpt, key):
    model = load(ckpt(key))
    imgs = [image(37, 53, 0), image(30, 40, 1), image(37, 53, 2), image(37, 53, 3)]
    batched = model.predict(imgs, seed=3, batch_size=3)
    single = [model.predict([im], seed=3, batch_size=1)[0] for im in imgs]
    field = "values" if CKPTS[key][2] == "depth" else "normal"
    for a, b in zip(batched, single):
        assert np.allclose(getattr(a, field), getattr(b, field), atol=1e-4)


def test_lotus_d_is_deterministic_and_ignores_seed(ckpt):
    model = load(ckpt("disp-d"))
    a = model.predict([image(37, 53)], seed=0, ensemble=4)[0]
    b = model.predict([image(37, 53)], seed=123)[0]
    assert np.array_equal(a.values, b.values) and a.uncertainty is None


def test_lotus_g_depends_on_seed_and_ensemble_gives_uncertainty(ckpt):
    model = load(ckpt("disp-g"))
    img = [image(37, 53)]
    a, a2, b = (model.predict(img, seed=s)[0] for s in (0, 0, 1))
    assert np.array_equal(a.values, a2.values)
    assert not np.allclose(a.values, b.values)
    assert a.uncertainty is None
    ens = model.predict(img, seed=0, ensemble=3)[0]
    members = [model.predict(img, seed=s)[0].values for s in (0, 1, 2)]
    assert np.allclose(ens.values, np.mean(members, axis=0), atol=1e-4)
    assert ens.uncertainty.shape == (37, 53) and ens.uncertainty.min() >= 0
    assert ens.uncertainty.max() > 0


def test_normal_ensemble_gives_angular_spread(ckpt):
    model = load(ckpt("normal-g"))
    res = model.predict([image(24, 32)], seed=0, ensemble=3)[0]
    assert np.allclose(np.linalg.norm(res.normal, axis=-1), 1.0, atol=1e-4)
    assert 0 <= res.uncertainty.min() and res.uncertainty.max() <= math.pi


def test_offline_missing_hub_id_is_one_line_with_the_fix():
    with pytest.raises(CheckpointError) as err:
        LotusModel.load("jingheya/lotus-depth-g-v2-1-disparity", flag="--lotus-depth")
    text = str(err.value)
    assert "\n" not in text
    assert "hf download jingheya/lotus-depth-g-v2-1-disparity --local-dir" in text
    assert "--lotus-depth" in text and "HF_HUB_OFFLINE" in text


def test_unreachable_hub_is_one_line_with_the_fix(monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    def fake_snapshot(repo_id, local_files_only=False, **kw):
        raise (FileNotFoundError if local_files_only else ConnectionError)("no route")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    with pytest.raises(CheckpointError, match="out of reach") as err:
        inspect_checkpoint("jingheya/lotus-normal-g-v1-1", flag="--lotus-normal")
    assert "\n" not in str(err.value) and "--lotus-normal" in str(err.value)


def test_missing_folder_and_incomplete_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        inspect_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="missing unet/config.json"):
        inspect_checkpoint(tmp_path / "empty")


def test_wrong_task_is_an_error(ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="normal checkpoint.*depth one is expected"):
        inspect_checkpoint(ckpt("normal-d"), task="depth")
    with pytest.raises(CheckpointError, match="depth checkpoint"):
        inspect_checkpoint(ckpt("disp-g"), task="normal")
    with pytest.raises(CheckpointError, match="disparity"):
        inspect_checkpoint(ckpt("disp-g"), task="depth", space="depth")
    renamed = build_tiny_checkpoint(tmp_path / "weights", "d", "normal", write_metadata=True)
    with pytest.raises(CheckpointError, match="from its config"):
        inspect_checkpoint(renamed, task="depth")


def test_unnamed_folder_needs_task_and_space(tmp_path):
    folder = build_tiny_checkpoint(tmp_path / "weights", "g", "depth", "disparity")
    with pytest.raises(CheckpointError, match="depth or normals"):
        inspect_checkpoint(folder)
    with pytest.raises(CheckpointError, match="depth or disparity"):
        inspect_checkpoint(folder, task="depth")
    info = inspect_checkpoint(folder, task="depth", space="disparity")
    assert (info.variant, info.space) == ("g", "disparity")
    write_metadata(folder, "depth", "depth")
    assert inspect_checkpoint(folder).space == "depth"


def test_not_a_lotus_unet(ckpt, tmp_path):
    import json
    import shutil

    folder = shutil.copytree(ckpt("depth-d"), tmp_path / "lotus-depth-d-v1-0")
    config = json.loads((folder / "unet/config.json").read_text())
    config["class_embed_type"] = None
    (folder / "unet/config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="not a Lotus UNet"):
        inspect_checkpoint(folder)


def test_prompt_embedding_is_cached_and_reused(tmp_path, monkeypatch):
    import transformers

    folder = build_tiny_checkpoint(tmp_path / "lotus-depth-d-v1-0", "d", "depth", "depth")
    first = load(folder)
    cached = list(folder.glob("empty_prompt_embedding.*.safetensors"))
    assert len(cached) == 1 and first.prompt.shape == (1, 2, 32)

    def refuse(*args, **kwargs):
        raise AssertionError("text encoder or tokenizer loaded although the embedding is cached")

    monkeypatch.setattr(transformers.CLIPTextModel, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.CLIPTokenizer, "from_pretrained", refuse)
    second = load(folder)
    assert torch.equal(first.prompt, second.prompt)


def test_prompt_cache_falls_back_to_user_cache(tmp_path, monkeypatch):
    from lotus_core.prompt import user_cache_dir

    folder = build_tiny_checkpoint(tmp_path / "lotus-depth-d-v1-0", "d", "depth", "depth")
    blocked = folder / f"empty_prompt_embedding.{encoder_key(folder)}.safetensors"
    blocked.mkdir()  # cannot be replaced by a file: like a read-only checkpoint folder
    load(folder)
    assert (user_cache_dir() / blocked.name).is_file()


def test_cache_key_follows_the_text_encoder(tmp_path):
    a = build_tiny_checkpoint(tmp_path / "a", seed=0)
    b = build_tiny_checkpoint(tmp_path / "b", seed=1)
    assert encoder_key(a) != encoder_key(b)
    assert encoder_key(a) == encoder_key(a)


def test_dtype_defaults():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    assert resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype(None, torch.device("cuda")) == torch.float16
    with pytest.raises(LotusInputError):
        resolve_dtype("int8", cpu)


def test_bfloat16_close_to_float32(ckpt):
    img = [image(37, 53)]
    a = load(ckpt("disp-d"), dtype="float32").predict(img)[0].values
    b = load(ckpt("disp-d"), dtype="bfloat16").predict(img)[0].values
    assert np.abs(a - b).mean() < 0.02


def test_bad_inputs(ckpt):
    model = load(ckpt("disp-d"))
    with pytest.raises(LotusInputError, match="uint8"):
        model.predict([image(8, 8).astype(np.float32)])
    with pytest.raises(LotusInputError, match=r"\(H, W, 3\)"):
        model.predict([np.zeros((8, 8), np.uint8)])
    with pytest.raises(LotusInputError, match="ensemble"):
        model.predict([image(8, 8)], ensemble=0)


def test_lotus_core_imports_nothing_from_recon_or_pipelines():
    code = (
        "import sys, lotus_core.pipeline, lotus_core.testing, lotus_core.normals\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('recon', 'pipelines')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_matches_cpu(ckpt):
    img = [image(37, 53)]
    cpu = load(ckpt("disp-g")).predict(img, seed=0)[0].values
    for dtype in ("float16", "bfloat16"):
        gpu = LotusModel.load(ckpt("disp-g"), device="cuda", dtype=dtype, processing_res=RES)
        assert np.abs(gpu.predict(img, seed=0)[0].values - cpu).mean() < 0.02
