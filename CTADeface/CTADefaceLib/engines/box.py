"""`box`: a rectangular prism over nose and mouth, the paper's comparator re-implemented without a template.

The paper compared CTA-DEFACE with ICHSEG's `ct_face_mask` (R package ichseg), which registers a
CT template to the scan and maps a rectangular prism over the nose and mouth back onto it (about
36 min per case). This engine is an APPROXIMATION of that idea, not a port: it finds the same kind
of prism from the anatomy directly, in well under a second per case, so the evaluation can compare
"anatomical mask" against "prism over nose and mouth" without R or a template registration.
Its masks are not ICHSEG's masks; numbers obtained with it describe this approximation.

How the prism is placed (canonical LPS: array axes z, y, x = S, P, L; index z grows superiorly,
y posteriorly, x to the patient's left):
1. body = HU > mask.BODY_HU (-300), its largest connected component (drops the table, tubes, noise);
2. search zone: from 60 mm to 230 mm below the top of the body (where the face lies when the scan
   reaches the vertex; a scan cut lower just searches what it has), within 35 mm of the midline;
3. nose tip = the most anterior body voxel in that zone;
4. prism: from the front of the image back to (median anterior surface over the prism's height) +
   `depth_mm`, from `above_mm` above the nose tip to `below_mm` below it, `half_width_mm` either side
   of the nose tip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..mask import largest_body
from .base import Engine

if TYPE_CHECKING:
    import numpy as np
    import SimpleITK as sitk


class BoxEngine(Engine):
    name = "box"

    def __init__(
        self,
        depth_mm: float = 25.0,
        above_mm: float = 40.0,
        below_mm: float = 70.0,
        half_width_mm: float = 40.0,
        **_ignored: Any,
    ) -> None:
        self.depth_mm = float(depth_mm)
        self.above_mm = float(above_mm)
        self.below_mm = float(below_mm)
        self.half_width_mm = float(half_width_mm)

    def describe(self) -> dict:
        return {
            "engine": self.name,
            "model": None,
            "model_sha256": None,
            "device": "cpu",
            "approximates": "ICHSEG ct_face_mask (prism over nose and mouth), without template registration",
            "depth_mm": self.depth_mm,
            "above_mm": self.above_mm,
            "below_mm": self.below_mm,
            "half_width_mm": self.half_width_mm,
        }

    def predict(self, image: sitk.Image) -> sitk.Image:
        import numpy as np
        import SimpleITK as sitk

        array = sitk.GetArrayViewFromImage(image)
        sx, sy, sz = image.GetSpacing()
        mask = np.zeros(array.shape, dtype=np.uint8)
        body = largest_body(array)
        if not body.any():
            return _like(mask, image)
        tip = _nose_tip(body, (sz, sy, sx))
        if tip is None:
            return _like(mask, image)
        tz, ty, tx = tip
        z0 = max(0, int(round(tz - self.below_mm / sz)))
        z1 = min(array.shape[0], int(round(tz + self.above_mm / sz)) + 1)
        x0 = max(0, int(round(tx - self.half_width_mm / sx)))
        x1 = min(array.shape[2], int(round(tx + self.half_width_mm / sx)) + 1)
        band = body[z0:z1, :, x0:x1]
        # Anterior surface per axial slice in the band (first body voxel from the front, y index).
        has = band.any(axis=(1, 2))
        front = np.argmax(band.any(axis=2), axis=1)[has]
        surface = float(np.median(front)) if front.size else float(ty)
        y1 = min(array.shape[1], int(round(surface + self.depth_mm / sy)) + 1)
        mask[z0:z1, 0:y1, x0:x1] = 1
        return _like(mask, image)


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(array)
    out.CopyInformation(reference)
    return out


def _nose_tip(
    body: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    top_skip_mm: float = 60.0,
    depth_mm: float = 230.0,
    midline_mm: float = 35.0,
) -> tuple[int, int, int] | None:
    """(z, y, x) index of the most anterior body voxel in the face zone, or None."""
    import numpy as np

    sz, _, sx = spacing_zyx
    slices = np.nonzero(body.any(axis=(1, 2)))[0]
    top = int(slices.max())
    z_hi = top - int(round(top_skip_mm / sz))
    z_lo = max(int(slices.min()), top - int(round(depth_mm / sz)))
    if z_hi <= z_lo:  # a very short scan: search all of it
        z_lo, z_hi = int(slices.min()), top
    zone = body[z_lo : z_hi + 1]
    xs = np.nonzero(zone.any(axis=(0, 1)))[0]
    mid = (xs.min() + xs.max()) / 2.0
    half = int(round(midline_mm / sx))
    x_lo, x_hi = max(0, int(mid) - half), min(body.shape[2], int(mid) + half + 1)
    zone = zone[:, :, x_lo:x_hi]
    coronal: Any = zone.any(axis=2)  # (z, y) bool array; numpy's stubs type .any(axis=...) as a scalar
    rows = np.nonzero(coronal.any(axis=1))[0]
    if rows.size == 0:
        return None
    front = np.where(coronal.any(axis=1), np.argmax(coronal, axis=1), body.shape[1])
    z_rel = int(np.argmin(front))
    y = int(front[z_rel])
    x_candidates = np.nonzero(zone[z_rel, y])[0]
    x = int(x_lo + x_candidates[len(x_candidates) // 2])
    return (z_lo + z_rel, y, x)
