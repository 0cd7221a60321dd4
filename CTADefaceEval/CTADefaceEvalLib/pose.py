"""The head's pose from the CT itself: where the face looks and which way is up.

A head in a CTA holder is often pitched (chin down) and rolled by 10-20 degrees, so a camera fixed to
the image axes sees the face from above or askew and a face detector misses it. `estimate_face_frame`
finds the face's own frame by a rigid-plus-scale registration of the CT to an upright reference head:

- The reference is the project's synthetic phantom (CTADefaceLib.synthetic.phantom) in the neutral
  pose, built once per process at 4 mm, with its field of view covering the vertex and the neck so that
  every part of a scan finds a counterpart. Its anatomical axes are the patient axes (x left,
  y posterior, z superior), and its landmarks (nasion, nose tip) are known exactly.
- Both images are reduced to the same two-level feature that does not depend on the scanner's HU
  calibration or on contrast: 1 inside the body (largest connected component above -300 HU, so the
  table, the head holder and loose devices drop out), 2 in bone (above 250 HU), smoothed by 4 mm.
- A Similarity3D transform (rotation, translation, one scale for head size) is fitted by mean squares,
  coarse to fine, from the upright start; when that fit is not clearly good (feature correlation below
  GOOD_FIT), also from 15 degrees chin-down and chin-up (the angle heads most often deviate in), and the best
  fit wins. On the project's phantoms one start converges from 20 degrees about all three axes at once.
- The face's front in the CT is the reference's anterior direction carried back through the fitted
  rotation; likewise up; the origin is the reference's point between the nasion and the nose tip.
- Confidence is the correlation of the two feature images after the fit (1 = identical), lowered when the
  starting pitches disagree (several minima of similar depth: the pose is ambiguous).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from CTADefaceLib.mask import BODY_HU  # above this: the body (skin and everything inside)

FEATURE_MM = 4.0  # grid of the registration: faces need the pose to a few degrees, not sub-millimetre detail
BONE_HU = 250.0
START_PITCHES_DEG = (0.0, -15.0, 15.0)
GOOD_FIT = 0.9  # feature correlation above which the first start is trusted and the others are skipped
REFERENCE_SEED = 0


@dataclass(frozen=True)
class FaceFrame:
    """The face's own frame in patient LPS millimetres."""

    origin_lps: tuple  # a point on the face's mid-sagittal plane, about at the nose (mm, LPS)
    front_lps: tuple  # unit vector the face looks along (anterior of the head)
    up_lps: tuple  # unit vector towards the vertex, orthogonal to front
    method: str  # how it was found
    confidence: float  # 0..1; low when the estimate is unreliable

    @property
    def left_lps(self) -> tuple:
        """Unit vector towards the patient's left (up x front, right-handed with LPS)."""
        import numpy as np

        return tuple(float(v) for v in np.cross(self.up_lps, self.front_lps))


#: The frame of a head in the neutral pose: anterior is -y and superior +z in LPS.
def image_axes_frame(origin_lps=(0.0, 0.0, 0.0)) -> FaceFrame:
    return FaceFrame(tuple(float(v) for v in origin_lps), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0), "image axes", 0.0)


def _feature(image, spacing: float = FEATURE_MM):
    """Body (1) + bone (1 more), on an isotropic grid in the image's own orientation, smoothed; float32."""
    import numpy as np
    import SimpleITK as sitk

    from CTADefaceLib.mask import largest_component

    size = [max(2, int(math.ceil(n * s / spacing))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    # Smooth before shrinking so thin bone still counts (area averaging, roughly).
    sigma = [max(0.0, (spacing - s) / 2.0) for s in image.GetSpacing()]
    hu = sitk.Cast(image, sitk.sitkFloat32)
    # Axis by axis: ITK's SmoothingRecursiveGaussian refuses a zero sigma, which an axis whose spacing is already
    # coarser than the grid (5 mm slices) has.
    for axis, s in enumerate(sigma):
        if s > 0:
            hu = sitk.RecursiveGaussian(hu, s, False, sitk.RecursiveGaussianImageFilter.ZeroOrder, axis)
    grid = sitk.Resample(
        hu,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        (spacing,) * 3,
        image.GetDirection(),
        -1024.0,
        sitk.sitkFloat32,
    )
    array = sitk.GetArrayViewFromImage(grid)
    body = largest_component(array > BODY_HU)
    feature = body.astype(np.float32) + (body & (array > BONE_HU)).astype(np.float32)
    out = sitk.GetImageFromArray(feature)
    out.CopyInformation(grid)
    return sitk.SmoothingRecursiveGaussian(out, spacing), body


@lru_cache(maxsize=1)
def _reference():
    """(feature image, landmarks) of the upright reference phantom."""
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    spec = PhantomSpec(
        seed=REFERENCE_SEED,
        shape=(72, 84, 100),
        spacing=(FEATURE_MM,) * 3,
        pose_deg=(0.0, 0.0, 0.0),
        neck=True,
        vertex=True,
        noise_hu=0.0,
    )
    phantom = make_phantom(spec)
    feature, _ = _feature(phantom.clean)
    return feature, dict(phantom.landmarks)


def _centroid(image, mask) -> tuple:
    import numpy as np

    zz, yy, xx = np.nonzero(mask)
    index = (float(xx.mean()), float(yy.mean()), float(zz.mean()))
    return image.TransformContinuousIndexToPhysicalPoint(index)


def _register(fixed, moving, initial):
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(0.3, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-3, numberOfIterations=120, gradientMagnitudeTolerance=1e-6
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SetInitialTransform(initial, inPlace=False)
    transform = reg.Execute(fixed, moving)
    return transform, reg.GetMetricValue()


def _as_similarity(transform):
    """The Similarity3DTransform inside what the registration returned (it may wrap it in a composite)."""
    import SimpleITK as sitk

    try:
        return sitk.Similarity3DTransform(transform)
    except RuntimeError:
        return sitk.Similarity3DTransform(sitk.CompositeTransform(transform).GetNthTransform(0))


def _axes(similarity):
    """(front, up) of the CT: the reference's anterior (-y) and superior (+z) carried back through the fitted
    rotation (fixed CT -> moving reference maps a CT direction d to R d, so the CT's is R^T times the
    reference's), orthonormalised."""
    import numpy as np

    matrix = np.array(similarity.GetMatrix()).reshape(3, 3)
    rotation = matrix / np.cbrt(np.linalg.det(matrix))
    front = rotation.T @ np.array([0.0, -1.0, 0.0])
    up = rotation.T @ np.array([0.0, 0.0, 1.0])
    up = up - front * float(front @ up) / float(front @ front)
    return front / np.linalg.norm(front), up / np.linalg.norm(up)


def _angle(a, b) -> float:
    import numpy as np

    cosine = float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def _correlation(fixed, moving, transform) -> float:
    import numpy as np
    import SimpleITK as sitk

    warped = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0)
    a = sitk.GetArrayViewFromImage(fixed).ravel()
    b = sitk.GetArrayViewFromImage(warped).ravel()
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def estimate_face_frame(image) -> FaceFrame:
    """The face's frame (origin, front, up) of a head CT in HU, any storage orientation (see module docstring)."""
    import numpy as np
    import SimpleITK as sitk

    fixed, body = _feature(image)
    moving, landmarks = _reference()
    if not body.any():
        return image_axes_frame(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))
    bone = sitk.GetArrayViewFromImage(fixed) > 1.2
    fixed_centre = np.array(_centroid(fixed, bone if bone.sum() > 50 else body))
    ref_array = sitk.GetArrayViewFromImage(moving)
    moving_centre = np.array(_centroid(moving, ref_array > 1.2))

    def fit(pitch: float):
        start = sitk.Similarity3DTransform()
        start.SetCenter(tuple(fixed_centre))
        start.SetTranslation(tuple(moving_centre - fixed_centre))
        # fixed -> moving: a head pitched chin-down by `pitch` maps back upright by the opposite rotation
        start.SetRotation((1.0, 0.0, 0.0), math.radians(-pitch))
        transform, metric = _register(fixed, moving, start)
        similarity = _as_similarity(transform)
        return metric, similarity, _correlation(fixed, moving, similarity)

    fits = [fit(START_PITCHES_DEG[0])]
    if fits[0][2] < GOOD_FIT:  # not an obvious match: try the other starting pitches, keep the best
        fits += [fit(pitch) for pitch in START_PITCHES_DEG[1:]]
    fits.sort(key=lambda f: f[0])
    _, similarity, confidence = fits[0]
    front, up = _axes(similarity)
    nose = (np.array(landmarks["nasion"]) + np.array(landmarks["nose_tip"])) / 2
    origin = np.array(similarity.GetInverse().TransformPoint(tuple(float(v) for v in nose)))

    confidence = max(0.0, confidence)
    # Starting pitches that end far apart with similar metrics: the fit is ambiguous.
    for metric, other, _ in fits[1:]:
        if _angle(_axes(other)[0], front) > 10 and metric < fits[0][0] * 1.1 + 1e-9:
            confidence *= 0.5
            break
    return FaceFrame(
        origin_lps=tuple(float(v) for v in origin),
        front_lps=tuple(float(v) for v in front),
        up_lps=tuple(float(v) for v in up),
        method="registration to an upright reference head (body and bone, similarity transform)",
        confidence=round(float(confidence), 3),
    )
