"""Speed of the Lotus pipeline against upstream's per-image reference loop.

    python bench/lotus_speed.py                      # all default routes at 768x576
    python bench/lotus_speed.py --res 512x384 --routes reference,bf16

Both sides run the full-size Stable Diffusion 2 architecture (UNet 865M, VAE 84M, OpenCLIP-H
text encoder 354M) with random weights, saved once as a checkpoint in the official folder
layout under --workdir (about 5 GB), so our routes load it with `LotusModel.load` like a real
checkpoint. Timing does not depend on weight values. The random VAE's log-variance is set to
-30 (std 3e-7) so the reference's random-sample encode equals the latent mode, as it nearly
does for the trained VAE: the output columns then compare like with like.

Each route runs in its own process (peak RSS is per process): load, one warm-up image at
--warm-res, then --images timed images at --res. Columns: ms/image (mean of the timed images),
ratio = reference ms / route ms, peak RSS, the text / VAE-encode / UNet / VAE-decode split per
image, and the max |difference| of the [0, 1] depth output from the reference loop's and from
our float32 route's.

Routes:
  reference     upstream infer.py per image: fp32 weights under torch.autocast (bf16 on CPU),
                prompt tokenized and encoded every image, batch 1, latent_dist.sample()
  fp32 / bf16 / fp16    ours, weights in that dtype, cached prompt, latent mode
  bf16-cl       ours, bf16, channels_last weights and activations
  bf16-compile  ours, bf16, torch.compile (inductor, weights frozen); compile time reported
  bf16-batch2   ours, bf16, two images per call (ms per image)
  bf16-cl-batch2  ours, bf16, channels_last, two images per call
  onnx-fp32     ours, with UNet and VAE exported to ONNX (static shapes) and run by ONNX Runtime
                on the CPU (needs `pip install onnxruntime onnx`); export time reported
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lotus_reference import STAGES, Reference, build_checkpoint, test_image  # noqa: E402

ROUTES = (
    "reference",
    "fp32",
    "bf16",
    "bf16-cl",
    "bf16-batch2",
    "bf16-cl-batch2",
    "bf16-compile",
    "fp16",
    "onnx-fp32",
)
DEFAULT_ROUTES = "reference,fp32,bf16,bf16-cl,bf16-batch2,bf16-compile"


# -- one route, in its own process -----------------------------------------------------------
def _route_model(route: str, path: Path, res: int):
    import torch

    from lotus_core import LotusModel

    dtype = {"fp32": torch.float32, "fp16": torch.float16}.get(route, torch.bfloat16)
    return LotusModel.load(
        path,
        device="cpu",
        dtype=dtype,
        processing_res=res,
        channels_last=route.startswith("bf16-cl"),
        compile=route == "bf16-compile",
    )


def _onnx_model(path: Path, h: int, w: int, workdir: Path):
    """Our fp32 model with encode / UNet / decode swapped for ONNX Runtime sessions."""
    import onnxruntime as ort
    import torch

    model = _route_model("fp32", path, max(h, w))
    folder = workdir / f"onnx_{w}x{h}"
    folder.mkdir(parents=True, exist_ok=True)
    ch = model.unet.config.in_channels
    sf, lat = model.scaling, (h // 8, w // 8)
    parts = {
        "encode": (lambda x: model.vae.encode(x).latent_dist.mode() * sf, [(1, 3, h, w)]),
        "unet": (
            lambda x, t, c, k: model.unet(
                x, t, encoder_hidden_states=c, class_labels=k, return_dict=False
            )[0],
            [(1, ch, *lat), (1,), tuple(model.prompt.shape), (1, 4)],
        ),
        "decode": (lambda z: model.vae.decode(z / sf, return_dict=False)[0], [(1, 4, *lat)]),
    }
    sessions = {}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    for name, (fn, shapes) in parts.items():
        file = folder / f"{name}.onnx"
        if not file.is_file():
            inputs = tuple(
                torch.full(s, 999, dtype=torch.long) if s == (1,) else torch.randn(s)
                for s in shapes
            )
            module = _Wrap(fn)
            torch.onnx.export(module, inputs, str(file), dynamo=False, opset_version=17)
        sessions[name] = ort.InferenceSession(str(file), opts, providers=["CPUExecutionProvider"])
    _swap_in_sessions(model, sessions)
    return model


class _Wrap:
    """Lazily a torch.nn.Module wrapping a function (torch is imported only by workers)."""

    def __new__(cls, fn):
        import torch

        class Module(torch.nn.Module):
            def forward(self, *args):
                return fn(*args)

        return Module()


def _swap_in_sessions(model, sessions: dict) -> None:
    import torch

    def run(name: str, *arrays: torch.Tensor) -> torch.Tensor:
        session = sessions[name]
        feeds = {i.name: a.cpu().numpy() for i, a in zip(session.get_inputs(), arrays)}
        with model.timer.stage(name):
            return torch.from_numpy(session.run(None, feeds)[0])

    model.encode = lambda pixels: run("encode", pixels.float())
    model.decode = lambda z: run("decode", z).clamp_(-1.0, 1.0)

    def denoise(latent, noise):
        x = (
            latent
            if noise is None
            else torch.cat([latent, noise.expand(len(latent), -1, -1, -1)], 1)
        )
        t = torch.full((len(x),), model.info.num_train_timesteps - 1, dtype=torch.long)
        return run("unet", x, t, model.prompt.float(), model.switcher.float())

    model.denoise = denoise


def worker(args: argparse.Namespace) -> dict:
    """Load, warm up, time; write outputs to --out; return the measurements."""
    import torch

    if args.route == "bf16-compile":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # prepack oneDNN weights: the point of compiling on CPU
    h, w = args.size
    batch = 2 if args.route.endswith("batch2") else 1
    res = max(h, w)
    start = time.perf_counter()
    if args.route == "reference":
        model = Reference(args.checkpoint)
    elif args.route == "onnx-fp32":
        model = _onnx_model(args.checkpoint, h, w, args.out.parent)
    else:
        model = _route_model(args.route, args.checkpoint, res)
    load_s = time.perf_counter() - start
    gc.collect()
    load_peak = _peak_rss_gib(reset=True)  # loading peaks above inference: report both
    warm_h, warm_w = args.warm_size
    start = time.perf_counter()
    if args.route == "reference":
        model.predict(test_image(warm_h, warm_w, 99), max(warm_h, warm_w))
    else:
        static = args.route in ("bf16-compile", "onnx-fp32")  # shape-specialised: warm at size
        model.processing_res = res if static else max(warm_h, warm_w)
        warm = [test_image(h, w, 99) if static else test_image(warm_h, warm_w, 99)] * batch
        model.predict(warm, batch_size=batch)
        model.processing_res = res
    warm_s = time.perf_counter() - start
    seconds = _timed_images(model, args, batch, res)
    return {
        "route": args.route,
        "load_s": load_s,
        "warm_s": warm_s,
        **seconds,
        "peak_rss_gib": _peak_rss_gib(),
        "load_peak_rss_gib": load_peak,
        "threads": torch.get_num_threads(),
    }


def _peak_rss_gib(reset: bool = False) -> float:
    """Peak resident memory (VmHWM) of this process; `reset` restarts the peak after reading."""
    status = Path("/proc/self/status")
    if not status.exists():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    line = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM"))
    peak = int(line.split()[1]) / 2**20
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    return peak


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (robust to time-sharing)."""
    t = os.times()
    return t.user + t.system


def _timed_images(model, args: argparse.Namespace, batch: int, res: int) -> dict:
    h, w = args.size
    images = [test_image(h, w, k) for k in range(args.images * batch)]
    outputs = []
    if args.route == "reference":
        model.seconds = dict.fromkeys(STAGES, 0.0)
        cpu0, start = _cpu_seconds(), time.perf_counter()
        outputs = [model.predict(image, res) for image in images]
        total, split = time.perf_counter() - start, dict(model.seconds)
    else:
        model.timer.reset()
        cpu0, start = _cpu_seconds(), time.perf_counter()
        for k in range(0, len(images), batch):
            outputs += [r.values for r in model.predict(images[k : k + batch], batch_size=batch)]
        total, split = (
            time.perf_counter() - start,
            {s: model.timer.seconds.get(s, 0.0) for s in STAGES},
        )
    cpu = _cpu_seconds() - cpu0
    np.save(args.out, np.stack(outputs).astype(np.float32))
    n = len(images)
    return {
        "ms_per_image": 1000 * total / n,
        "cpu_s_per_image": cpu / n,
        "split_ms": {k: 1000 * v / n for k, v in split.items()},
    }


# -- driver -----------------------------------------------------------------------------------
def run_route(route: str, args: argparse.Namespace, checkpoint: Path) -> dict:
    out = args.workdir / f"out_{route}.npy"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        route,
        "--checkpoint",
        str(checkpoint),
        "--res",
        args.res,
        "--warm-res",
        args.warm_res,
        "--images",
        str(args.images),
        "--out",
        str(out),
    ]
    print(f"[{time.strftime('%H:%M:%S')}] route {route} ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.route_timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"route": route, "error": " | ".join(tail) or f"exit {proc.returncode}"}
    result = json.loads(lines[-1])
    result["out"] = str(out)
    print(f"    {json.dumps(result)}", flush=True)
    return result


def _diff(result: dict, other: dict | None) -> str:
    if other is None or "out" not in result or "out" not in other:
        return "-"
    a, b = np.load(result["out"]), np.load(other["out"])
    n = min(len(a), len(b))
    return f"{np.abs(a[:n] - b[:n]).max():.3f}"


def _ratio(ref: dict | None, r: dict, key: str) -> str:
    if not ref or key not in ref or key not in r:
        return "-"
    return f"{ref[key] / r[key]:.2f}x"


def table(results: list[dict]) -> str:
    """Markdown table; CPU seconds are robust to other processes sharing the cores."""
    by = {r["route"]: r for r in results}
    ref, fp32 = by.get("reference"), by.get("fp32")
    head = (
        "| route | ms/image | vs ref (wall) | CPU s/image | vs ref (CPU) | peak RSS GiB (load) "
        "| text ms | encode ms | unet ms | decode ms | max diff vs ref | max diff vs fp32 |"
    )
    rows = [head, "|" + "---|" * 12]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['route']} | failed: {r['error'][:150]} |" + " |" * 10)
            continue
        s = r["split_ms"]
        extra = ""
        if r["route"] in ("bf16-compile", "onnx-fp32"):
            extra = f" (load+export {r['load_s']:.0f} s, compile+warm {r['warm_s']:.0f} s)"
        cpu = f"{r['cpu_s_per_image']:.0f}" if "cpu_s_per_image" in r else "-"
        rows.append(
            f"| {r['route']}{extra} | {r['ms_per_image']:.0f} | "
            f"{_ratio(ref, r, 'ms_per_image')} | {cpu} | {_ratio(ref, r, 'cpu_s_per_image')} | "
            f"{r['peak_rss_gib']:.1f} ({r['load_peak_rss_gib']:.1f}) | "
            + " | ".join(f"{s[k]:.0f}" for k in STAGES)
            + f" | {_diff(r, ref)} | {_diff(r, fp32)} |"
        )
    return "\n".join(rows)


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return h, w


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--res", default="768x576", help="WIDTHxHEIGHT of the timed images")
    p.add_argument("--warm-res", default="256x192", help="WIDTHxHEIGHT of the warm-up image")
    p.add_argument("--routes", default=DEFAULT_ROUTES, help=f"comma list of {ROUTES}")
    p.add_argument("--images", type=int, default=1, help="timed images (pairs for batch2)")
    p.add_argument("--variant", choices=("g", "d"), default="g")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/lotus_speed"))
    p.add_argument("--route-timeout", type=int, default=1500, help="seconds per route")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.size, args.warm_size = _size(args.res), _size(args.warm_res)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        args.route = args.worker
        print(json.dumps(worker(args)), flush=True)
        return 0
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    unknown = sorted(set(routes) - set(ROUTES))
    if unknown:
        raise SystemExit(f"unknown routes {unknown}; choose from {ROUTES}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = build_checkpoint(args.workdir / f"sd2-lotus-{args.variant}", args.variant)
    results = [run_route(route, args, checkpoint) for route in routes]
    import torch

    print(
        f"\nLotus-{args.variant.upper()} at {args.res}, {args.images} timed image(s) per route, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs; no GPU lent to this run\n"
    )
    print(table(results))
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
