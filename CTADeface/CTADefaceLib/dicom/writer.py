"""Writing DICOM files: Explicit VR Little Endian, zeroed preamble, through a temporary name.

A study is written into a staging folder inside the output folder and renamed into place whole
(study.py), so no file is ever under its final name unless the whole study is complete; each file is also
written to a temporary name and renamed, so even the staging folder never holds half a file.
Works with pydicom 2.4 and 3.0 (their write options differ).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from typing import Any

from ..io.volume import flush_to_disk, temp_prefix
from .pixels import EXPLICIT_VR_LITTLE_ENDIAN


def _pydicom_major() -> int:
    import pydicom

    return int(str(pydicom.__version__).split(".")[0])


def write_dataset(ds: Any, path: str, *, sync: bool = True) -> None:
    """Write `ds` as a DICOM Part 10 file at `path` (temporary name, flush, fsync, rename).

    `sync=False` leaves the fsync to the caller (`sync_files` after a whole series: the kernel then writes the
    files back together, instead of one disk flush per slice).
    """
    import pydicom
    from pydicom.uid import UID

    ds.preamble = b"\0" * 128
    ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix=".dcm", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            if _pydicom_major() >= 3:
                pydicom.dcmwrite(handle, ds, enforce_file_format=True)
            else:  # pydicom 2.4: the encoding comes from the dataset's flags
                ds.is_little_endian, ds.is_implicit_VR = True, False
                pydicom.dcmwrite(handle, ds, write_like_original=False)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def sync_files(paths: list[str]) -> None:
    """fsync each file: a full disk or a lost mount surfaces here, before the study is renamed into place."""
    for path in paths:
        flush_to_disk(path)


def _umask() -> int:
    from ..io.case_outputs import _umask as umask

    return umask()


_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def series_folder_name(series_number: int | None, modality: str, taken: set[str]) -> str:
    """`<series number>_<modality>` (e.g. 003_CT), made unique within the study: no patient data in it."""
    base = f"{series_number:03d}" if series_number is not None and series_number >= 0 else "000"
    base += "_" + (_UNSAFE.sub("", modality or "OT")[:8] or "OT")
    name, k = base, 2
    while name.lower() in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name.lower())
    return name


def instance_file_name(index: int) -> str:
    """Slices are named by their order along the normal, 1-based: 0001.dcm, 0002.dcm ..."""
    return f"{index + 1:04d}.dcm"
