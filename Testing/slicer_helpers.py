"""Synthetic head-like CTs and a labelled stand-in engine for the Slicer-logic tests."""
import numpy as np
import SimpleITK as sitk

LPS_DIRECTION = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
RAS_DIRECTION = (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)  # stored RAS (e.g. from a NIfTI), seen from ITK


def synthetic_ct(direction=LPS_DIRECTION, shape=(12, 20, 16), seed=0):
    """Air -1000, a soft-tissue (40 HU) box with noise, a bone (1000 HU) core; odd spacing and origin."""
    rng = np.random.default_rng(seed)
    array = np.full(shape, -1000, np.int16)
    array[2:-2, 3:-3, 3:-3] = 40 + rng.integers(-5, 6, size=(shape[0] - 4, shape[1] - 6, shape[2] - 6))
    array[4:-4, 7:-7, 6:-6] = 1000
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.45, 0.55, 1.25))
    image.SetOrigin((-12.5, 30.25, -101.0))
    image.SetDirection(direction)
    return image


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
