"""Command line for training Lotus models (see `lotus_core.training`).

    python -m lotus_core.train data -o DIR --seeds 0-199 [--kind room --views 12 --size 128x96]
    python -m lotus_core.train vae --config vae.json [--set steps=4000 ...]
    python -m lotus_core.train lotus --config lotus.json [--set variant=g ...]

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


def parse_seeds(text: str) -> list[int]:
    """'0-9,20,30-31' -> [0..9, 20, 30, 31]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


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
    data = sub.add_parser("data", help="render generated sample scenes into a training folder")
    data.add_argument("-o", "--out", required=True)
    data.add_argument("--seeds", required=True, help="scene seeds, e.g. 0-199")
    data.add_argument("--kind", choices=("room", "object"), default="room")
    data.add_argument("--views", type=int, default=12)
    data.add_argument("--size", default="128x96", help="WIDTHxHEIGHT in pixels")
    for name in ("vae", "lotus"):
        stage = sub.add_parser(name, help=f"train (or resume) the {name} stage")
        stage.add_argument("--config", default="", help="JSON file of config keys")
        stage.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        stage.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    return parser


def run(args: argparse.Namespace) -> str:
    import torch

    from lotus_core.training.config import LotusConfig, VaeConfig, load_config

    if args.command == "data":
        from lotus_core.training.data import write_scene_dataset

        width, height = (int(v) for v in args.size.lower().split("x"))
        seeds = parse_seeds(args.seeds)
        out = write_scene_dataset(
            args.out, seeds, kind=args.kind, views=args.views, width=width, height=height
        )
        return f"wrote {len(seeds)} {args.kind} scenes x {args.views} views to {out}"
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
