"""Command line for training Lotus models (see `lotus_core.training`).

    python -m lotus_core.train vae --config vae.json [--set steps=4000 ...]
    python -m lotus_core.train lotus --config lotus.json [--set variant=g ...]

Training data is folders of images + depth + normal maps (`lotus_core.training.data`);
`python -m sample_scenes training-data` renders generated scenes into that layout.
`vae` and `lotus` resume from the output folder's state.pt when there is one: rerun the same
command to continue (raise `steps` with --set to train longer). Losses go to OUT/loss.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """['steps=10', 'data=["a"]'] -> {'steps': 10, 'data': ['a']}; values are JSON or strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lotus_core.train", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("vae", "lotus"):
        stage = sub.add_parser(name, help=f"train (or resume) the {name} stage")
        stage.add_argument("--config", default="", help="JSON file of config keys")
        stage.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        stage.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    return parser


def run(args: argparse.Namespace) -> str:
    import torch

    from lotus_core.training.config import LotusConfig, VaeConfig, load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    if args.command == "vae":
        from lotus_core.training.vae import train_vae

        return f"vae saved to {train_vae(load_config(VaeConfig, args.config, overrides))}"
    from lotus_core.training.lotus import train_lotus

    return f"model saved to {train_lotus(load_config(LotusConfig, args.config, overrides))}"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
