"""The table from original to replacement identifiers: written only where the user asks for it.

The table re-identifies every file it covers, so it is written with owner-only permissions and never
by default; keep it apart from the shared data.

One mapping file can serve many runs: each run adds its rows to what the file already holds (a later batch
never drops an earlier one's rows). Runs that finish at the same moment take turns: the rows are merged under
an exclusive flock(2) on a lock file beside it (`.<name>.lock`, left in place, empty), and the merged table
replaces the file atomically (a temporary file, fsync, rename), so a reader never sees half a table. Where there
is no flock (Windows) the merge goes on without the lock. A file that is not such a table, or one that maps an
identifier to another replacement (made with another key), is never overwritten: one sentence says why.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import tempfile
import threading
from collections.abc import Iterator

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

    @staticmethod
    def check(path: str) -> None:
        """Refuse, before a run, a --mapping-file that exists and is not such a table (it would not be merged)."""
        _read_table(path)

    def write(self, path: str) -> None:
        """Add this run's pairs to the table at `path` (made if missing) and replace it atomically, mode 0600.

        JSON, or CSV (kind,original,new) when the name ends in .csv. Concurrent writers are serialised by a lock.
        """
        with _locked(path):
            data = _read_table(path)
            conflicts = 0
            for kind, pairs in self.as_dict().items():
                for original, new in pairs.items():
                    if data[kind].setdefault(original, new) != new:
                        conflicts += 1
            if conflicts:
                raise OutputError(
                    f"The mapping file {path} already maps {conflicts} of this run's identifiers to other "
                    "replacements (it was written with another key), so it was left as it was; give another "
                    "--mapping-file."
                )
            _replace(path, _format(data, path))


def _format(data: dict, path: str) -> str:
    if not path.lower().endswith(".csv"):
        return json.dumps(data, indent=1, sort_keys=True) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["kind", "original", "new"])
    for kind in KINDS:
        for original, new in sorted(data[kind].items()):
            writer.writerow([kind, original, new])
    return buffer.getvalue()


def _read_table(path: str) -> dict:
    """The pairs the file at `path` holds ({kind: {original: new}}); empty when there is no file yet."""
    data: dict = {kind: {} for kind in KINDS}
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        return data
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise OutputError(
            f"The mapping file {path} exists but cannot be read ({reason}); it was left as it was."
        ) from None
    if not text.strip():
        return data
    not_a_table = OutputError(
        f"{path} exists and is not a mapping file of this tool, so it was not overwritten; give another --mapping-file."
    )
    if path.lower().endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or rows[0] != ["kind", "original", "new"]:
            raise not_a_table
        for row in rows[1:]:
            if len(row) != 3 or row[0] not in KINDS:
                raise not_a_table
            data[row[0]][row[1]] = row[2]
        return data
    try:
        loaded = json.loads(text)
    except ValueError:
        raise not_a_table from None
    if not isinstance(loaded, dict) or set(loaded) - set(KINDS):
        raise not_a_table
    for kind, pairs in loaded.items():
        if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
            raise not_a_table
        data[kind].update(pairs)
    return data


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """An exclusive flock on `.<name>.lock` beside `path` while the table is read, merged and replaced."""
    folder, name = os.path.split(os.path.abspath(path))
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield
        return
    try:
        fd = os.open(os.path.join(folder, f".{name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise OutputError(f"The mapping file {path} cannot be written ({exc.strerror}).") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits for another run's merge (a fraction of a second)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise OutputError(f"The mapping file {path} cannot be locked ({exc.strerror}).") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _replace(path: str, text: str) -> None:
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
