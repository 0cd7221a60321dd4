"""The written DICOM read back the way Slicer's DICOM module reads a CT series (ITK's GDCM series reader): each
defaced series is one volume on the input's grid, the face voxels hold the fill and every other voxel equals the
input's. This is the closest check of "opens in Slicer's DICOM browser with the face gone" that runs without the
Slicer application."""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from helpers import DICOM_BOX as BOX
from helpers import ctadeface


def read_series(folder):
    """One volume from a folder of slices, through GDCM as ITK (and so Slicer's ITK-based loader) reads it."""
    reader = sitk.ImageSeriesReader()
    (series_uid,) = reader.GetGDCMSeriesIDs(str(folder))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series_uid))
    return reader.Execute()


@pytest.fixture(scope="module")
def written(phantom_dicom_study, tmp_path_factory):
    folder, inputs = phantom_dicom_study
    root = tmp_path_factory.mktemp("readback")
    out = root / "out"
    result = ctadeface("deface", str(folder), "-o", str(out), "--deid-key", str(root / "key"), *BOX)
    assert result.returncode == 0, result.stdout + result.stderr
    (study,) = [n for n in os.listdir(out) if not n.endswith(".json")]
    report = json.load(open(out / (study + "_deface.json"), encoding="utf-8"))
    return inputs, out / study, report


# thin axial, thick axial (signed), coronal reformat: the untilted series ITK stacks into one volume
@pytest.mark.parametrize("name, number", [("thin", 1), ("thick", 2), ("coronal", 3)])
def test_each_defaced_series_reads_back_on_the_inputs_grid_with_only_the_face_changed(written, name, number):
    inputs, study, report = written
    before = read_series(os.path.dirname(inputs[name][0]))
    (folder,) = [f for f in os.listdir(study) if f.startswith(f"{number:03d}_")]
    after = read_series(study / folder)

    assert after.GetSize() == before.GetSize()
    assert np.allclose(after.GetOrigin(), before.GetOrigin(), atol=1e-3)
    assert np.allclose(after.GetSpacing(), before.GetSpacing(), atol=1e-4)
    assert np.allclose(after.GetDirection(), before.GetDirection(), atol=1e-5)

    a, b = sitk.GetArrayFromImage(after), sitk.GetArrayFromImage(before)
    changed = a != b
    assert changed.sum() > 0, "nothing was defaced"
    # Every changed voxel holds the one fill value (in HU, after each slice's own rescale) ...
    assert np.unique(a[changed]).size == 1
    # ... which is the value the study report says was written
    fills = {n: m["fill_hu"] for m in report["masks"] for n in m["series_numbers"]}
    assert np.allclose(a[changed], fills[number], atol=1.0)
    # ... and the change sits in the front of the head (anterior half), where the face is
    index = np.argwhere(changed)
    points = np.array([after.TransformIndexToPhysicalPoint([int(i) for i in k[::-1]]) for k in index[::97]])
    head = np.array(after.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in after.GetSize()]))
    assert np.mean(points[:, 1] < head[1]) > 0.9  # LPS: anterior is -y


def test_every_written_slice_is_one_of_the_series_read_back(written):
    """No slice is dropped or left over: ITK's series reader takes every file of each series folder."""
    _, study, _ = written
    for folder in sorted(os.listdir(study)):
        files = sorted(os.listdir(study / folder))
        reader = sitk.ImageSeriesReader()
        (series_uid,) = reader.GetGDCMSeriesIDs(str(study / folder))
        names = reader.GetGDCMSeriesFileNames(str(study / folder), series_uid)
        assert sorted(os.path.basename(n) for n in names) == files
        assert {pydicom.dcmread(study / folder / f, stop_before_pixels=True).SeriesInstanceUID for f in files} == {
            series_uid
        }
