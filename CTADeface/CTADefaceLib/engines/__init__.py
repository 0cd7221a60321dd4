"""Face-mask engines, chosen by name.

An engine takes a SimpleITK CT image and returns a binary face mask (UInt8, 1 = face)
on exactly the same voxel grid. Engines are looked up by name so that the CLI, the Slicer
module and the evaluation all offer the same list; each is imported only when chosen.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import DefaceError

if TYPE_CHECKING:
    from ..settings import DefaceSettings
    from .base import Engine

# name -> "module:Class"; the module is imported only when the engine is used.
ENGINES = {
    "nnunet": "CTADefaceLib.engines.nnunet.engine:NnUNetEngine",
    "box": "CTADefaceLib.engines.box:BoxEngine",
}


def engine_names() -> list[str]:
    return sorted(ENGINES)


def create_engine(name: str, **options: Any) -> Engine:
    """Build an engine by name; options are the engine's keyword arguments."""
    if name not in ENGINES:
        raise DefaceError(f"Unknown engine '{name}'; choose one of: {', '.join(engine_names())}.")
    module_name, class_name = ENGINES[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)


def engine_for(settings: DefaceSettings) -> Engine:
    """The engine `settings` name, built with its model options; settings.engine_options win over the fields.

    Here, not a DefaceSettings method: the settings are the layer below the engines and import none of them.
    """
    options = dict(settings.engine_options)
    if settings.engine == "nnunet":
        options.setdefault("model", settings.model)
        options.setdefault("device", settings.device)
        options.setdefault("mirroring", settings.mirroring)
        options.setdefault("tile_step", settings.tile_step)
        options.setdefault("roi", settings.roi)
    return create_engine(settings.engine, **options)
