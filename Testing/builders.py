"""The synthetic images the tests build, in one place: CT blocks on any grid, masks on them, a stand-in face
engine, non-CT inputs, and a small head with a face (the core's synthetic/phantom module makes the realistic ones).

All images are SimpleITK images; arrays are (z, y, x) as SimpleITK gives them, sizes and spacings (x, y, z).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk

# Direction matrices (row-major 3x3) that stored images use in practice, plus an oblique one.
LPS = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
RAS = (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)  # stored RAS (e.g. from a NIfTI), seen from ITK
# Axes permuted (sagittal-like storage) and slightly rotated: exercises the general case.
_c, _s = np.cos(np.radians(10)), np.sin(np.radians(10))
OBLIQUE = tuple(float(v) for v in np.array([[0, _c, -_s], [0, _s, _c], [1, 0, 0]]).T.ravel())


def image_from_array(array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=LPS):
    """A SimpleITK image holding `array` (z, y, x) on the given grid."""
    image = sitk.GetImageFromArray(np.asarray(array))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(direction)
    return image


# ------------------------------------------------------------------------------------ CT blocks
def make_ct(
    size=(40, 36, 30),
    spacing=(0.8, 0.9, 1.5),
    origin=(-12.5, 30.25, -40.0),
    direction=LPS,
    pixel=sitk.sitkInt16,
    seed=0,
    body="ellipsoid",
):
    """A CT-like block in HU on any grid.

    body="ellipsoid": air around a soft-tissue (40 HU) ellipsoid with a bone (1200 HU) shell, Gaussian noise.
    body="box": air around a soft-tissue (40 +- 5 HU) box with a bone (1000 HU) core, at least 13 x 20 x 12 voxels.
    """
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    if body == "ellipsoid":
        z, y, x = np.meshgrid(np.linspace(-1, 1, nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
        r = np.sqrt(x**2 + y**2 + z**2)
        array = np.full((nz, ny, nx), -1000.0)
        array[r < 0.8] = 40
        array[(r > 0.65) & (r < 0.75)] = 1200
        array += rng.normal(0, 5, array.shape)
    elif body == "box":
        array = np.full((nz, ny, nx), -1000, np.int16)
        array[2:-2, 3:-3, 3:-3] = 40 + rng.integers(-5, 6, size=(nz - 4, ny - 6, nx - 6))
        array[4:-4, 7:-7, 6:-6] = 1000
    else:
        raise ValueError(f"body must be 'ellipsoid' or 'box', not {body!r}")
    dtype = sitk.GetArrayFromImage(sitk.Image(1, 1, 1, pixel)).dtype
    return image_from_array(array.astype(dtype), spacing, origin, direction)


def box_ct(direction=LPS, seed=0):
    """The small box CT of the Slicer tests: 16 x 20 x 12 voxels, odd spacing and origin."""
    return make_ct(
        size=(16, 20, 12),
        spacing=(0.45, 0.55, 1.25),
        origin=(-12.5, 30.25, -101.0),
        direction=direction,
        seed=seed,
        body="box",
    )


def flat_image(side=40):
    """One slice of air: a 2D image stored as a volume, which the reader must refuse."""
    return image_from_array(np.full((1, side, side), -1000, np.int16))


def mri_like(high=900.0, seed=0):
    """20^3 float voxels uniform in [0, high): no air, no bone, nothing like a CT."""
    return image_from_array(np.random.default_rng(seed).uniform(0, high, (20, 20, 20)).astype(np.float32))


# ------------------------------------------------------------------------------------ masks and a stand-in engine
def anterior_box_mask(image, depth=0.3):
    """A mask over the front (anterior, -y in LPS) part of the block, on the image's own grid."""
    from CTADefaceLib.io.volume import from_canonical, to_canonical

    canonical = to_canonical(image)
    array = np.zeros(sitk.GetArrayViewFromImage(canonical).shape, np.uint8)
    ny = array.shape[1]
    array[array.shape[0] // 4 : -array.shape[0] // 4, : int(ny * depth), :] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(canonical)
    return from_canonical(mask, image)


def face_mask_for(image):
    """Soft tissue in the anterior (low y index) part: what a face model would mark."""
    array = sitk.GetArrayFromImage(image)
    mask = np.zeros(array.shape, np.uint8)
    mask[:, :6, :] = (array[:, :6, :] > -500) & (array[:, :6, :] < 500)
    out = sitk.GetImageFromArray(mask)
    out.CopyInformation(image)
    return out


def engine_mask_for(image):
    """What StandInFaceEngine gives back on `image`'s grid (engines see the canonical LPS orientation)."""
    from CTADefaceLib.io.volume import from_canonical, to_canonical

    return from_canonical(face_mask_for(to_canonical(image)), image)


class StandInFaceEngine:
    """TEST STAND-IN for a real engine (nnU-Net / box): marks anterior soft tissue, on the input grid."""

    name = "stand-in"

    def predict(self, image):
        return face_mask_for(image)

    def describe(self):
        return {"engine": self.name, "model": None, "model_sha256": None, "device": "cpu"}


# ------------------------------------------------------------------------------------ a small head with a face
AIR, FAT, SOFT, BRAIN, BONE, ARTERY = -1000.0, -90.0, 45.0, 35.0, 1100.0, 350.0


def _ellipsoid(x, y, z, centre, radii):
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + (
        (z - centre[2]) / radii[2]
    ) ** 2 <= 1.0


def make_synthetic_head(spacing=2.0, seed: int = 0, shift_mm=(0.0, 0.0, 0.0)):
    """SimpleNamespace(image, face, intracranial, arteries): SimpleITK images on one LPS grid, for the evaluation.

    Built directly in the canonical LPS orientation: array axes (z, y, x) = (S, P, L). An ellipsoid head with a
    skull shell, brain, two arteries, and a face-like anterior surface (nose, eye recesses, brows, mouth groove,
    chin). `seed` varies the face a little (nose size, eye spacing) so cases differ; `shift_mm` moves the head.
    """
    rng = np.random.default_rng(seed)
    shape = (int(240 / spacing), int(240 / spacing), int(180 / spacing))  # z, y, x
    z, y, x = np.meshgrid(*(np.arange(n) * spacing for n in shape), indexing="ij")
    cx, cy, cz = 90.0 + shift_mm[0], 120.0 + shift_mm[1], 130.0 + shift_mm[2]
    x, y, z = x - cx, y - cy, z - cz  # mm from the head's centre; anterior = negative y

    head = _ellipsoid(x, y, z, (0, 0, 0), (72, 95, 100)) | (
        (x**2 / 45**2 + (y - 10) ** 2 / 50**2 <= 1) & (z < -60)
    )  # neck
    skull_out = _ellipsoid(x, y, z, (0, 3, 5), (64, 82, 92))
    skull_in = _ellipsoid(x, y, z, (0, 5, 10), (57, 74, 82))
    nose_scale = 1.0 + 0.15 * rng.standard_normal()
    eye_dx = 31 + 2 * rng.standard_normal()
    nose = _ellipsoid(x, y, z, (0, -92, -12), (11 * nose_scale, 16 * nose_scale, 26)) & (y > -92 - 17 * nose_scale)
    nostril_tip = _ellipsoid(x, y, z, (0, -100 * nose_scale**0.2, -30), (14, 9, 8))
    brows = _ellipsoid(x, y, z, (-eye_dx, -86, 26), (18, 8, 5)) | _ellipsoid(x, y, z, (eye_dx, -86, 26), (18, 8, 5))
    chin = _ellipsoid(x, y, z, (0, -78, -72), (24, 14, 16))
    lips = _ellipsoid(x, y, z, (0, -90, -50), (22, 8, 9))
    eyes = _ellipsoid(x, y, z, (-eye_dx, -94, 12), (15, 14, 10)) | _ellipsoid(x, y, z, (eye_dx, -94, 12), (15, 14, 10))
    mouth = _ellipsoid(x, y, z, (0, -96, -50), (20, 8, 2.5))
    eyeballs = _ellipsoid(x, y, z, (-eye_dx, -74, 12), (11, 11, 11)) | _ellipsoid(
        x, y, z, (eye_dx, -74, 12), (11, 11, 11)
    )

    body = (head | nose | nostril_tip | brows | chin | lips) & ~eyes & ~mouth
    array = np.full(shape, AIR, dtype=np.float32)
    array[body] = SOFT
    array[body & ~_ellipsoid(x, y, z, (0, 0, 0), (69, 92, 97))] = FAT + 60  # thin subcutaneous layer
    array[skull_out & ~skull_in] = BONE
    array[skull_in] = BRAIN
    array[eyeballs] = 10.0
    arteries = ((x - 18) ** 2 + (y + 5) ** 2 <= 3.0**2) | ((x + 18) ** 2 + (y + 5) ** 2 <= 3.0**2)
    arteries &= (z < 40) & (head | skull_in)
    array[arteries] = ARTERY
    noise = rng.normal(0, 8, shape).astype(np.float32)
    array += noise * body

    # Ground-truth face: soft tissue in front of the skull from brow to chin (what a defacer should remove).
    face = body & ~skull_out & ~eyeballs & (y < -55) & (z > -95) & (z < 40) & ~arteries

    def image_of(values, pixel):
        return image_from_array(values.astype(pixel), (spacing,) * 3, (-90.0, -120.0, -130.0))

    return SimpleNamespace(
        image=image_of(array, np.int16),
        face=image_of(face, np.uint8),
        intracranial=image_of(skull_in, np.uint8),
        arteries=image_of(arteries, np.uint8),
    )


def as_ras_stored(image):
    """The same scan stored with RAS axes (x and y arrays flipped, direction diag(-1, -1, 1))."""
    return sitk.DICOMOrient(image, "RAS")
