"""Applying a face mask: mask voxels get the fill value, every other voxel stays bit-identical.

The defaced image carries the input's grid but none of its meta-data (names, IDs in NRRD/MetaImage
headers): a defacing tool must not copy identifying fields into its output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DefaceError
from .settings import FILL_POLICIES  # noqa: F401  (defined once, in settings.py)

if TYPE_CHECKING:
    import SimpleITK as sitk

AIR_HU = -1024.0


def parse_fill(text: Any) -> str | float:
    """'p10' | 'air' | a finite number (HU) -> the policy; anything else is a user error."""
    if isinstance(text, (int, float)):
        number = float(text)
    else:
        value = str(text).strip().lower()
        if value in FILL_POLICIES:
            return value
        try:
            number = float(value)
        except ValueError:
            raise DefaceError(f"--fill must be p10, air or a number in HU, not '{text}'.") from None
    if not np.isfinite(number):
        # float() accepts 'nan' and 'inf'; written into the face they would corrupt it (or become 0 in
        # an integer image), so they are refused like any other non-number.
        raise DefaceError(f"--fill must be p10, air or a finite number in HU, not '{text}'.")
    return number


def fill_value(image: sitk.Image, policy: str | float) -> float:
    """The value written into the face, exactly as it will be stored in the image's pixel type.

    p10 = the image's 10th percentile (the paper's choice). An integer image stores the nearest whole
    number, so that is what is returned (and recorded in the sidecar); a value the pixel type cannot hold
    is refused rather than clipped, since the sidecar must say what was written.
    """
    import SimpleITK as sitk

    policy = parse_fill(policy)
    if policy == "air":
        value = AIR_HU
    elif policy != "p10":
        value = float(policy)
    else:
        value = float(np.percentile(sitk.GetArrayViewFromImage(image), 10))
        if not np.isfinite(value):
            raise DefaceError(
                "The image's 10th percentile is not a finite number (the image holds NaN or infinite "
                "voxels), so it cannot be the fill value; use --fill air or a number."
            )
    dtype = sitk.GetArrayViewFromImage(image).dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        value = float(np.round(value))
        if not info.min <= value <= info.max:
            raise DefaceError(
                f"The fill value {value:g} cannot be stored in this image's voxels "
                f"({image.GetPixelIDTypeAsString()}, {info.min} to {info.max}); choose another --fill."
            )
    return value


def apply_mask(image: sitk.Image, mask: sitk.Image, value: float) -> sitk.Image:
    """New image: `value` inside the mask, the input's exact voxels elsewhere, same pixel type and grid."""
    import SimpleITK as sitk

    if mask.GetSize() != image.GetSize():
        raise DefaceError(
            f"The mask ({'x'.join(map(str, mask.GetSize()))}) is not on the image's grid "
            f"({'x'.join(map(str, image.GetSize()))})."
        )
    array = sitk.GetArrayFromImage(image)  # a copy: the input image is never touched
    inside = sitk.GetArrayViewFromImage(mask) > 0
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        if not info.min <= np.round(value) <= info.max:
            raise DefaceError(
                f"The fill value {value:g} cannot be stored in this image's voxels "
                f"({info.min} to {info.max}); choose another fill."
            )
        value = float(np.round(value))
    array[inside] = array.dtype.type(value)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)  # geometry only: the input's meta-data (patient name, IDs...) is not carried over
    return out
