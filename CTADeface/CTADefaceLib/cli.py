"""The `ctadeface` command line: one parser, subcommands registered by small modules.

Each module of commands.command_modules() (the core's commands, then installed plug-ins such as
the evaluation) has `register(subparsers)`, which adds its subcommand and sets
`func(args) -> int`. User errors (DefaceError) become one sentence on stderr and a
non-zero exit; anything else is a bug and keeps its traceback. Ctrl-C and SIGTERM stop the
run the same way (the case being written is cleaned up) and print only what is true of it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from . import __version__
from .errors import DefaceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctadeface",
        description=(
            "Remove the face from head CT angiography (CTA-DEFACE: an nnU-Net v2 model segments the "
            "facial soft tissue; those voxels are replaced by the image's 10th percentile). "
            "Inputs are never modified."
        ),
        epilog="Run 'ctadeface COMMAND --help' for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"ctadeface {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step (default: progress and results)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .commands import command_modules

    for module in command_modules():
        module.register(subparsers)
    return parser


class _Terminated(KeyboardInterrupt):
    pass


def _stop_on_sigterm(signum, frame):
    # A batch system's kill (SIGTERM) gets the same clean-up as Ctrl-C: the case being written is removed.
    raise _Terminated


def main(argv=None) -> int:
    try:
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    except ValueError:
        pass  # not the main thread (e.g. called from a test runner's thread): keep the default
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("numexpr").setLevel(logging.WARNING)  # its thread-count notice is not for users
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DefaceError as err:
        print(f"ctadeface: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as err:
        # A batch says which case it stopped in and what of it remains; elsewhere nothing more is known.
        print(f"ctadeface: {err if str(err) else 'interrupted.'}", file=sys.stderr)
        terminated = isinstance(err, _Terminated) or isinstance(err.__context__, _Terminated)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
