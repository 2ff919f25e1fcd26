"""Run `lotus-recon` and send it a signal at a chosen call, for the resume tests.

    python -m tests.interrupt SIGNAL MODULE:ATTR NTH MATCH -- CLI ARGS...

The NTH call of MODULE.ATTR whose arguments' repr contains MATCH first sends SIGNAL to this
process (SIGKILL: dies on the spot; SIGTERM: the CLI's handler unwinds; SIGSTOP: pauses until
SIGCONT), then proceeds. The stop lands at a known point inside a stage, without timing.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys


def arm(sig: str, target: str, nth: int, match: str) -> None:
    module_name, attr = target.split(":")
    module = importlib.import_module(module_name)
    original = getattr(module, attr)
    seen = 0

    def wrapper(*args, **kwargs):
        nonlocal seen
        if match in repr(args):
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), getattr(signal, sig))
        return original(*args, **kwargs)

    setattr(module, attr, wrapper)


def main(argv: list[str]) -> int:
    split = argv.index("--")
    sig, target, nth, match = argv[:split]
    arm(sig, target, int(nth), match)
    from pipelines.cli import main as cli

    return cli(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
