"""sha256 of files and streams: the one implementation the model installer, the downloads, the inputs' digests
and the outputs' sidecars share."""

from __future__ import annotations

import hashlib

CHUNK = 1 << 20  # read 1 MiB at a time: a 250 MB checkpoint is never held in memory whole


def stream_sha256(handle) -> str:
    """sha256 of what is left to read from a binary file-like object (an open file, a zip member)."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return stream_sha256(handle)
