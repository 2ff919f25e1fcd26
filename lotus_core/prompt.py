"""The empty-prompt text embedding: computed once per text encoder, then read from disk.

Lotus conditions its UNet on the CLIP embedding of the empty prompt. Upstream re-encodes "" for
every image; the result only depends on the text encoder, so it is computed once (tokenizer
without padding, as upstream does: [BOS, EOS], so the embedding is (1, 2, C)), stored as
safetensors and reused. Later runs load neither the tokenizer nor the text encoder.

Cache key: SHA-256 over the text encoder's and tokenizer's small files, and for each weight file
its size, its safetensors header (names, dtypes, shapes, offsets) and 16 evenly spaced 64 KiB
samples of its bytes: a changed encoder changes the key, without reading 1.4 GB on every load.
"""

from __future__ import annotations

import gc
import hashlib
import os
import tempfile
from pathlib import Path

import torch

from lotus_core.errors import CheckpointError

CACHE_ENV = "LOTUS_RECON_CACHE"
_SAMPLES = 16
_SAMPLE_BYTES = 64 * 1024


def user_cache_dir() -> Path:
    """`$LOTUS_RECON_CACHE`, else `$XDG_CACHE_HOME/lotus_recon`, else `~/.cache/lotus_recon`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lotus_recon"


def _hash_weight_file(digest: hashlib._Hash, path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}".encode())
    with path.open("rb") as handle:
        if path.suffix == ".safetensors" and size >= 8:
            header_len = int.from_bytes(handle.read(8), "little")
            digest.update(handle.read(min(header_len, size - 8)))
        for k in range(_SAMPLES):
            handle.seek(max(0, (size - _SAMPLE_BYTES) * k // max(_SAMPLES - 1, 1)))
            digest.update(handle.read(_SAMPLE_BYTES))


def encoder_key(checkpoint: Path) -> str:
    """Fingerprint of text_encoder/ and tokenizer/ (see the module docstring)."""
    digest = hashlib.sha256(b"lotus-empty-prompt-v1")
    files = sorted(
        p
        for sub in ("text_encoder", "tokenizer")
        for p in (checkpoint / sub).glob("*")
        if p.is_file()
    )
    if not any(p.parent.name == "text_encoder" for p in files):
        raise CheckpointError(
            f"{checkpoint} has no text_encoder/ (needed once, to embed the empty prompt)",
            fix="download the whole checkpoint repository",
        )
    for path in files:
        digest.update(f"{path.parent.name}/{path.name}".encode())
        if path.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt"):
            _hash_weight_file(digest, path)
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def cache_paths(checkpoint: Path, key: str, prefer_user_cache: bool) -> list[Path]:
    """Where the embedding may be stored, in the order they are tried for writing."""
    name = f"empty_prompt_embedding.{key}.safetensors"
    beside, user = checkpoint / name, user_cache_dir() / name
    return [user, beside] if prefer_user_cache else [beside, user]


def _save_atomic(embedding: torch.Tensor, target: Path, key: str) -> bool:
    from safetensors.torch import save_file

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        os.close(fd)
        save_file({"embedding": embedding.contiguous()}, tmp, metadata={"key": key})
        os.replace(tmp, target)
        return True
    except OSError:  # read-only folder: try the next place
        if "tmp" in locals() and os.path.exists(tmp):
            os.unlink(tmp)
        return False


def empty_prompt_ids(tokenizer) -> torch.Tensor:
    """(1, 2) token ids of "" (BOS, EOS), without padding, as upstream's
    `encode_prompt(padding_type="do_not_pad")` tokenizes it."""
    return tokenizer(
        "",
        padding="do_not_pad",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def encode_empty_prompt(checkpoint: Path) -> torch.Tensor:
    """(1, L, C) float32 CLIP last hidden state of "" (L = 2: BOS, EOS), on the CPU.

    Tokenized without padding, as upstream's `encode_prompt(padding_type="do_not_pad")`.
    The tokenizer and text encoder are freed before returning.
    """
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(checkpoint / "tokenizer")
    ids = empty_prompt_ids(tokenizer)
    encoder = CLIPTextModel.from_pretrained(checkpoint / "text_encoder", torch_dtype=torch.float32)
    with torch.inference_mode():
        embedding = encoder(ids)[0].detach().clone()
    del encoder, tokenizer
    gc.collect()
    return embedding


def empty_prompt_embedding(checkpoint: Path, prefer_user_cache: bool = False) -> torch.Tensor:
    """The cached (1, L, C) float32 empty-prompt embedding; computed and stored when missing."""
    from safetensors.torch import load_file

    key = encoder_key(checkpoint)
    candidates = cache_paths(checkpoint, key, prefer_user_cache)
    for path in candidates:
        if path.is_file():
            try:
                return load_file(path)["embedding"].float()
            except Exception:  # truncated or foreign file: recompute and overwrite
                pass
    embedding = encode_empty_prompt(checkpoint)
    for path in candidates:
        if _save_atomic(embedding, path, key):
            break
    return embedding
