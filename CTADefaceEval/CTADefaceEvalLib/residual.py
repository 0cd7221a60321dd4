"""How much facial soft tissue a defaced CT still has in front of the facial skeleton, per region; no detector.

A face detector can miss a nose left in place, and fire on a bare skull. Geometry cannot be fooled that way: after a
complete defacing, the soft tissue in front of the facial bones is gone (the face mask reaches down to the bone), so
whatever soft tissue still stands in front of the skeleton where the nose, the lips, the eyes and the chin were is
what a person could recognise.

How it is measured:

1. The head is resampled into the face's own frame (`frame`: the face's front and up directions, from
   CTADefaceEvalLib.pose when it is there; otherwise the image axes, which is only right for an upright head), on an
   isotropic grid (1 mm, or the image's finest spacing if coarser). Rays run from the face's front backwards.
2. The regions are placed from the teeth, which defacing never removes: the centroid of the most anterior tooth
   voxels (> 1800 HU) marks the mouth and the midline. Nose, lips, eyes and chin are boxes above, at and below it
   (REGION_BOXES, in mm across and up the face; they fit adult proportions with room to spare: mouth-to-eyes
   55-75 mm, mouth-to-nose-tip 25-35 mm, mouth-to-chin front 30-50 mm; the chin box stops above the neck, which no face mask removes).
3. The facial skeleton's front (the "envelope"): per ray, the first bone voxel (> 600 HU: above contrast-filled
   arteries, below the cortex of the facial bones); then, per ray, the most anterior of those within 15 mm, so that
   the envelope spans the orbit openings and the nasal aperture like a mask laid on the skull.
4. Soft tissue (-300 to 250 HU: not marrow, not contrast, not bone; with the original, voxels the defacing changed do not count, whatever the fill)
   counts when it lies in front of the envelope or less than ALLOWANCE_MM behind it: the eyeballs sit inside the
   orbit opening, level with its rims; the deep orbital fat, which a complete face mask leaves, lies further back.
5. Per region: `tissue_ml` (that tissue's volume), `protrusion_mm` (the 95th percentile over the region's rays of its
   thickness along the ray) and, with the original, the same two for the original and `fraction_left`.
   `flagged` is True when either number reaches the region's threshold (THRESHOLDS, calibrated on the project's
   phantoms; see Testing/test_eval_residual.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from CTADefaceLib.mask import BODY_HU  # above this: the body (skin and everything inside)

REGIONS = ("nose", "lips", "eyes", "chin")

SOFT_MAX_HU = 250.0  # up to this: soft tissue (fat, muscle, skin, eyeballs); cancellous bone and contrast lie above
BONE_HU = 600.0  # above this: bone (contrast-filled arteries stay below, about 300-500 HU)
TEETH_HU = 1800.0  # above this: teeth (enamel and dentine; cortical bone of the face stays below)
ENVELOPE_RADIUS_MM = 15.0  # the skeleton's front spans openings up to about 30 mm (orbits, nasal aperture)
ALLOWANCE_MM = 10.0  # tissue this far behind the envelope still counts (eyeballs sit inside the orbit opening)
FRONT_TEETH_MM = 10.0  # the anchor: tooth voxels within this depth of the most anterior tooth
MIN_TEETH_ML = 0.2  # fewer tooth voxels than this: no anchor

#: Region boxes: (|across| min, max; up min, max), mm from the anchor (front teeth), across = patient left-right.
REGION_BOXES = {
    "nose": (0.0, 15.0, 12.0, 48.0),
    "lips": (0.0, 30.0, -15.0, 11.0),
    "eyes": (14.0, 50.0, 40.0, 80.0),
    "chin": (0.0, 25.0, -50.0, -18.0),
}

#: A region is flagged when its tissue_ml or its protrusion_mm reaches these. Calibrated on the project's phantoms
#: (Testing/test_eval_residual.py: six 2 mm phantoms, upright and tilted up to 20 degrees about each axis, p10 fill,
#: measured in the true face frame): a complete face mask leaves at most 0.3 ml and 2 mm in any region; a mask that
#: leaves the nose, the lips or the eyes leaves at least 4.7 ml and 8 mm in that region (nose 7.2 ml / 16 mm, lips
#: 6.0 ml / 10 mm, eyes 4.7 ml / 8 mm at the least), and the left half of the face at least 3.3 ml in each of
#: nose, lips and eyes. The chin's ml threshold is higher: its box is the largest.
THRESHOLDS = {
    "nose": {"tissue_ml": 2.0, "protrusion_mm": 8.0},
    "lips": {"tissue_ml": 2.0, "protrusion_mm": 8.0},
    "eyes": {"tissue_ml": 2.0, "protrusion_mm": 8.0},
    "chin": {"tissue_ml": 3.0, "protrusion_mm": 8.0},
}


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _frame_axes(frame) -> tuple[np.ndarray, np.ndarray, str]:
    """(front, up) unit vectors in LPS, orthogonal, and the frame's method."""
    if frame is None:
        return np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0]), "image axes"
    front = _unit(getattr(frame, "front_lps", None) if not isinstance(frame, dict) else frame["front_lps"])
    up = np.asarray(getattr(frame, "up_lps", None) if not isinstance(frame, dict) else frame["up_lps"], float)
    up = _unit(up - np.dot(up, front) * front)
    method = getattr(frame, "method", None) if not isinstance(frame, dict) else frame.get("method")
    return front, up, str(method or "given")


def _estimate_frame(image):
    """The face frame from CTADefaceEvalLib.pose when that module is there; None (image axes) otherwise."""
    try:
        from . import pose  # type: ignore[attr-defined]
    except ImportError:
        return None, "pose.py not available"
    try:
        return pose.estimate_face_frame(image), None
    except Exception as error:  # a pose that cannot be found: measure in the image axes, and say so
        return None, f"pose estimation failed ({error})"


def _face_grid(reference, front: np.ndarray, up: np.ndarray):
    """A resampling grid in the face frame covering the body of `reference` (x = patient left, y = posterior,
    z = up, as LPS for an upright head)."""
    import SimpleITK as sitk

    posterior = -front
    left = np.cross(posterior, up)
    axes = np.stack([left, posterior, up], axis=1)  # columns: the grid's x, y, z in LPS
    spacing = max(1.0, float(min(reference.GetSpacing())))
    array = sitk.GetArrayViewFromImage(reference)
    step = max(1, int(round(4.0 / min(reference.GetSpacing()))))  # body extent from a coarse sample
    kji = np.argwhere(array[::step, ::step, ::step] > BODY_HU) * step
    if len(kji) == 0:
        kji = np.array([[0, 0, 0], [s - 1 for s in array.shape]])
    points = np.array(
        [reference.TransformIndexToPhysicalPoint([int(v) for v in p[::-1]]) for p in kji[:: max(1, len(kji) // 20000)]]
    )
    local = points @ axes  # coordinates along the grid axes
    lo, hi = local.min(0) - 12.0, local.max(0) + 12.0
    size = [int(np.ceil((h - lo_) / spacing)) + 1 for lo_, h in zip(lo, hi)]
    origin = axes @ lo
    return axes, origin, spacing, size


def _resample(image, axes, origin, spacing, size, default: float, linear: bool = True):
    import SimpleITK as sitk

    resampler = sitk.ResampleImageFilter()
    resampler.SetOutputDirection(tuple(float(v) for v in axes.ravel()))
    resampler.SetOutputOrigin(tuple(float(v) for v in origin))
    resampler.SetOutputSpacing((spacing, spacing, spacing))
    resampler.SetSize([int(s) for s in size])
    resampler.SetDefaultPixelValue(default)
    resampler.SetInterpolator(sitk.sitkLinear if linear else sitk.sitkNearestNeighbor)
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampler.Execute(image))  # (z, y, x)


def _anchor(volume: np.ndarray, spacing: float) -> dict | None:
    """The front teeth's centroid (grid indices z, y, x) and the midline, or None without teeth."""
    teeth = np.argwhere(volume > TEETH_HU)
    if len(teeth) * spacing**3 / 1000.0 < MIN_TEETH_ML:
        return None
    front = np.percentile(teeth[:, 1], 1)
    anterior = teeth[teeth[:, 1] <= front + FRONT_TEETH_MM / spacing]
    k, j, i = anterior.mean(0)
    return {"z": float(k), "y": float(j), "x": float(i)}


def _first_bone(bone: np.ndarray) -> np.ndarray:
    """Per ray (z, x): the y index of the first bone voxel; +inf where the ray meets no bone."""
    return np.where(bone.any(axis=1), bone.argmax(axis=1), np.inf).astype(np.float32)


def _envelope(first: np.ndarray, spacing: float) -> np.ndarray:
    """Per ray (z, x): the y index of the skeleton's front, bridged over openings (the most anterior first bone
    within ENVELOPE_RADIUS_MM); a huge number where no bone is near."""
    from scipy import ndimage

    r = int(round(ENVELOPE_RADIUS_MM / spacing))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    footprint = yy**2 + xx**2 <= r * r
    big = np.float32(1e9)
    return ndimage.minimum_filter(np.where(np.isfinite(first), first, big), footprint=footprint, mode="nearest")


def _near_bone(bone: np.ndarray) -> np.ndarray:
    """Bone grown by one voxel: the shell where interpolation mixes bone with the air of the fill into soft-tissue
    values (a separable maximum filter: several times faster than binary_dilation)."""
    from scipy import ndimage

    return ndimage.maximum_filter(bone.view(np.uint8), size=3) > 0


def _counts(
    volume: np.ndarray, near_bone: np.ndarray, first: np.ndarray, envelope: np.ndarray, spacing: float, excluded
):
    """Per ray (z, x): soft-tissue voxels in front of the ray's own first bone and of envelope + allowance.

    Not counted: bone marrow and anything else behind the ray's first bone, and the one-voxel shell around bone."""
    tissue = (volume > BODY_HU) & (volume <= SOFT_MAX_HU) & ~near_bone
    if excluded is not None:
        tissue &= ~excluded
    limit = np.minimum(envelope + ALLOWANCE_MM / spacing, first)  # (z, x)
    j = np.arange(volume.shape[1], dtype=np.float32)[None, :, None]
    return (tissue & (j < limit[:, None, :])).sum(axis=1)


def _region_columns(shape_zx, anchor: dict, spacing: float) -> dict[str, np.ndarray]:
    nz, nx = shape_zx
    up = (np.arange(nz)[:, None] - anchor["z"]) * spacing
    across = np.abs(np.arange(nx)[None, :] - anchor["x"]) * spacing
    return {
        name: (across >= a0) & (across <= a1) & (up >= u0) & (up <= u1)
        for name, (a0, a1, u0, u1) in REGION_BOXES.items()
    }


def _measure(counts: np.ndarray, columns: np.ndarray, spacing: float) -> dict[str, float]:
    inside = counts[columns]
    if inside.size == 0:
        return {"tissue_ml": 0.0, "protrusion_mm": 0.0}
    return {
        "tissue_ml": round(float(inside.sum()) * spacing**3 / 1000.0, 3),
        "protrusion_mm": round(float(np.percentile(inside, 95)) * spacing, 2),
    }


def residual_face(defaced, original=None, *, frame=None) -> dict[str, Any]:
    """Soft tissue left in front of the facial skeleton, per region (REGIONS), in ml and mm.

    `defaced` (and `original`, the same scan before defacing, on the same grid) are SimpleITK CT images in HU.
    `frame`: the face frame (an object or dict with `front_lps` and `up_lps`, as CTADefaceEvalLib.pose gives);
    None = estimate it with pose.py when available (from the original if given), else the image axes.

    Returns {region: {"tissue_ml", "protrusion_mm", "flagged", and with the original "original_tissue_ml",
    "original_protrusion_mm", "fraction_left"}, ..., "frame": {...}, "anchor": {...}}. Without front teeth the
    regions cannot be placed: every region is then None and "anchor" says why.
    """
    import SimpleITK as sitk

    if original is not None and original.GetSize() != defaced.GetSize():
        raise ValueError("the original and the defaced image must share one grid")
    note = None
    if frame is None:
        frame, note = _estimate_frame(original if original is not None else defaced)
    front, up, method = _frame_axes(frame)
    reference = original if original is not None else defaced
    axes, origin, spacing, size = _face_grid(reference, front, up)
    grid = (axes, origin, spacing, size)
    volume = _resample(defaced, *grid, default=-1024.0)
    result: dict[str, Any] = {
        "frame": {
            "method": method,
            "front_lps": [round(float(v), 4) for v in front],
            "up_lps": [round(float(v), 4) for v in up],
            "spacing_mm": spacing,
        }
    }
    confidence = frame.get("confidence") if isinstance(frame, dict) else getattr(frame, "confidence", None)
    if confidence is not None:
        result["frame"]["confidence"] = round(float(confidence), 3)
    if note:
        result["frame"]["note"] = note
    before = _resample(original, *grid, default=-1024.0) if original is not None else None
    anchor = _anchor(before if before is not None else volume, spacing)
    if anchor is None:
        result["anchor"] = {"method": "none", "reason": "no front teeth found (> 1800 HU): regions cannot be placed"}
        result.update({name: None for name in REGIONS})
        return result
    result["anchor"] = {
        "method": "front teeth",
        "lps": [
            round(float(v), 2) for v in origin + axes @ (np.array([anchor["x"], anchor["y"], anchor["z"]]) * spacing)
        ],
    }
    skeleton = before if before is not None else volume  # the bone is the same in both; the original's is whole
    bone = skeleton > BONE_HU
    first = _first_bone(bone)
    envelope = _envelope(first, spacing)
    changed = None
    if original is not None:
        diff = sitk.NotEqual(sitk.Cast(defaced, sitk.sitkFloat32), sitk.Cast(original, sitk.sitkFloat32))
        changed = _resample(sitk.Cast(diff, sitk.sitkFloat32), *grid, default=0.0) > 0.5
    near_bone = _near_bone(bone)
    counts = _counts(volume, near_bone, first, envelope, spacing, changed)
    columns = _region_columns(counts.shape, anchor, spacing)
    original_counts = _counts(before, near_bone, first, envelope, spacing, None) if before is not None else None
    for name in REGIONS:
        entry: dict[str, Any] = _measure(counts, columns[name], spacing)
        limits = THRESHOLDS[name]
        entry["flagged"] = bool(
            entry["tissue_ml"] >= limits["tissue_ml"] or entry["protrusion_mm"] >= limits["protrusion_mm"]
        )
        if original_counts is not None:
            base = _measure(original_counts, columns[name], spacing)
            entry["original_tissue_ml"] = base["tissue_ml"]
            entry["original_protrusion_mm"] = base["protrusion_mm"]
            entry["fraction_left"] = (
                round(entry["tissue_ml"] / base["tissue_ml"], 3) if base["tissue_ml"] > 0.5 else None
            )
        result[name] = entry
    return result


def flagged_regions(result: dict) -> list[str]:
    """The regions of a `residual_face` result that still hold facial tissue."""
    return [name for name in REGIONS if result.get(name) and result[name]["flagged"]]
