"""Subcommands of `ctadeface`; each module has `register(subparsers)`. Keep imports light.

The core's own commands are listed here. Optional parts (the evaluation) are plug-ins the core never
imports by name: a distribution declares a module in the entry-point group `ctadeface.commands`, and
the command line registers it when it is installed. A plug-in module may also offer
`reidentification_checker(thresholds_file)`, which `ctadeface deface --check` uses.
"""

from __future__ import annotations

import importlib

BUILT_IN = (
    "CTADefaceLib.commands.deface",
    "CTADefaceLib.commands.models",
    "CTADefaceLib.commands.phantom",
    "CTADefaceLib.commands.demo",
)

ENTRY_POINT_GROUP = "ctadeface.commands"

#: Plug-ins tried by import when no entry point names them: an editable install made before the entry
#: point was declared, and Slicer, which puts the module folders on sys.path without installing anything.
FALLBACK_PLUGINS = ("CTADefaceEvalLib.commands",)


def _entry_point_modules() -> list[str]:
    from importlib.metadata import entry_points

    found = entry_points()
    # entry_points(group=...) is Python 3.10+; Slicer 5.8's Python 3.9 returns {group: [EntryPoint]} and takes no
    # keyword. 3.10 and 3.11 return a dict with .select(), 3.12 an EntryPoints object with .select() and no .get().
    group = found.select(group=ENTRY_POINT_GROUP) if hasattr(found, "select") else found.get(ENTRY_POINT_GROUP, ())
    return [ep.value.split(":")[0] for ep in group]


def plugin_modules() -> list:
    """The plug-in command modules that can be imported here, each once."""
    modules = []
    for name in dict.fromkeys(_entry_point_modules() + list(FALLBACK_PLUGINS)):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):
                continue  # the plug-in is not installed
            raise
        modules.append(module)
    return modules


def command_modules() -> list:
    """Every subcommand module: the built-in ones, then the plug-ins."""
    return [importlib.import_module(name) for name in BUILT_IN] + plugin_modules()


def reidentification_checker(thresholds: str | None = None):
    """The check `--check [THRESHOLDS]` runs on each defaced image and its original, from the first plug-in that
    offers one. `thresholds`: the plug-in's thresholds file, None for its calibrated default."""
    for module in plugin_modules():
        make = getattr(module, "reidentification_checker", None)
        if make is not None:
            return make(thresholds)
    from ..errors import DefaceError

    raise DefaceError(
        "--check needs the evaluation extra (CTADefaceEvalLib is not installed); install it with "
        "'pip install ctadeface[eval]' or run without --check."
    )
