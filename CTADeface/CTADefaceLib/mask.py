"""Face-mask post-processing: keep the face label, optional clean-up and safety margin.

All operations keep the mask on its image's exact grid; the margin is in millimetres so it
means the same on 0.45 mm and 1 mm scans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DefaceError, EmptyMaskError

if TYPE_CHECKING:
    import SimpleITK as sitk

FACE_LABEL = 1


def binary_face(mask: sitk.Image, label: int | str = FACE_LABEL) -> sitk.Image:
    """UInt8 0/1 image of one label of a label map (nnU-Net output, edited segmentation...)."""
    import SimpleITK as sitk

    out = sitk.Cast(sitk.Equal(mask, label), sitk.sitkUInt8) if label != "any" else sitk.Cast(mask > 0, sitk.sitkUInt8)
    out.CopyInformation(mask)
    return out


#: The largest growth of the face mask that still means "a margin around the face".
MAX_MARGIN_MM = 50.0


def check_margin(margin_mm: Any) -> float:
    """A safety margin is a distance to grow the mask by: a finite number of mm, zero or more."""
    try:
        value = float(margin_mm)
    except (TypeError, ValueError):
        raise DefaceError(f"--margin-mm must be a number of millimetres, not '{margin_mm}'.") from None
    if not np.isfinite(value) or value < 0:
        # A negative margin would shrink nothing (it used to be ignored): refuse it rather than pretend.
        raise DefaceError(f"--margin-mm must be zero or a positive number of millimetres, not {margin_mm}.")
    if value > MAX_MARGIN_MM:
        # A margin is a few millimetres of safety around the face; far beyond that it swallows the skull and
        # the brain, and the "defaced" image would be mostly fill.
        raise DefaceError(f"--margin-mm {margin_mm} is more than a face margin can be (at most {MAX_MARGIN_MM:g} mm).")
    return value


def _largest(binary: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a boolean array (the array itself when it has fewer than two)."""
    from scipy import ndimage

    labels, count = ndimage.label(binary)
    if count <= 1:
        return binary
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


largest_component = _largest  # public name; postprocess's keyword argument of the same name shadows it inside

#: HU above which a CT voxel counts as body (skin, fat, muscle, bone; not air). One value for every module that
#: looks for the patient: the box engine, DICOM coverage, and the evaluation's pose, views and rendering.
BODY_HU = -300.0


def largest_body(array: np.ndarray) -> np.ndarray:
    """The patient in a CT array: the largest 6-connected component above BODY_HU (the table, tubes and noise go)."""
    return _largest(np.asarray(array) > BODY_HU)


def postprocess(
    mask: sitk.Image, *, largest_component: bool = False, fill_holes: bool = False, margin_mm: float = 0.0
) -> sitk.Image:
    """Clean a binary face mask; each step is off unless asked for, so the model's mask is kept as is."""
    import SimpleITK as sitk
    from scipy import ndimage

    margin_mm = check_margin(margin_mm)

    array = sitk.GetArrayViewFromImage(mask) > 0
    if largest_component and array.any():
        array = _largest(array)
    if fill_holes and array.any():
        array = ndimage.binary_fill_holes(array)
    if margin_mm > 0 and array.any():
        # Grow by a physical distance: Euclidean distance to the mask in mm, anisotropic voxels included.
        spacing_zyx = tuple(reversed(mask.GetSpacing()))
        distance = ndimage.distance_transform_edt(~array, sampling=spacing_zyx)
        array = distance <= margin_mm
    out = sitk.GetImageFromArray(array.astype(np.uint8))
    out.CopyInformation(mask)
    return out


def _mask_array(mask: sitk.Image | np.ndarray) -> np.ndarray:
    """The voxels of a SimpleITK image (a view, no copy) or of a numpy array in (z, y, x) order."""
    if hasattr(mask, "GetSize"):
        import SimpleITK as sitk

        return sitk.GetArrayViewFromImage(mask)
    return np.asarray(mask)


def mask_voxels(mask: sitk.Image | np.ndarray) -> int:
    """How many voxels of a mask (SimpleITK image or numpy array) are set."""
    return int(np.count_nonzero(_mask_array(mask)))


def mask_volume_ml(mask: sitk.Image | np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Volume of the mask in millilitres (cm^3). `mask` is a SimpleITK image or a numpy array in (z, y, x) order;
    `spacing` is (x, y, z) in mm like SimpleITK's GetSpacing(), taken from the image when not given (1 mm for an
    array)."""
    if spacing is None:
        spacing = mask.GetSpacing() if hasattr(mask, "GetSpacing") else (1.0, 1.0, 1.0)
    sx, sy, sz = (float(s) for s in spacing)
    return mask_voxels(mask) * sx * sy * sz / 1000.0


def require_face(mask: sitk.Image, name: str = "the image", min_ml: float = 0.0) -> None:
    """An empty (or implausibly small) mask would silently 'deface' nothing: stop instead."""
    import SimpleITK as sitk

    if not np.any(sitk.GetArrayViewFromImage(mask)):
        raise EmptyMaskError(
            f"No face was found in {name}: the mask is empty, so nothing was removed "
            "(check that the scan covers the face, or use another engine)."
        )
    volume = mask_volume_ml(mask)
    if volume < min_ml:
        raise EmptyMaskError(
            f"No face was found in {name}: the mask is only {volume:.1f} ml (an adult face mask is about "
            f"150-450 ml; the minimum is {min_ml:g} ml), so nothing was written; check that the scan covers "
            "the face, or lower --min-face-ml if it covers only part of it."
        )
