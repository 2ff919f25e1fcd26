"""`lotus-recon` command line. Heavy libraries are imported inside commands so --help is instant.

Library code raises typed errors; this module alone turns them into one-line messages and exit
codes (1 = bad input/config, 2 = usage, 3 = disk/permissions, 70 = internal error,
130 = interrupted, 143 = terminated by SIGTERM). Both interruptions unwind normally, so
temp files are removed, the workspace lock is released and a rerun resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from pipelines.cli_errors import EXIT_INTERRUPTED, translate
from pipelines.run_log import RunLog

log = logging.getLogger("lotus_recon")

# Kept here, not imported from recon.priors, so that --help stays instant (a test checks the two
# lists agree).
PRIORS_FORMATS = (
    "nerfstudio", "dn-splatter", "monosdf", "tum", "splat-slam", "colmap", "npz",
    "monogs", "dn_splatter", "splat_slam",
)  # fmt: skip


def _add_config_args(
    parser: argparse.ArgumentParser, default_preset: str | None = "default"
) -> None:
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


def _output_dir(text: str) -> Path:
    """-o: a folder name; an empty one (`-o ""`, an unset shell variable) is a usage error,
    not the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty: name an output folder")
    return Path(text)


def _add_verbosity_args(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug log and tracebacks"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="only errors on the console (OUT/log.txt keeps the full log)",
    )


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
    _add_verbosity_args(parser, False)
    # The same flags after the subcommand; SUPPRESS keeps a flag given before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_verbosity_args(common, argparse.SUPPRESS)
    sub = _Subparsers(parser.add_subparsers(dest="command", required=True), [common])

    scene = sub.add_parser("scene", help="photo folder -> SfM -> aligned priors -> fused mesh")
    scene.add_argument("photo_dir", type=Path, help="photo folder or video file (mp4, mov, ...)")
    scene.add_argument("-o", "--output", type=_output_dir, required=True, help="output folder")
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
    image.add_argument("-o", "--output", type=_output_dir, required=True)
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
    _add_config_args(image, default_preset=None)  # ImageConfig's own defaults

    priors = sub.add_parser(
        "priors", help="photo folder -> aligned depth/normal priors for other tools"
    )
    priors.add_argument("photo_dir", type=Path, help="photo folder or video file (mp4, mov, ...)")
    priors.add_argument("-o", "--output", type=_output_dir, required=True)
    priors.add_argument(
        "--format",
        dest="formats",
        action="append",
        required=True,
        choices=PRIORS_FORMATS,
        help="output layout (repeatable): %(choices)s",
    )
    priors.add_argument("--colmap", type=Path, help="reuse an existing COLMAP model folder")
    _add_predictor_args(priors)
    _add_executor_args(priors)
    _add_config_args(priors)
    from pipelines.ui_cli import add_ui_parsers

    add_ui_parsers(sub)
    return parser


class _Subparsers:
    """`add_parser` with shared parent parsers (the verbosity flags)."""

    def __init__(self, action: argparse._SubParsersAction, parents: list) -> None:
        self.action, self.parents = action, parents

    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        return self.action.add_parser(name, parents=self.parents, **kwargs)


def setup_logging(output: Path | None, verbose: bool, quiet: bool = False) -> RunLog | None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, RunLog):
            handler.close()  # an earlier in-process run's log (tests call main repeatedly)
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    if quiet and not verbose:
        console.setLevel(logging.ERROR)
    root.addHandler(console)
    run_log = None
    if output is not None:
        # Held in memory until this run owns the folder (see pipelines.run_log).
        run_log = RunLog(Path(output) / "log.txt")
        run_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(run_log)
        from pipelines.workspace import LOCK_LISTENERS

        LOCK_LISTENERS.append(run_log.on_lock)
    for noisy in ("PIL", "matplotlib", "urllib3", "filelock", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run_log


def _run(args: argparse.Namespace) -> int:
    code = _run_command(args)
    if code == 0 and args.command in ("scene", "priors", "image"):
        from pipelines.report import write_report  # logs one warning line if it fails

        write_report(args.output, args.command)
    return code


def _run_command(args: argparse.Namespace) -> int:
    if args.command in ("view", "app"):
        from pipelines.ui_cli import run_ui_command

        return run_ui_command(args)
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
    # pycolmap installs glog's failure-signal handler (a C++ stack dump on SIGTERM) when it is
    # imported: import it first so that ours, installed after, is the one that runs.
    with contextlib.suppress(ImportError):
        importlib.import_module("pycolmap")
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
    run_log = setup_logging(getattr(args, "output", None), args.verbose, args.quiet)
    busy = False
    try:
        with _run_context(args.quiet):
            return _run(args)
    except KeyboardInterrupt as exc:
        log.error("interrupted; rerun the same command to resume where it stopped")
        if isinstance(exc, Terminated):
            return 128 + exc.signum
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.verbose:
            raise
        from recon.errors import WorkspaceBusyError

        busy = isinstance(exc, WorkspaceBusyError)
        if busy and run_log is not None:
            run_log.discard()  # the folder's log belongs to the run that holds it
        message, code = translate(exc, getattr(args, "output", None))
        log.error("%s", message)
        return code
    finally:
        if run_log is not None and not busy:
            run_log.open()  # a run that stopped before taking the lock still keeps its log


if __name__ == "__main__":
    sys.exit(main())
