"""Incomplete face masks for a phantom: the ground-truth face mask with one part of the face left out.

A defacing check must pass the complete mask and catch a mask that leaves a recognisable part in place. These masks
are the "caught" cases of its calibration: the phantom's face mask minus the voxels near the nose, near the lips,
near the eyes (both eyes with their lids), or on the patient's left half of the face. The parts are defined in the
phantom's anatomical frame (synthetic/anatomy.py), so they follow the phantom's pose, size and identity.

Arrays are (z, y, x) uint8 0/1, laid out as `SimpleITK.GetArrayFromImage(phantom.face)`; `partial_mask_images`
gives them as images on the phantom's grid.
"""

from __future__ import annotations

import numpy as np

#: What each mask leaves in place ("full" leaves nothing: it is the ground truth).
PARTS = ("full", "nose_left", "lips_left", "eyes_left", "left_half_left")

EYE_RADIUS_MM = 17.0  # eyeball radius 12 mm, eyelids out to 14.2 mm, plus a margin


def _anatomical_coordinates(phantom, index_zyx: np.ndarray) -> np.ndarray:
    """Anatomical (x, y, z) mm of voxels given by (z, y, x) indices on the phantom's grid."""
    image = phantom.face
    spacing = np.array(image.GetSpacing(), float)
    origin = np.array(image.GetOrigin(), float)
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    ijk: np.ndarray = index_zyx[:, ::-1].astype(float)  # (i, j, k) = (x, y, z) index
    physical = origin + (ijk * spacing) @ direction.T
    return phantom.anatomical(physical)


def _regions(phantom, anat: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean per part: which of the anatomical points `anat` (N x 3) belong to it."""
    from . import anatomy

    _, _, lm = anatomy.build(phantom.identity, tuple(phantom.spec.devices))
    idn = phantom.identity
    x, y, z = anat[:, 0], anat[:, 1], anat[:, 2]
    nose_tip, nasion = np.array(lm["nose_tip"]), np.array(lm["nasion"])
    # The nose: from the nasion down to below the alae, out to the alae, in front of the maxilla.
    nose = (np.abs(x) <= 0.6 * idn["nose_w"] + 9.0) & (z <= nasion[2] + 3.0) & (z >= nose_tip[2] - 16.0) & (y < -74.0)
    # The lips: upper lip centre z -51, lower -64 (anatomy.build), 6.5 mm half-height, out to the mouth corners.
    lips = (np.abs(x) <= idn["mouth_w"] + 6.0) & (z <= -51.0 + 8.0) & (z >= -64.0 - 8.0) & (y < -66.0)
    eyes: np.ndarray = np.zeros(len(anat), bool)
    for key in ("eye_l", "eye_r"):
        eyes |= np.linalg.norm(anat - np.array(lm[key]), axis=1) <= EYE_RADIUS_MM
    left_half = x > 0.0  # anatomical x is the patient's Left
    return {"nose_left": nose, "lips_left": lips, "eyes_left": eyes, "left_half_left": left_half}


def partial_masks(phantom) -> dict[str, np.ndarray]:
    """{part: (z, y, x) uint8 mask}: "full" is the phantom's face mask, the others leave one part in place."""
    import SimpleITK as sitk

    full = (sitk.GetArrayFromImage(phantom.face) > 0).astype(np.uint8)
    index = np.argwhere(full)
    regions = _regions(phantom, _anatomical_coordinates(phantom, index))
    masks = {"full": full}
    for part, keep in regions.items():
        mask = full.copy()
        kept = index[keep]
        mask[kept[:, 0], kept[:, 1], kept[:, 2]] = 0
        masks[part] = mask
    return masks


def partial_mask_images(phantom) -> dict:
    """The same masks as SimpleITK UInt8 images on the phantom's grid."""
    import SimpleITK as sitk

    images = {}
    for part, array in partial_masks(phantom).items():
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(phantom.face)
        images[part] = image
    return images
