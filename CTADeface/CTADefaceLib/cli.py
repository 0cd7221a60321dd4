"""The `ctadeface` command line: one parser, subcommands registered by small modules.

Each module in COMMANDS has `register(subparsers)`, which adds its subcommand and sets
`func(args) -> int`. User errors (DefaceError) become one sentence on stderr and a
non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .errors import DefaceError

COMMANDS = (
    "CTADefaceLib.commands.deface",
    "CTADefaceLib.commands.models",
    "CTADefaceLib.commands.phantom",
    "CTADefaceLib.commands.demo",
    "CTADefaceLib.commands.bench",
    "CTADefaceEvalLib.commands",
)


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
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):
                continue  # an optional part (the evaluation library) is not installed
            raise
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    logging.getLogger("numexpr").setLevel(logging.WARNING)  # its thread-count notice is not for users
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DefaceError as err:
        print(f"ctadeface: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("ctadeface: interrupted; no partial output was left behind.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
