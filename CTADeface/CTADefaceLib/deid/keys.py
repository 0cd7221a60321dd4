"""The secret key behind every replacement UID, pseudonym and date shift.

Whoever holds the key can recompute the mapping from any original UID or patient ID to its replacement
(and, by trying candidates, confirm who a de-identified patient is), so it stays with the user: in the
user's configuration folder by default, never next to the outputs, readable by its owner only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile

from ..errors import InputError

KEY_BYTES = 32


def default_key_path() -> str:
    """%APPDATA%\\ctadeface\\deid-key on Windows, else $XDG_CONFIG_HOME (or ~/.config)/ctadeface/deid-key."""
    if sys.platform.startswith("win"):
        base = os.environ.get("APPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Roaming")
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "ctadeface", "deid-key")


def key_inside(folder: str, key_path: str) -> bool:
    """True when `key_path` is `folder` or lies under it (symbolic links resolved)."""
    root = os.path.normcase(os.path.realpath(folder))
    key = os.path.normcase(os.path.realpath(key_path))
    try:
        return os.path.commonpath([root, key]) == root
    except ValueError:  # different drives on Windows
        return False


def _read_key(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            text = handle.read(4096)
    except OSError as exc:
        raise InputError(f"The de-identification key {path} cannot be read ({exc.strerror}).") from None
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) < KEY_BYTES:
        raise InputError(
            f"The de-identification key {path} is not a key of at least {KEY_BYTES} bytes written as hexadecimal."
        )
    if os.name == "posix" and os.stat(path).st_mode & 0o077:
        raise InputError(
            f"The de-identification key {path} can be read by other users: run `chmod 600 {path}` and try again."
        )
    return key


def _create_key(path: str) -> None:
    """Write a new key without ever showing a partial file or replacing a key another process just made."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".deid-key-")  # 0600 from the start
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if a key appeared meanwhile: that one wins, so all runs share it
        except FileExistsError:
            pass
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def load_or_create_key(path: str | None = None) -> bytes:
    """The key at `path` (default: default_key_path()), made with 32 random bytes on first use."""
    path = os.path.abspath(os.path.expanduser(path or default_key_path()))
    if not os.path.exists(path):
        try:
            _create_key(path)
        except OSError as exc:
            raise InputError(f"The de-identification key {path} cannot be created ({exc.strerror}).") from None
    return _read_key(path)
