"""Metrics on hand-made masks with known answers."""

import numpy as np
import pytest
import SimpleITK as sitk

from CTADefaceEvalLib import metrics


def cube(shape, lo, hi):
    mask = np.zeros(shape, np.uint8)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    return mask


def test_dice_known_values():
    a = cube((10, 10, 10), (0, 0, 0), (4, 10, 10))  # 400 voxels
    b = cube((10, 10, 10), (2, 0, 0), (6, 10, 10))  # 400 voxels, 200 shared
    assert metrics.dice(a, b) == pytest.approx(0.5)
    assert metrics.dice(a, a) == 1.0
    assert metrics.dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert metrics.dice(a, np.zeros_like(a)) == 0.0


def test_surface_distance_of_a_shifted_slab_uses_spacing():
    a = cube((20, 20, 20), (5, 5, 5), (15, 15, 15))
    b = cube((20, 20, 20), (6, 5, 5), (16, 15, 15))  # shifted 1 voxel in z
    assert metrics.surface_distances(a, a, (1, 1, 1)) == {"mean_mm": 0.0, "hd95_mm": 0.0, "max_mm": 0.0}
    result = metrics.surface_distances(a, b, spacing=(0.5, 0.5, 2.0))  # (x, y, z): z voxels are 2 mm
    assert result["max_mm"] == pytest.approx(2.0)
    assert 0 < result["mean_mm"] <= 2.0
    image = sitk.GetImageFromArray(a)
    image.SetSpacing((0.5, 0.5, 3.0))
    shifted = sitk.GetImageFromArray(b)
    shifted.CopyInformation(image)
    assert metrics.surface_distances(image, shifted)["max_mm"] == pytest.approx(3.0)
    assert metrics.surface_distances(a, np.zeros_like(a))["mean_mm"] == float("inf")


def test_mask_volume_ml():
    mask = sitk.GetImageFromArray(cube((10, 10, 10), (0, 0, 0), (10, 10, 10)))
    mask.SetSpacing((1.0, 2.0, 5.0))
    assert metrics.mask_volume_ml(mask) == pytest.approx(1000 * 10 / 1000)


def test_preservation_counts():
    original = np.arange(1000, dtype=np.int16).reshape(10, 10, 10)
    mask = cube((10, 10, 10), (0, 0, 0), (2, 10, 10))  # 200 voxels
    defaced = original.copy()
    defaced[mask > 0] = -1000
    brain = cube((10, 10, 10), (5, 0, 0), (10, 10, 10))
    result = metrics.preservation(original, defaced, mask, {"intracranial": brain})
    assert result["changed_outside_mask"] == 0 and result["changed_inside_mask"] == 200
    assert result["changed_in_intracranial"] == 0 and result["mask_overlaps_intracranial"] == 0
    defaced[7, 0, 0] = 5  # a voxel changed in the brain
    result = metrics.preservation(original, defaced, mask, {"intracranial": brain})
    assert result["changed_outside_mask"] == 1 and result["changed_in_intracranial"] == 1


def test_runtime_from_sidecar(tmp_path):
    assert metrics.runtime_s({"timings_s": {"load": 1.0, "predict": 2.5, "total": 4.0}}) == 4.0
    path = tmp_path / "case_deface.json"
    path.write_text('{"timings_s": {"load": 1.0, "predict": 2.5}}')
    assert metrics.runtime_s(str(path)) == 3.5
