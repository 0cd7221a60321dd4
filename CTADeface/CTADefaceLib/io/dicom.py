"""DICOM series in: a folder holding one CT series is read with SimpleITK's GDCM reader, and checked.

GDCM skips files it cannot parse and ITK stacks whatever slices remain, averaging their spacing:
a series with one unreadable slice would come out one slice short with a wrong slice spacing.
So the slices are checked here: no unreadable DICOM file beside them, one orientation, positions
on a regular grid along the slice normal.

(Defaced, de-identified DICOM output for whole studies is CTADefaceLib/dicom/; it reuses
`check_slice_positions` from here.)
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

#: Slice positions may differ from a regular grid by this much (mm, or this fraction of the slice
#: spacing if larger): scanners write positions rounded to about 0.01 mm, while a missing slice
#: makes one gap twice as wide as the others.
POSITION_TOLERANCE_MM = 0.02
POSITION_TOLERANCE_FRACTION = 0.01

_POSITION, _ORIENTATION = "0020|0032", "0020|0037"


def looks_like_dicom_folder(folder: str) -> bool:
    import SimpleITK as sitk

    try:
        return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder))
    except RuntimeError:
        return False


def chosen_series(folder: str) -> tuple[str, list[str], int]:
    """(series instance UID, its files in slice order, number of series in the folder): the largest series.

    Asked for several times per case (reading, the sidecar's digest and series UID): GDCM scans the folder
    once per process and folder state, and the warning about ignored series is given once.
    """
    try:
        stamp = os.stat(folder).st_mtime_ns
    except OSError:
        stamp = None
    uid, files, count = _scan_series(os.path.abspath(folder), stamp)
    if count > 1 and (folder, stamp) not in _WARNED:
        _WARNED.add((folder, stamp))
        log.warning(
            "%s holds %d DICOM series; using %s (%d files) and ignoring the other %d.",
            folder,
            count,
            uid,
            len(files),
            count - 1,
        )
    return uid, list(files), count


_WARNED: set = set()


@functools.lru_cache(maxsize=16)
def _scan_series(folder: str, stamp) -> tuple[str, tuple[str, ...], int]:
    import SimpleITK as sitk

    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) if os.path.isdir(folder) else ()
    if not series:
        raise InputError(f"The folder {folder} holds no image files and no DICOM series.")
    files = {uid: tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in series}
    uid = max(series, key=lambda s: len(files[s]))
    return uid, files[uid], len(series)


def read_dicom_series(folder: str):
    """The largest series in `folder` as one 3D image (HU: GDCM applies rescale slope/intercept)."""
    import SimpleITK as sitk

    from .volume import check_image

    uid, files, _ = chosen_series(folder)
    if len(files) < 2:
        raise InputError(f"The DICOM series in {folder} has a single slice; defacing needs a 3D CT.")
    _refuse_unreadable_files(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()  # per-slice tags, to check the slice positions
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputError(
            f"The DICOM series in {folder} could not be read ({str(err).strip().splitlines()[-1]})."
        ) from None
    _check_slice_positions(folder, reader, len(files))
    check_image(image, folder)
    return image


def _refuse_unreadable_files(folder: str) -> None:
    """A file with the DICOM signature that GDCM put in no series is a slice that could not be read."""
    import SimpleITK as sitk

    listed: set[str] = set()
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder):
        listed.update(os.path.normpath(f) for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
    unreadable = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or name.upper() == "DICOMDIR" or not os.path.isfile(path):
            continue
        if os.path.normpath(path) not in listed and _has_dicom_signature(path):
            unreadable.append(name)
    if unreadable:
        raise InputError(
            f"{len(unreadable)} DICOM file(s) in {folder} could not be read (first: {unreadable[0]}), "
            "so the series may be missing slices; copy the series again from the source."
        )


def _has_dicom_signature(path: str) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble."""
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _check_slice_positions(folder: str, reader, count: int) -> None:
    """Refuse slices with no position, mixed orientations, duplicates, gaps or irregular spacing."""
    try:
        orientations = [np.array(reader.GetMetaData(i, _ORIENTATION).split("\\"), float) for i in range(count)]
        positions = np.array([reader.GetMetaData(i, _POSITION).split("\\") for i in range(count)], float)
    except (RuntimeError, ValueError):
        raise InputError(
            f"The DICOM series in {folder} lacks slice positions or orientations "
            "(ImagePositionPatient, ImageOrientationPatient), so its geometry is unknown."
        ) from None
    check_slice_positions(f"The DICOM series in {folder}", positions, orientations)


def check_slice_positions(what: str, positions, orientations) -> float:
    """Refuse mixed orientations, duplicates, gaps or irregular spacing; returns the slice spacing (mm).

    `what` starts the sentence ("The DICOM series in <folder>"); `positions` (n, 3) and `orientations`
    (n x 6 values) are the slices' ImagePositionPatient and ImageOrientationPatient.
    """
    positions = np.asarray(positions, float)
    count = len(orientations)
    if positions.shape != (count, 3) or any(np.shape(o) != (6,) for o in orientations):
        raise InputError(f"{what} has malformed slice positions or orientations.")
    if any(not np.allclose(o, orientations[0], atol=1e-4) for o in orientations):
        raise InputError(f"The slices of {what[:1].lower() + what[1:]} do not all have the same orientation.")
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    steps = np.diff(np.sort(positions @ normal))
    spacing = float(np.median(steps))
    if steps.min() < POSITION_TOLERANCE_MM:
        raise InputError(f"{what} has two slices at the same position; it may mix two acquisitions.")
    tolerance = max(POSITION_TOLERANCE_MM, POSITION_TOLERANCE_FRACTION * spacing)
    if np.abs(steps - spacing).max() > tolerance:
        raise InputError(
            f"{what} has irregular slice positions (steps from {steps.min():.3g} "
            f"to {steps.max():.3g} mm), so a slice is missing or the spacing varies; "
            "copy the complete series again."
        )
    return spacing
