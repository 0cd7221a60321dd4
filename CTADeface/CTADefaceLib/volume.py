"""Reading, checking, orienting and writing CT volumes: the one place that touches image files.

Engines see images in one canonical orientation (`CANONICAL`, closest axes to LPS, the
DICOM patient frame); every output goes back onto the input's exact voxel grid
(size, spacing, origin and direction identical to the input).
"""

from __future__ import annotations

import os
import tempfile

from .errors import InputError, OutputError

#: File name endings this project reads and writes (SimpleITK picks the writer from them).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Orientation the engines work in: array axes (z, y, x) follow S, P, L as closely as the
#: image's own axes allow. Only axis permutations and flips are used: no resampling.
CANONICAL = "LPS"

#: A CT in Hounsfield units has air near -1000 and bone up to a few thousand.
_CT_MIN_LOW, _CT_MIN_HIGH = -3100.0, -500.0
_CT_MAX_LOW = 200.0


def _sitk():
    import SimpleITK as sitk  # imported on first use: Slicer loads this module without it

    return sitk


def split_suffix(path: str) -> tuple[str, str]:
    """`/a/b/case.nii.gz` -> (`/a/b/case`, `.nii.gz`); unknown endings give ("path", "")."""
    lower = path.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return path[: -len(suffix)], path[-len(suffix):]
    return path, ""


def is_image_file(path: str) -> bool:
    return os.path.isfile(path) and split_suffix(path)[1] != "" and not path.lower().endswith(".raw")


def read_image(path: str):
    """Read one 3D image file; raise InputError with one sentence if it cannot be used."""
    sitk = _sitk()
    if not os.path.exists(path):
        raise InputError(f"The input file {path} does not exist.")
    if os.path.isdir(path):
        from .dicom import read_dicom_series  # a folder is read as one DICOM series

        return read_dicom_series(path)
    if split_suffix(path)[1] == "" and not path.lower().endswith(".dcm"):
        raise InputError(
            f"{path} is not a supported image file (use .nii.gz, .nii, .nrrd, .mha, .mhd or a DICOM folder)."
        )
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown reason"
        raise InputError(f"{path} could not be read as an image ({first.strip()}).") from None
    check_image(image, path)
    return image


def check_image(image, name: str = "the image") -> None:
    """Refuse what is not a single-channel 3D CT in Hounsfield units."""
    sitk = _sitk()
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise InputError(
            f"{name} is not a 3D volume (size {'x'.join(map(str, image.GetSize()))}); defacing needs a 3D CT."
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name} has {image.GetNumberOfComponentsPerPixel()} components per voxel; a CT has one.")
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    low, high = stats.GetMinimum(), stats.GetMaximum()
    if not (_CT_MIN_LOW <= low <= _CT_MIN_HIGH) or high < _CT_MAX_LOW:
        raise InputError(
            f"{name} does not look like a CT in Hounsfield units (values {low:g} to {high:g}; "
            f"expected air near -1000 and bone above {_CT_MAX_LOW:g})."
        )


def to_canonical(image):
    """Permute/flip axes (never resample) so that the engine sees the CANONICAL orientation."""
    sitk = _sitk()
    return sitk.DICOMOrient(image, CANONICAL)


def from_canonical(canonical, reference):
    """Bring an image made on `to_canonical(reference)`'s grid back onto `reference`'s exact grid."""
    sitk = _sitk()
    orientation = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reference.GetDirection())
    back = sitk.DICOMOrient(canonical, orientation)
    if back.GetSize() != reference.GetSize():
        raise AssertionError("reorientation did not return to the input grid")  # a bug, not a user error
    # The permutation is exact; copying the geometry removes rounding in origin/direction.
    back.CopyInformation(reference)
    return back


def same_grid(a, b) -> bool:
    """True when two images share size, spacing, origin and direction exactly."""
    return (
        a.GetSize() == b.GetSize()
        and a.GetSpacing() == b.GetSpacing()
        and a.GetOrigin() == b.GetOrigin()
        and a.GetDirection() == b.GetDirection()
    )


def write_image_atomic(image, path: str, *, overwrite: bool = False, protect: tuple[str, ...] = ()) -> str:
    """Write next to the target and rename, so a reader never sees half a file.

    `protect` lists input paths that must never be replaced, whatever `overwrite` says.
    """
    sitk = _sitk()
    base, suffix = split_suffix(path)
    if not suffix:
        raise OutputError(f"{path} has no image file ending (use .nii.gz, .nii, .nrrd or .mha).")
    target = os.path.abspath(path)
    if any(os.path.exists(p) and os.path.samefile(target, p) for p in protect if os.path.exists(target)):
        raise OutputError(f"Refusing to write {path}: it is an input file.")
    if os.path.exists(target) and not overwrite:
        raise OutputError(f"{path} already exists; pass --overwrite to replace it.")
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    if suffix in (".mhd", ".nhdr"):
        # Header + data pairs cannot be renamed as one file; write them directly.
        sitk.WriteImage(image, target, useCompression=True)
        return target
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp, useCompression=True)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return target
