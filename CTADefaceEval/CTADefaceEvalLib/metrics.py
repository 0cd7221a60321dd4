"""Mask and image metrics: overlap with a ground truth, surface distance, what defacing changed, runtime.

Masks and images may be SimpleITK images or numpy arrays in (z, y, x) order; spacings are given
as (x, y, z) mm like SimpleITK's GetSpacing() (taken from the image when it is one).
"""

from __future__ import annotations

import json
import math

from CTADefaceLib.mask import mask_volume_ml  # one definition, in the core (images or arrays plus spacing)


def _array(image):
    import numpy as np

    if hasattr(image, "GetSize"):
        import SimpleITK as sitk

        return sitk.GetArrayViewFromImage(image)
    return np.asarray(image)


def _spacing_zyx(image, spacing):
    if spacing is not None:
        return tuple(float(s) for s in reversed(spacing))
    if hasattr(image, "GetSpacing"):
        return tuple(float(s) for s in reversed(image.GetSpacing()))
    return (1.0, 1.0, 1.0)


def dice(pred, truth) -> float:
    """2|A∩B| / (|A|+|B|); 1.0 when both are empty (nothing to find, nothing found)."""
    import numpy as np

    a, b = _array(pred) > 0, _array(truth) > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def _surface(mask):
    from scipy import ndimage

    # Voxels of the mask with a 6-neighbour outside it; border_value=0 makes the image edge a border too.
    return mask & ~ndimage.binary_erosion(
        mask, structure=ndimage.generate_binary_structure(mask.ndim, 1), border_value=0
    )


def surface_distances(pred, truth, spacing=None) -> dict:
    """Symmetric surface distance in mm: mean, 95th percentile (HD95) and maximum (Hausdorff).

    Each surface voxel of one mask is measured to the nearest surface voxel of the other (Euclidean
    distance transform with the voxel spacing). Both empty: zeros; one empty: infinity.
    """
    import numpy as np
    from scipy import ndimage

    sampling = _spacing_zyx(pred, spacing)
    a, b = _array(pred) > 0, _array(truth) > 0
    if not a.any() and not b.any():
        return {"mean_mm": 0.0, "hd95_mm": 0.0, "max_mm": 0.0}
    if not a.any() or not b.any():
        return {"mean_mm": math.inf, "hd95_mm": math.inf, "max_mm": math.inf}
    surface_a, surface_b = _surface(a), _surface(b)
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=sampling)
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=sampling)
    both = np.concatenate([to_b[surface_a], to_a[surface_b]])
    return {"mean_mm": float(both.mean()), "hd95_mm": float(np.percentile(both, 95)), "max_mm": float(both.max())}


def preservation(original, defaced, mask, regions: dict | None = None) -> dict:
    """What defacing changed: voxels changed outside the mask (must be 0), inside it, and inside each region.

    `regions` maps a name (e.g. "intracranial", "arteries") to a mask that defacing must not touch.
    """
    import numpy as np

    before, after = _array(original), _array(defaced)
    if before.shape != after.shape:
        raise ValueError(f"original {before.shape} and defaced {after.shape} are not on one grid")
    changed = before != after
    inside = _array(mask) > 0
    result = {
        "changed_outside_mask": int(np.count_nonzero(changed & ~inside)),
        "changed_inside_mask": int(np.count_nonzero(changed & inside)),
        "mask_voxels": int(np.count_nonzero(inside)),
    }
    for name, region in (regions or {}).items():
        region = _array(region) > 0
        result[f"changed_in_{name}"] = int(np.count_nonzero(changed & region))
        result[f"mask_overlaps_{name}"] = int(np.count_nonzero(inside & region))
    return result


def runtime_s(sidecar) -> float | None:
    """Seconds a case took, from a provenance sidecar (path or dict): `timings_s.total`, else the sum of steps."""
    if isinstance(sidecar, str):
        with open(sidecar, encoding="utf-8") as handle:
            sidecar = json.load(handle)
    timings = (sidecar or {}).get("timings_s") or {}
    if "total" in timings:
        return float(timings["total"])
    return float(sum(float(v) for v in timings.values())) if timings else None


def mask_report(pred, truth=None, spacing=None) -> dict:
    """Volume of a predicted mask and, with a ground truth, Dice and surface distances."""
    report = {"mask_volume_ml": mask_volume_ml(pred, spacing)}
    if truth is not None:
        report["dice"] = dice(pred, truth)
        report.update({f"ssd_{k}": v for k, v in surface_distances(pred, truth, spacing).items()})
    return report
