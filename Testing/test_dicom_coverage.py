"""A series that reaches beyond the mask source's grid gets its own mask: no face voxel of it is left."""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from builders import make_synthetic_head
from CTADefaceLib.deid import Deidentifier, DeidOptions
from CTADefaceLib.dicom import coverage
from CTADefaceLib.dicom.discover import discover
from CTADefaceLib.dicom.geometry import series_geometry
from CTADefaceLib.dicom.pixels import stored_values
from CTADefaceLib.dicom.study import deface_study
from CTADefaceLib.engines.base import Engine
from CTADefaceLib.settings import DefaceSettings
from dicom_study import resample, uid, write_series


class GroundTruthEngine(Engine):
    """A perfect model: the phantom's true face, on whatever part of it the image shows."""

    name = "ground-truth"

    def __init__(self, face):
        self.face = face

    def predict(self, image):
        return sitk.Resample(self.face, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)

    def describe(self):
        return {"engine": self.name, "model": None, "model_sha256": None, "device": "cpu"}


@pytest.fixture(scope="module")
def cropped_study(tmp_path_factory):
    """Series 1: thin, a field of view that cuts off the front of the face; series 2: thick, the whole head."""
    root = tmp_path_factory.mktemp("cover")
    head = make_synthetic_head(spacing=4.0)
    thin = head.image[:, 8:, 5:]  # y >= -88 mm: nose tip, lips and chin lie in front of this grid
    size, spacing = head.image.GetSize(), head.image.GetSpacing()
    thick = resample(
        head.image,
        (size[0], size[1], size[2] // 3),
        (spacing[0], spacing[1], 3 * spacing[2]),
        head.image.GetOrigin(),
        head.image.GetDirection(),
    )
    write_series(thin, str(root / "in" / "thin"), uid("110"), 1)
    write_series(thick, str(root / "in" / "thick"), uid("120"), 2, signed=True)
    out = root / "out"
    out.mkdir()
    found = discover([str(root / "in")])
    record = deface_study(
        next(iter(found.studies.values())),
        str(out),
        DefaceSettings(engine="box", min_face_ml=0),
        Deidentifier(DeidOptions(), bytes(range(32))),
        engine=GroundTruthEngine(head.face),
    )
    assert record["status"] == "done", record
    with open(record["report"], encoding="utf-8") as handle:
        report = json.load(handle)
    return root, head, thick, out, report


def test_a_series_reaching_beyond_the_source_keeps_no_face_voxel(cropped_study):
    root, head, thick, out, report = cropped_study
    truth = sitk.GetArrayFromImage(
        sitk.Resample(head.face, thick, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    )
    folder = os.path.join(out, report["study_folder"], "002_CT")
    sources = sorted(os.listdir(root / "in" / "thick"))
    left = total = 0
    for k, (src, dst) in enumerate(zip(sources, sorted(os.listdir(folder)))):
        before = stored_values(pydicom.dcmread(str(root / "in" / "thick" / src)))
        after = stored_values(pydicom.dcmread(os.path.join(folder, dst)))
        face = truth[k] > 0
        # face voxels are soft tissue and the fill is air (p10): a face voxel left is one whose value did not change
        left += int((after[face] == before[face]).sum())
        total += int(face.sum())
    assert total > 100
    assert left == 0, f"{left} of {total} face voxels left"


def test_the_report_says_which_series_got_its_own_mask_and_why(cropped_study):
    _, _, _, _, report = cropped_study
    series = {s["series_number"]: s for s in report["series"]}
    assert series[1]["coverage"] == 1.0 and "own_mask" not in series[1]
    own = series[2]["own_mask"]
    assert series[2]["coverage"] < coverage.COVERED_FRACTION
    assert "of its body lies outside the grid of the mask source (series 1)" in own["why"]
    # the ground truth agrees with itself where both grids see the face: the two masks are used together
    assert own["mask"] == "union" and own["jaccard_with_source_mask"] >= coverage.MIN_JACCARD
    assert {m["source_series_number"] for m in report["masks"]} == {1, 2}


def test_coverage_of_a_covered_and_an_uncovered_series(cropped_study):
    root, _, _, _, _ = cropped_study
    found = discover([str(root / "in")])
    by_number = {s.series_number: series_geometry(s) for s in next(iter(found.studies.values())).series.values()}
    thin, thick = by_number[1], by_number[2]
    assert coverage.grid_inside(thick, thin) is False
    inside = coverage.inside_source(thick, thin)
    # the thick series' voxels in front of the thin grid (y index < 8) are outside it, those behind it inside
    assert not inside[:, :8, :].any()
    within = (thick.positions[:, 2] >= thin.positions[0, 2] - 2.0) & (thick.positions[:, 2] <= thin.positions[-1, 2])
    assert inside[within][:, 8:, :].all() and not inside[~within].any()
    assert coverage.grid_inside(thin, thin)
    assert coverage.jaccard(np.ones((2, 2)), np.zeros((2, 2))) == 0.0
    assert coverage.jaccard(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_a_disagreeing_own_mask_is_used_alone_and_an_agreeing_one_with_the_source():
    source, own = np.zeros((1, 4, 4), np.uint8), np.zeros((1, 4, 4), np.uint8)
    source[0, :2], own[0, 1:3] = 1, 1
    agreement = coverage.jaccard(source, own)
    assert agreement == pytest.approx(1 / 3)
    mask, how = coverage.combine(source, own, agreement)
    assert how == "own" and np.array_equal(mask, own)
    mask, how = coverage.combine(source, own, coverage.MIN_JACCARD)
    assert how == "union" and np.array_equal(mask, source | own)
