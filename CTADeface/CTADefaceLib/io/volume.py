"""Reading, checking, orienting and writing CT volumes: the one place that touches image files.

Engines see images in one canonical orientation (`CANONICAL`, closest axes to LPS, the
DICOM patient frame); every output goes back onto the input's exact voxel grid
(size, spacing, origin and direction identical to the input).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, OutputError
from ..hashing import file_sha256

if TYPE_CHECKING:
    import SimpleITK as sitk

#: File name endings this project reads and writes (SimpleITK picks the writer from them).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Orientation the engines work in: array axes (z, y, x) follow S, P, L as closely as the
#: image's own axes allow. Only axis permutations and flips are used: no resampling.
CANONICAL = "LPS"

#: A CT in Hounsfield units has air near -1000 and bone up to a few thousand.
_CT_MIN_LOW, _CT_MIN_HIGH = -3100.0, -500.0
_CT_MAX_LOW = 200.0

#: Plausible voxel spacing of a head CT, in mm, per axis. Scanners reconstruct from about 0.2 mm
#: (high-resolution or photon-counting) to 5 mm slices; outside 0.1-10 mm the header is almost surely
#: wrong (metres or micrometres written as mm). Such values are not harmless: 100 mm made nnU-Net's
#: resampling ask for a terabyte of memory and 0.01 mm broke the face-region planner.
MIN_SPACING_MM, MAX_SPACING_MM = 0.1, 10.0
#: Largest image accepted: 2048 voxels per axis (twice a 1024-matrix scan) and 2^30 voxels in all
#: (2 GiB as 16-bit; the model's float copies need several times that in memory).
MAX_VOXELS_PER_AXIS = 2048
MAX_TOTAL_VOXELS = 1 << 30


def _sitk() -> Any:
    import SimpleITK as sitk  # imported on first use: Slicer loads this module without it

    return sitk


def split_suffix(path: str) -> tuple[str, str]:
    """`/a/b/case.nii.gz` -> (`/a/b/case`, `.nii.gz`); unknown endings give ("path", "")."""
    lower = path.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return path[: -len(suffix)], path[-len(suffix) :]
    return path, ""


def is_image_file(path: str) -> bool:
    return os.path.isfile(path) and split_suffix(path)[1] != "" and not path.lower().endswith(".raw")


def read_image(path: str) -> sitk.Image:
    """Read one 3D image file; raise InputError with one sentence if it cannot be used."""
    sitk = _sitk()
    if not os.path.exists(path):
        raise InputError(f"The input file {path} does not exist.")
    if os.path.isdir(path):
        from .dicom import read_dicom_series  # a folder is read as one DICOM series

        return read_dicom_series(path)
    if not os.path.isfile(path):
        # A pipe or device named like an image would block ITK's open() for ever, beyond the reach of Ctrl-C.
        raise InputError(f"{path} is not a regular file (a pipe, device or socket); give an image file or a folder.")
    if split_suffix(path)[1] == "" and not path.lower().endswith(".dcm"):
        raise InputError(
            f"{path} is not a supported image file (use .nii.gz, .nii, .nrrd, .mha, .mhd or a DICOM folder)."
        )
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise InputError(f"{path} could not be read as an image ({_last_line(err)}).") from None
    if reader.GetDimension() == 3:
        # From the header, before any voxel is read: an absurd size must not be allocated first.
        check_geometry(reader.GetSize(), reader.GetSpacing(), path)
    check_complete(path)
    data_file = separate_data_file(path)
    if data_file and not os.path.isfile(data_file):
        raise InputError(f"{path} keeps its voxels in {data_file}, which does not exist; copy both files.")
    try:
        image = reader.Execute()
    except RuntimeError:
        # The header was read, so the voxel data is what failed: cut short or damaged (ITK's own reason is
        # often a misleading "No such file or directory").
        raise InputError(
            f"{path} is incomplete or damaged (its voxel data could not be read in full); "
            "copy it again from the source."
        ) from None
    check_image(image, path)
    return image


def separate_data_file(path: str) -> str | None:
    """The data file a .mhd or .nhdr header names (None for single-file formats or a LOCAL/inline header)."""
    lower = path.lower()
    if not lower.endswith((".mhd", ".nhdr")):
        return None
    key = "elementdatafile" if lower.endswith(".mhd") else "data file"
    try:
        with open(path, "rb") as handle:
            header = handle.read(65536).decode("latin-1")
    except OSError:
        return None
    for line in header.splitlines():
        name, sep, value = line.partition("=" if key == "elementdatafile" else ":")
        if sep and name.strip().lower() == key:
            value = value.strip()
            if not value or value.upper() == "LOCAL" or value.upper().startswith("LIST") or "%" in value:
                return None  # inline data, or a list/pattern of files that ITK resolves itself
            return value if os.path.isabs(value) else os.path.join(os.path.dirname(path), value)
    return None


def _last_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[-1].strip() if text else "unknown reason"


def check_complete(path: str) -> None:
    """Refuse a NIfTI file whose data is cut short, damaged, or holds NaN/infinite voxels.

    ITK's NIfTI reader fills missing voxels with zeros and turns NaN and infinite voxels into 0, all
    without a word: a truncated .nii.gz would be defaced as if the scan ended in air. So the data is
    checked here, on the file itself: its length against the header's own numbers (vox_offset, dim,
    bitpix, read by ITK), the gzip stream read to its end by the gzip module (which checks its CRC
    and length), and float voxels for finiteness. NRRD and MetaImage readers already fail on short
    data and keep NaN as NaN (`check_image` refuses it).
    """
    import zlib

    if not path.lower().endswith((".nii", ".nii.gz")):
        return
    reader = _sitk().ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()  # RuntimeError (unreadable header) is reported by the caller
    meta = {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()}
    try:
        voxels = 1
        for axis in range(1, int(meta["dim[0]"]) + 1):
            voxels *= int(meta[f"dim[{axis}]"])
        offset = int(float(meta["vox_offset"]))
        itemsize = int(meta["bitpix"]) // 8
        datatype = int(meta["datatype"])
    except (KeyError, ValueError):
        return  # not a header this check understands; the reader's own checks apply
    expected = offset + voxels * itemsize
    # NIfTI float32 (16) and float64 (64) are the types that can hold NaN or infinity.
    floating = {16: "f4", 64: "f8"}.get(datatype)
    order = _nifti_byte_order(path) if floating else ""
    available, nonfinite, carry = 0, 0, b""
    try:
        for block in _uncompressed_blocks(path):
            first, available = available, available + len(block)
            if floating is None:
                continue
            data = carry + block[max(0, offset - first) : max(0, expected - first)]
            usable = len(data) - len(data) % itemsize
            values = np.frombuffer(data[:usable], dtype=order + floating)
            nonfinite += int(np.count_nonzero(~np.isfinite(values)))
            carry = data[usable:]
    except (EOFError, OSError, zlib.error) as err:
        raise InputError(
            f"{path} is incomplete or damaged (its compressed data is cut off or corrupt: "
            f"{err}); copy it again from the source."
        ) from None
    if available < expected:
        raise InputError(
            f"{path} is incomplete: its header describes {expected} bytes of data but the file "
            f"holds {available}; copy it again from the source."
        )
    if nonfinite:
        raise InputError(
            f"{path} has {nonfinite} voxels that are not numbers (NaN or infinite); a CT holds "
            "finite values in Hounsfield units."
        )


def _uncompressed_blocks(path: str, size: int = 1 << 22) -> Iterator[bytes]:
    """The file's bytes, decompressed when it is gzip (recognised by its magic number, whatever the name)."""
    import gzip

    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if compressed else open(path, "rb") as stream:
        yield from iter(lambda: stream.read(size), b"")


def _nifti_byte_order(path: str) -> str:
    """'<' or '>': a NIfTI header starts with its own size (348 or 540) in the file's byte order."""
    head = next(_uncompressed_blocks(path, 4), b"")
    return "<" if int.from_bytes(head[:4], "little") in (348, 540) else ">"


def check_image(image: sitk.Image, name: str = "the image") -> None:
    """Refuse what is not a single-channel 3D CT in Hounsfield units on a plausible voxel grid."""
    sitk = _sitk()
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise InputError(
            f"{name} is not a 3D volume (size {'x'.join(map(str, image.GetSize()))}); defacing needs a 3D CT."
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel; a CT has one.")
    check_geometry(image.GetSize(), image.GetSpacing(), name)
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InputError(
            f"{name} has {bad} voxels that are not numbers (NaN or infinite); a CT holds finite "
            "values in Hounsfield units."
        )
    low, high = float(array.min()), float(array.max())
    if not (_CT_MIN_LOW <= low <= _CT_MIN_HIGH) or high < _CT_MAX_LOW:
        raise InputError(
            f"{name} does not look like a CT in Hounsfield units (values {low:g} to {high:g}; "
            f"expected air near -1000 and bone above {_CT_MAX_LOW:g})."
        )


def check_geometry(size: tuple[int, ...], spacing_mm: tuple[float, ...], name: str = "the image") -> None:
    """Refuse voxel spacings and sizes outside what a head CT can have (see the constants above)."""
    for axis, spacing in zip("xyz", spacing_mm):
        if not (MIN_SPACING_MM <= spacing <= MAX_SPACING_MM):
            raise InputError(
                f"{name} has a voxel spacing of {spacing:g} mm along {axis}, outside the "
                f"{MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm a head CT can have; check the file's header."
            )
    for axis, count in zip("xyz", size):
        if count > MAX_VOXELS_PER_AXIS:
            raise InputError(
                f"{name} has {count} voxels along {axis}, more than the {MAX_VOXELS_PER_AXIS} "
                "this tool accepts for a head CT."
            )
    total = int(np.prod(size, dtype=np.int64))
    if total > MAX_TOTAL_VOXELS:
        raise InputError(
            f"{name} has {total} voxels ({'x'.join(map(str, size))}), more than the "
            f"{MAX_TOTAL_VOXELS} this tool accepts for a head CT."
        )


def to_canonical(image: sitk.Image) -> sitk.Image:
    """Permute/flip axes (never resample) so that the engine sees the CANONICAL orientation."""
    sitk = _sitk()
    return sitk.DICOMOrient(image, CANONICAL)


def from_canonical(canonical: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Bring an image made on `to_canonical(reference)`'s grid back onto `reference`'s exact grid."""
    sitk = _sitk()
    orientation = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reference.GetDirection())
    back = sitk.DICOMOrient(canonical, orientation)
    if back.GetSize() != reference.GetSize():
        raise AssertionError("reorientation did not return to the input grid")  # a bug, not a user error
    # The permutation is exact; copying the geometry removes rounding in origin/direction.
    back.CopyInformation(reference)
    return back


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when two images share size, spacing, origin and direction exactly."""
    return (
        a.GetSize() == b.GetSize()
        and a.GetSpacing() == b.GetSpacing()
        and a.GetOrigin() == b.GetOrigin()
        and a.GetDirection() == b.GetDirection()
    )


#: Every temporary file or folder this package writes starts with this, then the writing process's
#: id and a dash, so a later run can tell leftovers of a dead process from another run's work in progress.
TEMP_PREFIX = ".ctadeface-tmp-"


def temp_prefix() -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-"


def without_metadata(image: sitk.Image) -> sitk.Image:
    """The image with an empty meta-data dictionary (a copy when there was anything to drop).

    Readers fill the dictionary from the input's header (NRRD fields, MetaImage tags, NIfTI descrip,
    DICOM tags), and the NRRD and MetaImage writers copy every entry into the output: a defaced file
    would carry PatientName and PatientID. Nothing in the dictionary is needed to write geometry and
    pixels (SimpleITK writes size, spacing, origin, direction and pixel type from the image itself),
    so every key goes.
    """
    keys = image.GetMetaDataKeys()
    if not keys:
        return image
    clean = _sitk().Image(image)
    # A copied sitk.Image shares its ITK image, meta-data included, until made unique: erasing
    # keys without this would strip the caller's image too.
    clean.MakeUnique()
    for key in keys:
        clean.EraseMetaData(key)
    return clean


def write_image_atomic(
    image: sitk.Image, path: str, *, overwrite: bool = False, protect: tuple[str, ...] = (), shown: str | None = None
) -> str:
    """Write, verify, then rename into place, so a final name only ever holds a complete, checked file.

    The file (or the header + data pair of .mhd/.nhdr) is written into a private temporary folder
    beside the target (same file system, so the rename is atomic), flushed to disk, read back and
    compared with `image`, and only then renamed. Any failure leaves nothing under a final name and
    raises OutputError; the outputs carry no meta-data from the input (see `without_metadata`).
    `protect` lists input paths that must never be replaced, whatever `overwrite` says. `shown` is the name
    messages give (a caller that stages a whole case passes the final name, not its staging path).
    """
    sitk = _sitk()
    shown = shown or path
    if not split_suffix(path)[1]:
        raise OutputError(f"{shown} has no image file ending (use .nii.gz, .nii, .nrrd or .mha).")
    target = os.path.abspath(path)
    _refuse_existing(path, target, overwrite, protect)
    folder = os.path.dirname(target) or "."
    _refuse_long_name(shown, target)
    image = without_metadata(image)
    staging = None
    names: list[str] = []
    moved: list[str] = []
    try:
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=temp_prefix(), dir=folder)
        # Files made by the writer inside the private (0700) folder get the user's normal mode (0666 & ~umask).
        staged = os.path.join(staging, os.path.basename(target))
        sitk.WriteImage(image, staged, useCompression=True)
        names = sorted(os.listdir(staging), key=lambda n: n == os.path.basename(target))  # header last
        for name in names:
            flush_to_disk(os.path.join(staging, name))
        _verify_written(image, staged)
        finals = [os.path.join(folder, name) for name in names]
        for final in finals[:-1]:  # a pair's data file: its name must be free (or replaceable) too
            _refuse_existing(final, final, overwrite, protect)
        for name, final in zip(names, finals):
            os.replace(os.path.join(staging, name), final)
            moved.append(final)
    except BaseException as err:
        if 0 < len(moved) < len(names):
            for final in moved:  # half a pair under final names: take it back
                _remove_quietly(final)
        if isinstance(err, (OSError, RuntimeError, _WriteCheckFailed)):
            reason = err.strerror if isinstance(err, OSError) and err.strerror else _last_line(err)
            if not isinstance(err, OSError) and _disk_nearly_full(folder):
                # ITK's writers report a full disk only on the console; the short file is what we see.
                reason = os.strerror(errno.ENOSPC)
            raise OutputError(
                f"{shown} could not be written ({reason}): the disk is full or the write failed."
            ) from None
        raise
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    return target


class _WriteCheckFailed(Exception):
    """The file read back differs from the image that was written."""


def _refuse_existing(shown: str, target: str, overwrite: bool, protect: tuple[str, ...]) -> None:
    if any(os.path.exists(p) and os.path.exists(target) and os.path.samefile(target, p) for p in protect):
        raise OutputError(f"Refusing to write {shown}: it is an input file.")
    if os.path.exists(target) and not overwrite:
        raise OutputError(f"{shown} already exists; pass --overwrite to replace it.")


def flush_to_disk(path: str) -> None:
    """fsync: a full disk can surface only here (delayed allocation), not while writing."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse_long_name(shown: str, target: str) -> None:
    """A name longer than the file system allows fails deep inside ITK with a misleading reason: say it first."""
    folder = os.path.dirname(target) or "."
    try:
        limit = os.pathconf(folder if os.path.isdir(folder) else os.path.dirname(folder) or ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    length = len(os.path.basename(target).encode("utf-8"))
    if length > limit:
        raise OutputError(
            f"{shown} cannot be written: its file name has {length} bytes and this file system allows "
            f"{limit}; shorten the input's file name."
        )


def _disk_nearly_full(folder: str) -> bool:
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _verify_written(expected: sitk.Image, path: str) -> None:
    """Read the written file back: same size, pixel type, geometry and voxels, and data complete.

    Writers can fail without an error (ITK's NIfTI writer only prints "wrote only 0 of N bytes"
    on a full disk), so the file itself is the only proof. Geometry is compared to the precision the
    formats store (NIfTI keeps spacing and origin as 32-bit floats); voxels must be identical.
    """
    sitk = _sitk()
    try:
        check_complete(path)
        back = sitk.ReadImage(path)
    except (RuntimeError, InputError):
        raise _WriteCheckFailed("the file read back is incomplete") from None
    problems = []
    if back.GetSize() != expected.GetSize():
        problems.append(f"size {back.GetSize()} instead of {expected.GetSize()}")
    elif back.GetPixelID() != expected.GetPixelID():
        problems.append(f"pixel type {back.GetPixelIDTypeAsString()} instead of {expected.GetPixelIDTypeAsString()}")
    else:
        if not np.allclose(back.GetSpacing(), expected.GetSpacing(), rtol=1e-5, atol=1e-6):
            problems.append("spacing differs")
        if not np.allclose(back.GetOrigin(), expected.GetOrigin(), rtol=1e-5, atol=1e-3):
            problems.append("origin differs")
        if not np.allclose(back.GetDirection(), expected.GetDirection(), atol=1e-5):
            problems.append("direction differs")
        a, b = sitk.GetArrayViewFromImage(expected), sitk.GetArrayViewFromImage(back)
        floating = np.issubdtype(a.dtype, np.floating)
        if not np.array_equal(a, b, equal_nan=floating):
            problems.append("voxels differ")
    if problems:
        raise _WriteCheckFailed("the file read back is wrong: " + ", ".join(problems))


def input_digest(path: str) -> str | None:
    """sha256 identifying an input: the file's own; for a DICOM folder, one over the series used.

    For a folder: sha256 of the lines "<relative file name> <file sha256>" of the chosen series'
    files, sorted by name, so the same slices give the same digest wherever the folder lies.
    """
    if os.path.isfile(path):
        return file_sha256(path)
    if not os.path.isdir(path):
        return None
    from .dicom import chosen_series

    _, files, _ = chosen_series(path)
    lines = sorted(f"{os.path.relpath(f, path)} {file_sha256(f)}" for f in files)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
