"""calibrate.py and `ctadeface eval calibrate`: thresholds that pass every full mask and catch every partial one,
written with the command and date, and a check with them that gives the phantoms' known answers."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("vtk")
pytest.importorskip("facenet_pytorch")

from CTADefaceEvalLib import calibrate  # noqa: E402
from CTADefaceEvalLib.detectors import FaceFinding  # noqa: E402

RENDER = 192  # small renders: CPU is scarce
FACE = {"left_eye": (60, 40), "right_eye": (30, 40), "nose": (45, 55), "mouth_left": (55, 70), "mouth_right": (35, 70)}


def case(mask, probability=0.0, nose=0.0, lips=0.0, pose="upright", verifiable=True, landmarks=None):
    findings = {"front/skin": [FaceFinding("mtcnn", probability, [0, 0, 9, 9], landmarks or {})] if probability else []}
    residual = {"nose": {"protrusion_mm": nose, "original_protrusion_mm": 30.0}, "lips": {"protrusion_mm": lips}}
    residual["frame"] = {"spacing_mm": 1.0}  # context in residual_face's result, not a region
    return calibrate.CaseMeasure(1, pose, mask, findings, residual, verifiable)


def test_thresholds_sit_between_full_and_partial_masks_with_a_margin():
    cases = [
        case("full", 0.3, nose=1.0, lips=0.5),
        case("full", 0.6, nose=2.0, lips=1.5, pose="tilted", landmarks=FACE),
        case("nose_left", 0.2, nose=9.0, lips=0.6),
        case("lips_left", 0.1, nose=1.2, lips=5.5, pose="tilted"),
        case("eyes_left", 0.97, nose=1.0, lips=0.5),  # caught by the detector alone
    ]
    thresholds = calibrate.choose_thresholds(cases)
    assert thresholds["detectors"]["mtcnn"] == pytest.approx(0.65)  # highest full mask 0.6 + 0.05
    assert thresholds["landmarks"]["mtcnn"] == pytest.approx(0.65)
    assert thresholds["residual"]["nose"]["protrusion_mm"] == pytest.approx((2.0 + 9.0) / 2)
    assert thresholds["residual"]["lips"]["protrusion_mm"] == pytest.approx((1.5 + 5.5) / 2)
    assert set(thresholds["residual"]) == {"nose", "lips"} and set(thresholds["residual"]["nose"]) == {"protrusion_mm"}
    rows = calibrate.table(cases, thresholds)
    assert [r["pose"] for r in rows] == ["upright", "tilted", "all"]
    assert rows[-1] == {
        "pose": "all",
        "partial_masks": 3,
        "caught": 3,
        "sensitivity": 1.0,
        "undefaced": 0,
        "undefaced_caught": 0,
        "full_masks": 2,
        "passed": 2,
        "specificity": 1.0,
    }
    assert "100%" in calibrate.format_table(rows)


def test_a_region_no_partial_mask_leaves_gets_a_limit_a_voxel_of_tissue_does_not_cross():
    """Full masks with no chin tissue at all gave a chin limit of 0.001 mm, and complete masks of other phantoms then
    failed on 1.0 mm of chin (a voxel); the limit now sits RESIDUAL_FLOOR above the full masks."""
    cases = [case("full", nose=1.0), case("nose_left", nose=9.0)]
    for c in cases:
        c.residual["chin"] = {"protrusion_mm": 0.0, "tissue_ml": 0.0}
    limits = calibrate.choose_thresholds(cases)["residual"]
    assert limits["chin"] == {"protrusion_mm": 2.0, "tissue_ml": 0.5}
    assert limits["nose"]["protrusion_mm"] == pytest.approx(5.0)  # a region partial masks bound keeps the gap rule


def test_a_partial_mask_the_measures_cannot_separate_shows_in_the_table_and_full_masks_still_pass():
    cases = [case("full", nose=4.0), case("nose_left", nose=3.0), case("full", pose="p2", verifiable=False)]
    thresholds = calibrate.choose_thresholds(cases)
    assert thresholds["residual"]["nose"]["protrusion_mm"] > 4.0  # no gap: the full masks keep passing
    rows = {r["pose"]: r for r in calibrate.table(cases, thresholds)}
    assert rows["upright"]["sensitivity"] == 0.0 and rows["upright"]["specificity"] == 1.0
    assert rows["p2"]["specificity"] == 0.0  # no face in the original's views: cannot verify, REVIEW
    assert calibrate.case_verdict(cases[2], thresholds)[1] == ["cannot verify: no face found in the original's views"]


def test_the_undefaced_phantom_is_a_case_that_must_be_review_and_does_not_move_the_thresholds():
    """The check of the check in the calibration: an undefaced phantom (detector quiet, as on a tilted
    head, but all its tissue in place) is counted in its own column and must be caught; it does not lower the
    limits, which the partial masks set."""
    cases = [
        case("full", 0.3, nose=1.0, lips=0.5),
        case("nose_left", 0.2, nose=9.0, lips=0.6),
        case("lips_left", 0.1, nose=1.2, lips=5.5),
    ]
    without = calibrate.choose_thresholds(cases)
    quiet_original = case(calibrate.UNDEFACED, 0.0, nose=3.0, lips=3.0)  # below the partials: must not bound them
    loud_original = case(calibrate.UNDEFACED, 0.99, nose=12.0, lips=9.0, pose="tilted")
    thresholds = calibrate.choose_thresholds(cases + [quiet_original, loud_original])
    assert thresholds == without
    rows = {r["pose"]: r for r in calibrate.table(cases + [quiet_original, loud_original], thresholds)}
    assert rows["all"]["partial_masks"] == 2 and rows["all"]["caught"] == 2 and rows["all"]["full_masks"] == 1
    # the quiet original's tissue is under the nose and lips limits, so the table shows it PASSing: 1 of 2 caught
    assert (rows["upright"]["undefaced"], rows["upright"]["undefaced_caught"]) == (1, 0)
    assert (rows["tilted"]["undefaced"], rows["tilted"]["undefaced_caught"]) == (1, 1)
    assert "undefaced caught" in calibrate.format_table(list(rows.values()))


def test_whether_the_original_shows_a_face_is_judged_with_the_thresholds_being_chosen():
    """A phantom whose original MTCNN scores 0.86 (under the fixed 0.9) but whose dlib score is above the calibrated
    threshold is verifiable: its full mask passes and its undefaced case is caught by the detector."""
    original = {"front/skin": [FaceFinding("mtcnn", 0.86, [0, 0, 9, 9], {}), FaceFinding("dlib-hog", 0.7, None, {})]}
    cases = [case("full", 0.3, nose=1.0), case("nose_left", 0.2, nose=9.0), case(calibrate.UNDEFACED, nose=30.0)]
    for c in cases:
        c.verifiable, c.original_findings = False, original
    cases[2].findings = original
    thresholds = calibrate.choose_thresholds(cases)
    assert thresholds["detectors"]["dlib-hog"] == calibrate.DETECTOR_FLOOR  # no full mask gave dlib a face
    assert calibrate.case_verdict(cases[0], thresholds) == ("PASS", [])
    verdict, reasons = calibrate.case_verdict(cases[2], thresholds)
    assert verdict == "REVIEW" and any("dlib-hog finds a face" in r for r in reasons), reasons
    higher = dict(thresholds, detectors={"mtcnn": 0.9, "dlib-hog": 0.8})
    assert calibrate.case_verdict(cases[0], higher)[1] == ["cannot verify: no face found in the original's views"]


def test_the_figure_shows_the_undefaced_full_and_nose_cases_of_the_tilted_pose(tmp_path):
    import numpy as np

    from CTADefaceEvalLib import figure
    from CTADefaceEvalLib.views import View

    cases = []
    for pose in ("upright", figure.FIGURE_POSE):
        for mask, nose in ((calibrate.UNDEFACED, 30.0), ("full", 1.0), ("lips_left", 1.0), ("nose_left", 9.0)):
            found = case(mask, 0.0, nose=nose, pose=pose)
            found.views = [View("front", "skin", 0.0, 0.0, np.full((24, 24, 3), 90, np.uint8))]
            cases.append(found)
    thresholds = {"detectors": {}, "landmarks": {}, "residual": {"nose": {"protrusion_mm": 5.0}}}
    rows = figure.calibration_rows(cases, thresholds)
    assert [(r["title"], r["verdict"]) for r in rows] == [
        (f"phantom seed 1, {figure.FIGURE_POSE}, undefaced", "REVIEW"),
        (f"phantom seed 1, {figure.FIGURE_POSE}, full mask", "PASS"),
        (f"phantom seed 1, {figure.FIGURE_POSE}, nose left mask", "REVIEW"),
    ]
    assert "region nose" in rows[2]["reasons"][0]
    png = figure.save_calibration_figure(cases, thresholds, str(tmp_path / "figure.png"))
    assert (tmp_path / "figure.png").stat().st_size > 1000 and png.endswith("figure.png")


def test_the_issue_pose_is_in_the_calibration_set_and_poses_reach_20_degrees_about_each_axis():
    assert calibrate.POSES["chin down 15 + roll 8"] == (15.0, 8.0, 0.0)
    for axis in range(3):
        assert {p[axis] for p in calibrate.POSES.values()} >= {-20.0, 20.0}
    specs = calibrate.phantom_specs((11,), calibrate.QUICK_POSES)
    assert [s.pose_deg for _, s in specs] == [(0.0, 0.0, 0.0), (15.0, 8.0, 0.0)]


# ------------------------------------------------------------------ the real calibration, on a small set
@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """`ctadeface eval calibrate --quick` run as a user runs it, into a temporary thresholds file."""
    folder = tmp_path_factory.mktemp("calibration")
    output, figure = folder / "thresholds.json", folder / "figure.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "CTADefaceLib.cli",
            "eval",
            "calibrate",
            "--quick",
            "--size",
            str(RENDER),
            "-o",
            str(output),
            "--figure",
            str(figure),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=3000,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text()), done.stdout, figure


@pytest.mark.slow
def test_quick_calibration_separates_every_case_and_says_how_it_was_made(calibrated):
    thresholds, stdout, figure = calibrated
    print(stdout)
    table = thresholds["calibration"]["table"]
    assert {r["pose"] for r in table} == {"upright", "chin down 15 + roll 8", "all"}
    for row in table:
        assert row["sensitivity"] == 1.0 and row["specificity"] == 1.0, row
    assert table[-1]["partial_masks"] >= 8 and table[-1]["full_masks"] == 2
    assert table[-1]["undefaced"] == table[-1]["undefaced_caught"] == 2  # the undefaced phantoms never PASS
    assert thresholds["calibration"]["command"].startswith("ctadeface eval calibrate --quick")
    assert thresholds["calibration"]["date"]
    assert "sensitivity" in stdout and "100%" in stdout
    assert 10_000 < figure.stat().st_size < 500_000  # three cases: undefaced, full mask, nose left


@pytest.mark.slow
def test_check_with_calibrated_thresholds_gives_the_known_answers(calibrated):
    """A full mask PASSes, each partial mask is REVIEW with a reason, and the undefaced phantom in the
    holder pose (15 degrees chin down, 8 degrees roll) is REVIEW."""
    import dataclasses

    from CTADefaceEvalLib.verdict import check_case, estimate_face_frame, load_thresholds
    from CTADefaceLib.fill import apply_mask, fill_value
    from CTADefaceLib.synthetic.partial_masks import partial_mask_images
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    # The bundled thresholds (2 identities x 8 poses): the quick calibration's one identity in two poses is too
    # small a set for a phantom it has not seen (MediaPipe scored 0.71 on seed 21's full mask against its 0.67).
    thresholds = load_thresholds(None)
    assert calibrated[0]["detectors"]  # the quick calibration ran and chose thresholds
    spec = dataclasses.replace(PhantomSpec.random(21, size="medium"), pose_deg=(15.0, 8.0, 0.0))  # not calibrated on
    phantom = make_phantom(spec)
    frame = estimate_face_frame(phantom.image)
    value = fill_value(phantom.image, "p10")
    undefaced = check_case(phantom.image, phantom.image, thresholds=thresholds, frame=frame, size=RENDER)
    assert undefaced.verdict == "REVIEW" and undefaced.verifiable, undefaced.reasons
    for name, mask in partial_mask_images(phantom).items():
        result = check_case(
            apply_mask(phantom.image, mask, value), phantom.image, thresholds=thresholds, frame=frame, size=RENDER
        )
        print(name, result.verdict, result.reasons)
        if name == "full":
            assert result.verdict == "PASS" and result.verifiable, result.reasons
        else:
            assert result.verdict == "REVIEW" and result.reasons, name
