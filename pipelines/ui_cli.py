"""`lotus-recon view OUT` and `lotus-recon app`: their arguments (argparse only, so --help stays
instant) and the dispatch to pipelines.view / pipelines.app, which import viser / gradio."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from recon.errors import ConfigError


def add_ui_parsers(sub: argparse._SubParsersAction) -> None:
    view = sub.add_parser("view", help="interactive 3D viewer of a finished run (viser)")
    view.add_argument("output", type=Path, help="a run's output folder (-o of scene/priors)")
    view.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: %(default)s)"
    )
    view.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    view.add_argument(
        "--max-points",
        type=int,
        default=20_000,
        help="points per view's aligned-depth cloud (default: %(default)s)",
    )

    app = sub.add_parser("app", help="local web app: photos in, mesh and report out (gradio)")
    app.add_argument(
        "--workdir",
        type=Path,
        default=Path("lotus-recon-app"),
        help="folder for the app's runs (default: %(default)s)",
    )
    app.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: %(default)s)"
    )
    app.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    app.add_argument("--predictions", type=Path, help="precomputed predictions folder (<stem>.npz)")
    app.add_argument("--lotus-depth", help="Lotus depth checkpoint: hub id or local folder")
    app.add_argument("--lotus-normal", help="Lotus normal checkpoint: hub id or local folder")
    app.add_argument("--device", help="cpu, cuda, mps or auto")
    app.add_argument("--preset", default="default", help="config preset (default: %(default)s)")
    app.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting for every run (repeatable)",
    )


def require_extra(module: str) -> None:
    """One-line error naming the install that fixes a missing optional dependency."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"'{module}' is not installed (needed by this command)",
            fix="pip install 'lotus-recon[app]'",
        )


def run_ui_command(args: argparse.Namespace) -> int:
    if args.command == "view":
        require_extra("viser")
        from pipelines.view import run_view_command

        return run_view_command(args)
    require_extra("gradio")
    from pipelines.app import run_app_command

    return run_app_command(args)
