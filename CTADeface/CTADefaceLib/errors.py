"""Errors a user can act on.

Every front door (CLI, Slicer module, batch script) catches `DefaceError` and shows
its message as one sentence; anything else is a bug and keeps its traceback.
"""


class DefaceError(Exception):
    """An error caused by the input, the settings or the environment, not by a bug."""

    exit_code = 2


class InputError(DefaceError):
    """The input image is missing, unreadable, or not a 3D CT."""


class ModelError(DefaceError):
    """A model is unknown, not installed, or its files do not verify."""


class ChecksumError(ModelError):
    """A model file's sha256 does not match the registry."""


class EmptyMaskError(DefaceError):
    """The engine found no face: nothing would be removed."""


class OutputError(DefaceError):
    """An output cannot be written (or would overwrite an input)."""
