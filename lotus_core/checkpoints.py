"""Find a Lotus checkpoint (hub id or local folder) and read what it is without loading weights.

The official checkpoints use the diffusers folder layout:
    model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/

What can be detected from the files is detected: Lotus-G's UNet takes the image latent and a noise
latent (in_channels = 2 x out_channels = 8), Lotus-D's only the image latent (4). Task (depth or
normal) and depth space (depth or disparity) are not in the weights: they come from the caller,
from `lotus_recon.json` or `model_index.json` keys `task` / `space` in the folder, and otherwise
from the hub id or folder name (`lotus-<task>-<d|g>-v...[-disparity]`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lotus_core.errors import CheckpointError

Task = Literal["depth", "normal"]
Space = Literal["depth", "disparity"]
Variant = Literal["d", "g"]

TASKS: tuple[str, ...] = ("depth", "normal")
SPACES: tuple[str, ...] = ("depth", "disparity")
METADATA_FILE = "lotus_recon.json"
REQUIRED_FILES = ("unet/config.json", "vae/config.json")
HUB_PATTERNS = [
    "*.json",
    "*.txt",
    "unet/*",
    "vae/*",
    "text_encoder/*",
    "tokenizer/*",
    "scheduler/*",
]
_NAME_RE = re.compile(r"lotus-(depth|normal)-([dg])-v\d+(?:[.\-]\d+)*(-disparity)?(?![a-z0-9])")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint is. Read from config files only (no weights loaded)."""

    source: str  # as given by the caller: hub id or folder
    path: Path  # local folder in the diffusers layout
    name: str  # hub id, or the folder name
    variant: Variant  # "d" (regression, deterministic) or "g" (generative, seeded)
    task: Task
    space: Space | None  # depth task: space the values are affine in; None for normals
    latent_channels: int  # 4 for Stable Diffusion's VAE
    num_train_timesteps: int  # the single step runs at t = num_train_timesteps - 1 (999)

    @property
    def tag(self) -> str:
        """Short producer tag, e.g. `lotus:jingheya/lotus-depth-g-v2-1-disparity`."""
        return f"lotus:{self.name}"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read at call time (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def download_hint(name: str, flag: str) -> str:
    """The one-line fix for a checkpoint that is not on this machine."""
    folder = f"models/{name.split('/')[-1]}"
    return (
        f"run `hf download {name} --local-dir {folder}` (older huggingface_hub: "
        f"`huggingface-cli download ...`) on a machine with internet access, "
        f"then pass that folder to {flag}"
    )


def resolve_checkpoint(source: str | os.PathLike, flag: str = "the checkpoint argument") -> Path:
    """Local folder of a checkpoint given as a folder or a hub id.

    A hub id is looked up in the local Hugging Face cache first; it is downloaded only when
    HF_HUB_OFFLINE is not set and the hub answers. `flag` names where the user passes the
    checkpoint (e.g. `--lotus-depth DIR`), for the error message.
    """
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_dir():
        check_layout(path)
        return path
    if path.exists() or not _HUB_ID_RE.match(text):
        raise CheckpointError(
            f"checkpoint folder not found: {text}",
            fix=f"pass {flag} a folder with unet/ and vae/, or a hub id such as "
            "jingheya/lotus-depth-g-v2-1-disparity",
        )
    path = _snapshot(text, flag)
    check_layout(path)
    return path


def _snapshot(repo_id: str, flag: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError and friends: not in the cache
        if hub_offline():
            raise CheckpointError(
                f"{repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
                fix=download_hint(repo_id, flag),
            ) from exc
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, etag_timeout=10))
    except Exception as exc:  # no network, unknown repo, gated, ...
        reason = type(exc).__name__
        raise CheckpointError(
            f"{repo_id} is not in the local Hugging Face cache and the hub is out of reach ({reason})",
            fix=download_hint(repo_id, flag),
        ) from exc


def check_layout(path: Path) -> None:
    """Raise unless `path` holds the files a Lotus checkpoint needs."""
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{path} is not a Lotus checkpoint folder (missing {', '.join(missing)})",
            fix="download the whole repository (unet/, vae/, text_encoder/, tokenizer/, scheduler/)",
        )


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})", fix="re-download it") from exc


def parse_name(name: str) -> tuple[Task | None, Space | None]:
    """Task and depth space from a Lotus hub id or folder name; (None, None) when it is not one.

    `lotus-depth-*-disparity` predicts disparity; other `lotus-depth-*` checkpoints depth.
    """
    match = _NAME_RE.search(name.lower())
    if match is None:
        return None, None
    task = match.group(1)
    if task == "normal":
        return "normal", None
    return "depth", "disparity" if match.group(3) else "depth"


def detect_variant(unet_config: dict, path: Path) -> Variant:
    """Lotus-G concatenates a noise latent with the image latent: in_channels = 2 x out."""
    if (
        unet_config.get("class_embed_type") != "projection"
        or unet_config.get("projection_class_embeddings_input_dim") != 4
    ):
        raise CheckpointError(
            f"{path}/unet has no 4-d projection class embedding: not a Lotus UNet",
            fix="use a Lotus checkpoint (jingheya/lotus-*)",
        )
    c_in, c_out = int(unet_config.get("in_channels", 4)), int(unet_config.get("out_channels", 4))
    if c_in == c_out:
        return "d"
    if c_in == 2 * c_out:
        return "g"
    raise CheckpointError(
        f"{path}/unet has in_channels={c_in}, out_channels={c_out}: neither Lotus-D nor Lotus-G",
        fix="use a Lotus checkpoint (jingheya/lotus-*)",
    )


def _declared(path: Path) -> tuple[str | None, str | None]:
    """Task and space written in the folder (ours first, then model_index.json)."""
    for meta in (read_json(path / METADATA_FILE), read_json(path / "model_index.json")):
        task, space = meta.get("task"), meta.get("space")
        if task is not None or space is not None:
            return task, space
    return None, None


def _pick(
    what: str, wanted: str | None, found: str | None, where: str, name: str, flag: str
) -> str | None:
    """The wanted value unless the checkpoint says otherwise (then it is the wrong checkpoint)."""
    if wanted is not None and found is not None and wanted != found:
        raise CheckpointError(
            f"{name} is a {found} checkpoint ({what} from {where}), but a {wanted} one is expected",
            fix=f"pass a lotus-{wanted}-* checkpoint to {flag}"
            if what == "task"
            else f"pass the {wanted}-space checkpoint to {flag}, or drop the space override",
        )
    return found if found is not None else wanted


def _task_and_space(
    path: Path, name: str, task: str | None, space: str | None, flag: str
) -> tuple[Task, Space | None]:
    declared_task, declared_space = _declared(path)
    name_task, name_space = parse_name(name)
    if name_task is None:
        name_task, name_space = parse_name(str(path))
    where = "its config" if declared_task is not None else "its name"
    found_task = declared_task or name_task
    found_space = declared_space or (name_space if found_task == name_task else None)
    for value, allowed, label in ((found_task, TASKS, "task"), (found_space, SPACES, "space")):
        if value is not None and value not in allowed:
            raise CheckpointError(
                f"{path}: {label} {value!r} is not one of {allowed}",
                fix=f"set {label} to one of {allowed} in {path / METADATA_FILE}",
            )
    task = _pick("task", task, found_task, where, name, flag)
    if task is None:
        raise CheckpointError(
            f"cannot tell whether {name} predicts depth or normals",
            fix=f'keep the hub name in the folder name, or write {{"task": "depth", "space": '
            f'"disparity"}} to {path / METADATA_FILE}',
        )
    if task == "normal":
        return "normal", None
    space = _pick("space", space, found_space, where, name, flag)
    if space is None:
        raise CheckpointError(
            f"cannot tell whether {name} predicts depth or disparity",
            fix=f"keep the hub name in the folder name (…-disparity), set the space for {flag}, "
            f'or write {{"task": "depth", "space": "disparity"}} to {path / METADATA_FILE}',
        )
    return task, space  # type: ignore[return-value]


def inspect_checkpoint(
    source: str | os.PathLike,
    *,
    task: str | None = None,
    space: str | None = None,
    flag: str = "the checkpoint argument",
) -> CheckpointInfo:
    """Resolve `source` and describe it. `task` / `space` are what the caller expects.

    Raises CheckpointError when the checkpoint is missing, malformed, or declares (by config or
    name) another task or space than the one expected.
    """
    text = os.fspath(source)
    path = resolve_checkpoint(text, flag)
    name = text if not Path(text).expanduser().is_dir() else path.resolve().name
    unet = read_json(path / "unet" / "config.json")
    variant = detect_variant(unet, path)
    found_task, found_space = _task_and_space(path, name, task, space, flag)
    scheduler = read_json(path / "scheduler" / "scheduler_config.json")
    return CheckpointInfo(
        source=text,
        path=path,
        name=name,
        variant=variant,
        task=found_task,
        space=found_space,
        latent_channels=int(unet.get("out_channels", 4)),
        num_train_timesteps=int(scheduler.get("num_train_timesteps", 1000)),
    )


def write_metadata(path: str | os.PathLike, task: Task, space: Space | None = None) -> Path:
    """Label a checkpoint folder with its task and space (for folders renamed by the user)."""
    if task not in TASKS or (task == "depth" and space not in SPACES):
        raise CheckpointError(f"invalid task/space {task!r}/{space!r}", fix="depth+space or normal")
    target = Path(path) / METADATA_FILE
    body = {"task": task} if task == "normal" else {"task": task, "space": space}
    target.write_text(json.dumps(body, indent=2) + "\n")
    return target
