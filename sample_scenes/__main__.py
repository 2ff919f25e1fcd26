"""Command line: generate sample scenes and simulated predictions.

    python -m sample_scenes generate --kind room --seed 0 --views 30 --width 640 --height 480 -o DIR
    python -m sample_scenes simulate SCENE_DIR -o PRED_DIR [--space disparity] [--seed 0] [--error KIND]
    python -m sample_scenes training-data -o DIR --seeds 0-199 [--kind room --views 12 --size 128x96]

Errors are printed as one line on stderr with exit status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recon.errors import ReconError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sample_scenes",
        description="Procedural sample scenes with ground truth, and simulated Lotus predictions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="render a scene folder (images, cameras, mesh)")
    gen.add_argument("--kind", choices=("room", "object"), default="room")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--views", type=int, default=30, help="number of photos")
    gen.add_argument("--width", type=int, default=640, help="image width in pixels")
    gen.add_argument("--height", type=int, default=480, help="image height in pixels")
    gen.add_argument("-o", "--out", required=True, help="output scene folder")
    sim = sub.add_parser("simulate", help="write simulated Lotus predictions for a scene")
    sim.add_argument("scene", help="scene folder written by `generate`")
    sim.add_argument("-o", "--out", required=True, help="output folder of <image stem>.npz")
    sim.add_argument("--space", choices=("depth", "disparity"), default="disparity")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument(
        "--error",
        default="moderate",
        help="error kind: oracle (exactly affine), moderate, hard (smooth warps and noise), "
        "objects, far, edges, drift (moderate plus one non-smooth error), mix (all)",
    )
    sim.add_argument("--oracle", action="store_true", help="same as --error oracle")
    data = sub.add_parser(
        "training-data", help="render generated scenes into a Lotus training folder"
    )
    data.add_argument("-o", "--out", required=True)
    data.add_argument("--seeds", required=True, help="scene seeds, e.g. 0-199")
    data.add_argument("--kind", choices=("room", "object"), default="room")
    data.add_argument("--views", type=int, default=12)
    data.add_argument("--size", default="128x96", help="WIDTHxHEIGHT in pixels")
    return parser


def run(args: argparse.Namespace) -> str:
    """Execute a parsed command; returns the line to print on success."""
    if args.command == "generate":
        from sample_scenes.generator import generate_scene

        out = generate_scene(args.out, args.kind, args.seed, args.views, args.width, args.height)
        return f"wrote {args.kind} scene ({args.views} views, {args.width}x{args.height}) to {out}"
    if args.command == "training-data":
        from sample_scenes.training_data import parse_seeds, write_scene_dataset

        width, height = (int(v) for v in args.size.lower().split("x"))
        seeds = parse_seeds(args.seeds)
        out = write_scene_dataset(
            args.out, seeds, kind=args.kind, views=args.views, width=width, height=height
        )
        return f"wrote {len(seeds)} {args.kind} scenes x {args.views} views to {out}"
    from sample_scenes.simulate import ERROR_KINDS, write_predictions

    kind = "oracle" if args.oracle else args.error
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}; use one of {', '.join(ERROR_KINDS)}")
    params = ERROR_KINDS[kind]
    out = write_predictions(args.scene, args.out, args.space, args.seed, params)
    return f"wrote {params.name} {args.space} predictions to {out}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (ReconError, ValueError, OSError) as exc:  # each carries a one-line message
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
