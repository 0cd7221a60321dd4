"""DICOM series in: a folder holding one CT series is read with SimpleITK's GDCM reader.

(Writing defaced DICOM with de-identification tags is a separate step; see the Slicer module
and the evaluation issue.)
"""

from __future__ import annotations

import os

from .errors import InputError


def looks_like_dicom_folder(folder: str) -> bool:
    import SimpleITK as sitk

    try:
        return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder))
    except RuntimeError:
        return False


def read_dicom_series(folder: str):
    """The largest series in `folder` as one 3D image (HU: GDCM applies rescale slope/intercept)."""
    import SimpleITK as sitk

    from .volume import check_image

    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) if os.path.isdir(folder) else ()
    if not series:
        raise InputError(f"The folder {folder} holds no image files and no DICOM series.")
    files = max((sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, s) for s in series), key=len)
    if len(files) < 2:
        raise InputError(f"The DICOM series in {folder} has a single slice; defacing needs a 3D CT.")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputError(f"The DICOM series in {folder} could not be read ({str(err).strip().splitlines()[-1]}).") from None
    check_image(image, folder)
    return image
