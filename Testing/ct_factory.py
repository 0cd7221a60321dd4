"""Small synthetic CT volumes for unit tests that do not need anatomy (the phantom module makes heads)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

# Direction matrices (row-major 3x3) that stored images use in practice, plus an oblique one.
LPS = (1, 0, 0, 0, 1, 0, 0, 0, 1)
RAS = (-1, 0, 0, 0, -1, 0, 0, 0, 1)
# Axes permuted (sagittal-like storage) and slightly rotated: exercises the general case.
_c, _s = np.cos(np.radians(10)), np.sin(np.radians(10))
OBLIQUE = tuple(float(v) for v in np.array([[0, _c, -_s], [0, _s, _c], [1, 0, 0]]).T.ravel())


def make_ct(size=(40, 36, 30), spacing=(0.8, 0.9, 1.5), origin=(-12.5, 30.25, -40.0), direction=LPS,
            pixel=sitk.sitkInt16, seed=0):
    """A CT-like block: air around a soft-tissue ellipsoid with a bone shell; values in HU."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    z, y, x = np.meshgrid(np.linspace(-1, 1, nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    array = np.full((nz, ny, nx), -1000.0)
    array[r < 0.8] = 40
    array[(r > 0.65) & (r < 0.75)] = 1200
    array += rng.normal(0, 5, array.shape)
    dtype = sitk.GetArrayFromImage(sitk.Image(1, 1, 1, pixel)).dtype
    image = sitk.GetImageFromArray(array.astype(dtype))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def anterior_box_mask(image, depth=0.3):
    """A mask over the front (anterior, -y in LPS) part of the block, on the image's own grid."""
    from CTADefaceLib.io.volume import from_canonical, to_canonical

    canonical = to_canonical(image)
    array = np.zeros(sitk.GetArrayViewFromImage(canonical).shape, np.uint8)
    ny = array.shape[1]
    array[array.shape[0] // 4: -array.shape[0] // 4, : int(ny * depth), :] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(canonical)
    return from_canonical(mask, image)
