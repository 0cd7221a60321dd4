"""The table from original to replacement identifiers: written only where the user asks for it.

The table re-identifies every file it covers, so it is written with owner-only permissions and never
by default; keep it apart from the shared data.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import threading

from ..errors import OutputError

KINDS = ("uid", "patient")


class UidMapping:
    """Original -> new, for UIDs ('uid') and patient pseudonyms ('patient'); safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: dict = {kind: {} for kind in KINDS}

    def record(self, kind: str, original: str, new: str) -> None:
        with self._lock:
            self._pairs[kind][original] = new

    def merge(self, other: UidMapping) -> None:
        """Add another mapping's pairs (e.g. one filled in a worker process)."""
        for kind, pairs in other.as_dict().items():
            with self._lock:
                self._pairs[kind].update(pairs)

    def as_dict(self) -> dict:
        with self._lock:
            return {kind: dict(pairs) for kind, pairs in self._pairs.items()}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._pairs.values())

    def write(self, path: str) -> None:
        """Write atomically, as JSON, or as CSV (kind,original,new) when the name ends in .csv; mode 0600."""
        data = self.as_dict()
        if path.lower().endswith(".csv"):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["kind", "original", "new"])
            for kind in KINDS:
                for original, new in sorted(data[kind].items()):
                    writer.writerow([kind, original, new])
            text = buffer.getvalue()
        else:
            text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        folder = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ctadeface-mapping-")  # 0600
        except OSError as exc:
            raise OutputError(f"The mapping file {path} cannot be written ({exc.strerror}).") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise OutputError(f"The mapping file {path} cannot be written ({exc.strerror}).") from None
