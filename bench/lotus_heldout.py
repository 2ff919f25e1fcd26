"""Held-out accuracy of trained Lotus models on generated scenes (printed, never asserted).

    python bench/lotus_heldout.py --data /tmp/lotus/heldout --depth models/lotus-depth-tiny \
        --normal models/lotus-normal-tiny --res 128

--data is a folder in the training layout (`python -m sample_scenes training-data -o DIR --seeds
10000-10019 --views 6`: seeds disjoint from training). Depth: AbsRel and delta1 after a
per-image least-squares scale/shift in the model's space, averaged over images. Normals: mean
and median angle and % of pixels under 11.25 deg, pooled over pixels. --json writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lotus_core.pipeline import LotusModel
from lotus_core.training.data import image_stems
from lotus_core.training.metrics import depth_errors, normal_angles, normal_summary


def load_images(root: Path, stems: list[str]) -> list[np.ndarray]:
    out = []
    for stem in stems:
        path = next(p for p in (root / "images").glob(f"{stem}.*"))
        with Image.open(path) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def eval_depth(model: LotusModel, root: Path, stems: list[str], images: list[np.ndarray]) -> dict:
    results = model.predict(images)
    per_image = [
        depth_errors(r.values, np.load(root / "depth" / f"{s}.npy"), model.info.space)
        for r, s in zip(results, stems)
    ]
    return {
        "abs_rel": float(np.mean([e["abs_rel"] for e in per_image])),
        "delta1": float(np.mean([e["delta1"] for e in per_image])),
        "space": model.info.space,
        "images": len(per_image),
    }


def eval_normal(model: LotusModel, root: Path, stems: list[str], images: list[np.ndarray]) -> dict:
    results = model.predict(images)
    angles = np.concatenate(
        [
            normal_angles(r.normal, np.load(root / "normal" / f"{s}.npy"))
            for r, s in zip(results, stems)
        ]
    )
    return {**normal_summary(angles), "images": len(results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="held-out folder (training layout)")
    parser.add_argument("--depth", help="depth checkpoint folder")
    parser.add_argument("--normal", help="normal checkpoint folder")
    parser.add_argument("--res", type=int, default=128, help="processing resolution (long edge)")
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 | auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # more threads than free cores slows torch down
    root = Path(args.data)
    stems = image_stems(root)
    images = load_images(root, stems)
    report: dict = {"data": str(root), "res": args.res, "dtype": args.dtype}
    for key, task, fn in (("depth", "depth", eval_depth), ("normal", "normal", eval_normal)):
        source = getattr(args, key)
        if source:
            start = time.perf_counter()
            model = LotusModel.load(
                source, device="cpu", dtype=args.dtype, processing_res=args.res, task=task
            )
            report[key] = {"model": source, **fn(model, root, stems, images)}
            report[key]["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
