"""Model zips and folders are hostile until checked: nothing they hold may land outside the staging folder.

A zip is refused as a whole, before anything is unpacked, when a member has an absolute path, a drive
letter or a `..` step, is a symbolic link, is encrypted, shares its name with another member, or when the
sizes it declares add up to more than any face model needs (a zip bomb). Unpacking copies at most the
declared size of each member (zipfile stops there and checks the CRC), and a copy that grows beyond it is
refused too.
"""

from __future__ import annotations

import contextlib
import os
import stat
import zipfile
import zlib

from ..errors import ModelError

# The official model unpacks to about 250 MB; 2 GiB leaves room for several folds of a larger network
# and stops a zip bomb long before it fills a disk.
MAX_UNPACKED_BYTES = 2 * 1024**3
MAX_MEMBERS = 10_000
_CHUNK = 1 << 20
# What a broken or hostile zip can raise while it is read: all of them mean "not a usable model zip".
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


class BrokenZipError(ModelError):
    """The zip cannot be read (truncated, corrupt): unlike a hostile one, fetching it again may help."""


def safe_relative(rel: str, what: str) -> list[str]:
    """The parts of a relative path that cannot leave its folder; ModelError otherwise."""
    parts = rel.replace("\\", "/").split("/")
    if (
        not rel
        or rel.startswith(("/", "\\"))
        or "\x00" in rel
        or ":" in parts[0]
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ModelError(
            f"{what} holds the path '{rel}', which points outside the model folder; it was refused "
            "and nothing was installed."
        )
    return parts


def join_inside(root: str, rel: str, what: str) -> str:
    """root/rel, refused when it would resolve (through `..`, an absolute path or a symlink) outside root."""
    target = os.path.join(root, *safe_relative(rel, what))
    real_root = os.path.realpath(root)
    real_target = os.path.realpath(target)
    if os.path.commonpath([real_root, real_target]) != real_root:
        raise ModelError(
            f"{what} holds the path '{rel}', which resolves outside the model folder; it was refused "
            "and nothing was installed."
        )
    return target


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def check_members(archive: zipfile.ZipFile, label: str) -> list[zipfile.ZipInfo]:
    """Every file member of a zip, after refusing the whole zip if any member is unsafe."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelError(f"{label} has {len(infos)} members, more than a model can have; it was refused.")
    total = 0
    seen = set()
    for info in infos:
        # Two members with one name: which one a reader gets depends on the reader (zipfile takes the last, the
        # sizes and checksums read from the listing may be the other's), so such a zip is never a plain model.
        key = info.filename.rstrip("/")
        if key in seen:
            raise ModelError(
                f"{label} holds two members named '{key}'; a model zip names each file once, so it "
                "was refused and nothing was installed."
            )
        seen.add(key)
        safe_relative(info.filename.rstrip("/"), label)
        if _is_symlink(info):
            raise ModelError(
                f"{label} holds a symbolic link ({info.filename}); model zips must hold plain files, "
                "so it was refused and nothing was installed."
            )
        if info.flag_bits & 0x1:
            raise ModelError(f"{label} is encrypted ({info.filename}); give an unencrypted zip.")
        total += info.file_size
    if total > MAX_UNPACKED_BYTES:
        raise ModelError(
            f"{label} would unpack to {total / 2**30:.1f} GiB, more than the "
            f"{MAX_UNPACKED_BYTES / 2**30:.0f} GiB a face model can need (a zip bomb?); it was refused "
            "and nothing was installed."
        )
    return [i for i in infos if not i.is_dir()]


@contextlib.contextmanager
def open_zip(path: str, label: str | None = None):
    """A checked zip: (archive, file members); any read error inside the block becomes one sentence."""
    label = label or path
    try:
        with zipfile.ZipFile(path) as archive:
            members = check_members(archive, label)
            yield archive, members
    except _READ_ERRORS as err:
        raise BrokenZipError(f"{label} is not a usable zip file ({err or type(err).__name__}).") from None


def copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: str, label: str) -> None:
    """Unpack one member to target, never more bytes than it declares."""
    written = 0
    with archive.open(info) as src, open(target, "wb") as dst:
        for block in iter(lambda: src.read(_CHUNK), b""):
            written += len(block)
            if written > info.file_size:
                raise ModelError(
                    f"{label}: {info.filename} unpacks to more than the {info.file_size} bytes it "
                    "declares; the zip was refused."
                )
            dst.write(block)
