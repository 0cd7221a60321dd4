"""File names made from user text (Slicer node names): one rule for every module."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str) -> str:
    """ASCII letters, digits, '.', '_' and '-' only (each run of anything else becomes one '_'), no leading or
    trailing dot or underscore, never empty: the same name on every file system, in every child process's
    encoding, and never a path or a hidden file."""
    return _UNSAFE.sub("_", name).strip("._") or "volume"
