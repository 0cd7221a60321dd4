"""`ctadeface bench`: the face model's speed, the upstream way against the default path (Testing/benchmarks/speed.py)."""

from __future__ import annotations

import importlib.util
import os


def _speed_module():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "..", "Testing", "benchmarks", "speed.py")
    if not os.path.isfile(path):
        from ..errors import DefaceError

        raise DefaceError("ctadeface bench needs a source checkout (Testing/benchmarks/speed.py was not found).")
    spec = importlib.util.spec_from_file_location("ctadeface_speed_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time the face model: upstream way vs this project's default path",
        description="Builds a CTA-sized phantom and a random model of the official network's shape, times the "
                    "upstream way and the default path in separate processes, and prints one summary line.")
    try:
        _speed_module().add_arguments(parser)
    except Exception:  # no checkout: the command still exists and says why it cannot run
        pass
    parser.set_defaults(func=run)


def run(args) -> int:
    return _speed_module().run(args)
