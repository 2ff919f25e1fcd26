"""`lotus-recon` command line. Heavy libraries are imported inside commands so --help is instant.

Library code raises typed errors; this module alone turns them into one-line messages and exit
codes (1 = bad input/config, 2 = usage, 3 = disk/permissions, 70 = internal error,
130 = interrupted, 143 = terminated by SIGTERM). Both interruptions unwind normally, so
temp files are removed, the workspace lock is released and a rerun resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("lotus_recon")

EXIT_INPUT, EXIT_USAGE, EXIT_DISK, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 70, 130


def _add_config_args(parser: argparse.ArgumentParser, default_preset: str = "default") -> None:
    parser.add_argument(
        "--preset", default=default_preset, help="config preset (default: %(default)s)"
    )
    parser.add_argument("--config", type=Path, help="YAML file merged over the preset")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set fusion.voxel_size=0.01 (repeatable)",
    )


def _add_predictor_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predictions",
        type=Path,
        help="folder of precomputed predictions (<image stem>.npz; see README) instead of Lotus",
    )
    parser.add_argument("--lotus-depth", help="Lotus depth checkpoint: hub id or local folder")
    parser.add_argument("--lotus-normal", help="Lotus normal checkpoint: hub id or local folder")
    parser.add_argument("--device", help="cpu, cuda, mps or auto")


def _add_executor_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        help="where the depth/normal model runs: this process (default) or Ray workers",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join this Ray cluster (implies --executor ray); default: start a local Ray",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lotus-recon",
        description="Photos to 3D geometry with Lotus depth/normal priors.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug log and tracebacks")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="only errors on the console (OUT/log.txt keeps the full log)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    scene = sub.add_parser("scene", help="photo folder -> SfM -> aligned priors -> fused mesh")
    scene.add_argument("photo_dir", type=Path)
    scene.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    scene.add_argument("--colmap", type=Path, help="reuse an existing COLMAP model folder")
    scene.add_argument(
        "--priors",
        action="append",
        default=[],
        metavar="FORMAT",
        help="also write depth/normal priors in this layout (repeatable)",
    )
    _add_predictor_args(scene)
    _add_executor_args(scene)
    _add_config_args(scene)

    image = sub.add_parser("image", help="one photo -> depth + normals -> mesh")
    image.add_argument("photo", type=Path)
    image.add_argument("-o", "--output", type=Path, required=True)
    image.add_argument(
        "--fov-deg",
        type=float,
        help="field of view across the long side when EXIF has none (default 60)",
    )
    image.add_argument("--K", dest="intrinsics", help="explicit intrinsics 'fx,fy,cx,cy' (px)")
    image.add_argument(
        "--metric-center-distance",
        type=float,
        help="metres from the camera to the surface at the image centre "
        "(default: relative scale, median depth 1)",
    )
    image.add_argument(
        "--refine", action="store_true", help="refine depth by integrating the predicted normals"
    )
    _add_predictor_args(image)
    _add_config_args(image)

    priors = sub.add_parser(
        "priors", help="photo folder -> aligned depth/normal priors for other tools"
    )
    priors.add_argument("photo_dir", type=Path)
    priors.add_argument("-o", "--output", type=Path, required=True)
    priors.add_argument(
        "--format",
        dest="formats",
        action="append",
        required=True,
        help="output layout (repeatable); see README for the list",
    )
    priors.add_argument("--colmap", type=Path, help="reuse an existing COLMAP model folder")
    _add_predictor_args(priors)
    _add_executor_args(priors)
    _add_config_args(priors)
    return parser


def setup_logging(output: Path | None, verbose: bool, quiet: bool = False) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    if quiet and not verbose:
        console.setLevel(logging.ERROR)
    root.addHandler(console)
    if output is not None:
        try:
            output.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(output / "log.txt")
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            root.addHandler(handler)
        except OSError:
            pass  # the workspace check reports an unwritable folder with a proper message
    for noisy in ("PIL", "matplotlib", "urllib3", "filelock", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    if args.command == "scene":
        from pipelines.scene import run_scene_command

        return run_scene_command(args)
    if args.command == "image":
        from pipelines.single_image import run_image_command

        return run_image_command(args)
    if args.command == "priors":
        from pipelines.scene import run_priors_command

        return run_priors_command(args)
    raise AssertionError(args.command)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from recon.errors import ReconError

    types: list[type[BaseException]] = [ReconError]
    lotus_errors = sys.modules.get("lotus_core.errors")
    if lotus_errors is not None and hasattr(lotus_errors, "LotusError"):
        types.append(lotus_errors.LotusError)
    return tuple(types)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that temp files are removed and the lock freed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _run_context(quiet: bool) -> Iterator[None]:
    """SIGTERM as an interrupt, and no progress bars when quiet; both undone on exit."""
    from recon.progress import set_progress

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    bars = set_progress(not quiet)
    try:
        yield
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        set_progress(bars)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(getattr(args, "output", None), args.verbose, args.quiet)
    try:
        with _run_context(args.quiet):
            return _run(args)
    except KeyboardInterrupt as exc:
        log.error("interrupted; rerun the same command to resume where it stopped")
        if isinstance(exc, Terminated):
            return 128 + exc.signum
        return EXIT_INTERRUPTED
    except OSError as exc:
        if args.verbose:
            raise
        where = exc.filename or getattr(args, "output", None) or "I/O error"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = "free space or choose another -o folder, then rerun to resume"
            log.error("%s: disk full — fix: %s", where, fix)
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            log.error("%s: permission denied — fix: choose a writable -o folder", where)
        else:
            reason = exc.strerror or str(exc).splitlines()[0]
            log.error("%s: %s — fix: check the path and rerun", where, reason)
        return EXIT_DISK
    except Exception as exc:
        if args.verbose:
            raise
        if isinstance(exc, _user_error_types()):
            log.error("%s", exc)
            return EXIT_INPUT
        detail = str(exc).splitlines()[0] if str(exc) else ""
        log.error("unexpected %s: %s (rerun with -v for the traceback)", type(exc).__name__, detail)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
