"""A small synthetic head CT for the evaluation tests (before CTADefaceLib.synthetic.phantom exists).

Built directly in the canonical LPS orientation: array axes (z, y, x) = (S, P, L), so index z
grows superiorly, y posteriorly, x to the patient's left. An ellipsoid head with a skull shell,
brain, two arteries, and a face-like anterior surface (nose, eye recesses, brows, mouth groove,
chin). Returns an object with the phantom API's fields: .image, .face, .intracranial, .arteries.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

AIR, FAT, SOFT, BRAIN, BONE, ARTERY = -1000.0, -90.0, 45.0, 35.0, 1100.0, 350.0


def _ellipsoid(x, y, z, centre, radii):
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2 <= 1.0


def make_synthetic_head(spacing=2.0, seed: int = 0, shift_mm=(0.0, 0.0, 0.0)):
    """SimpleNamespace(image, face, intracranial, arteries): SimpleITK images on one LPS grid.

    `seed` varies the face a little (nose size, eye spacing) so cases differ; `shift_mm` moves the head.
    """
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    shape = (int(240 / spacing), int(240 / spacing), int(180 / spacing))  # z, y, x
    z, y, x = np.meshgrid(*(np.arange(n) * spacing for n in shape), indexing="ij")
    cx, cy, cz = 90.0 + shift_mm[0], 120.0 + shift_mm[1], 130.0 + shift_mm[2]
    x, y, z = x - cx, y - cy, z - cz  # mm from the head's centre; anterior = negative y

    head = _ellipsoid(x, y, z, (0, 0, 0), (72, 95, 100)) | (
        (x ** 2 / 45 ** 2 + (y - 10) ** 2 / 50 ** 2 <= 1) & (z < -60))  # neck
    skull_out = _ellipsoid(x, y, z, (0, 3, 5), (64, 82, 92))
    skull_in = _ellipsoid(x, y, z, (0, 5, 10), (57, 74, 82))
    nose_scale = 1.0 + 0.15 * rng.standard_normal()
    eye_dx = 31 + 2 * rng.standard_normal()
    nose = _ellipsoid(x, y, z, (0, -92, -12), (11 * nose_scale, 16 * nose_scale, 26)) & (y > -92 - 17 * nose_scale)
    nostril_tip = _ellipsoid(x, y, z, (0, -100 * nose_scale ** 0.2, -30), (14, 9, 8))
    brows = _ellipsoid(x, y, z, (-eye_dx, -86, 26), (18, 8, 5)) | _ellipsoid(x, y, z, (eye_dx, -86, 26), (18, 8, 5))
    chin = _ellipsoid(x, y, z, (0, -78, -72), (24, 14, 16))
    lips = _ellipsoid(x, y, z, (0, -90, -50), (22, 8, 9))
    eyes = _ellipsoid(x, y, z, (-eye_dx, -94, 12), (15, 14, 10)) | _ellipsoid(x, y, z, (eye_dx, -94, 12), (15, 14, 10))
    mouth = _ellipsoid(x, y, z, (0, -96, -50), (20, 8, 2.5))
    eyeballs = _ellipsoid(x, y, z, (-eye_dx, -74, 12), (11, 11, 11)) | _ellipsoid(x, y, z, (eye_dx, -74, 12), (11, 11, 11))

    body = (head | nose | nostril_tip | brows | chin | lips) & ~eyes & ~mouth
    array = np.full(shape, AIR, dtype=np.float32)
    array[body] = SOFT
    array[body & ~_ellipsoid(x, y, z, (0, 0, 0), (69, 92, 97))] = FAT + 60  # thin subcutaneous layer
    array[skull_out & ~skull_in] = BONE
    array[skull_in] = BRAIN
    array[eyeballs] = 10.0
    arteries = ((x - 18) ** 2 + (y + 5) ** 2 <= 3.0 ** 2) | ((x + 18) ** 2 + (y + 5) ** 2 <= 3.0 ** 2)
    arteries &= (z < 40) & (head | skull_in)
    array[arteries] = ARTERY
    noise = rng.normal(0, 8, shape).astype(np.float32)
    array += noise * body

    # Ground-truth face: soft tissue in front of the skull from brow to chin (what a defacer should remove).
    face = body & ~skull_out & ~eyeballs & (y < -55) & (z > -95) & (z < 40) & ~arteries

    def image_of(values, pixel):
        img = sitk.GetImageFromArray(values.astype(pixel))
        img.SetSpacing((spacing,) * 3)
        img.SetOrigin((-90.0, -120.0, -130.0))
        return img

    return SimpleNamespace(
        image=image_of(array, np.int16),
        face=image_of(face, np.uint8),
        intracranial=image_of(skull_in, np.uint8),
        arteries=image_of(arteries, np.uint8),
    )


def as_ras_stored(image):
    """The same scan stored with RAS axes (x and y arrays flipped, direction diag(-1, -1, 1))."""
    import SimpleITK as sitk

    return sitk.DICOMOrient(image, "RAS")
