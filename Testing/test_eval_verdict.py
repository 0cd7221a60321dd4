"""verdict.py: one PASS/REVIEW verdict with reasons, and the check of the check (no face in the original's views:
REVIEW "cannot verify", never PASS)."""

import json

import pytest

pytest.importorskip("vtk")
pytest.importorskip("facenet_pytorch")

from CTADefaceEvalLib import verdict  # noqa: E402
from CTADefaceEvalLib.detectors import FaceFinding  # noqa: E402

FACE = {"left_eye": (60, 40), "right_eye": (30, 40), "nose": (45, 55), "mouth_left": (55, 70), "mouth_right": (35, 70)}
THRESHOLDS = {
    "detectors": {"mtcnn": 0.8},
    "landmarks": {"mtcnn": 0.6},
    "residual": {"nose": {"protrusion_mm": 5.0, "tissue_ml": 2.0}, "lips": {"protrusion_mm": 4.0}},
    "default_detector": 0.9,
    "source": "test",
}


def finding(probability, landmarks=None, detector="mtcnn"):
    return FaceFinding(detector=detector, probability=probability, box=[10, 20, 80, 90], landmarks=landmarks or {})


def test_landmarks_count_only_in_a_face_layout():
    assert verdict.located_landmarks(finding(0.7, FACE)) == [
        "left_eye",
        "right_eye",
        "nose",
        "mouth_left",
        "mouth_right",
    ]
    upside_down = {k: (x, 100 - y) for k, (x, y) in FACE.items()}
    assert verdict.located_landmarks(finding(0.7, upside_down)) is None
    one_eye = {k: v for k, v in FACE.items() if k != "right_eye"}
    assert verdict.located_landmarks(finding(0.7, one_eye)) is None
    nose_outside_the_eyes = dict(FACE, nose=(90, 55))
    assert verdict.located_landmarks(finding(0.7, nose_outside_the_eyes)) is None


def test_detection_reasons_name_the_view_the_detector_the_landmarks_and_the_number():
    findings = {
        "front/ct-muscle": [finding(0.85)],  # box above 0.8
        "left30/skin": [finding(0.7, FACE)],  # below the box threshold, landmarks located above 0.6
        "right30/skin": [finding(0.7, {})],  # neither
        "above20/ct-muscle": [finding(0.95, detector="other")],  # uncalibrated detector: default 0.9
    }
    reasons = verdict.detection_reasons(findings, THRESHOLDS)
    assert len(reasons) == 3, reasons
    assert "front/ct-muscle" in reasons[0] and "mtcnn" in reasons[0] and "0.850" in reasons[0]
    assert "left30/skin" in reasons[1] and "left_eye" in reasons[1] and "nose" in reasons[1]
    assert "above20/ct-muscle" in reasons[2] and "other" in reasons[2] and "0.900" in reasons[2]


def test_residual_reasons_name_the_region_the_measure_and_the_limit():
    residual = {"nose": {"protrusion_mm": 7.25, "tissue_ml": 1.0, "note": "x"}, "lips": {"protrusion_mm": 3.9}}
    reasons = verdict.residual_reasons(residual, THRESHOLDS)
    assert reasons == ["region nose: soft tissue left, protrusion_mm = 7.2 mm (limit 5.0 mm)"]
    assert verdict.residual_reasons({}, THRESHOLDS) == []
    unplaced = {"nose": None, "lips": None, "anchor": {"method": "none", "reason": "no front teeth found"}}
    assert verdict.residual_reasons(unplaced, THRESHOLDS) == [
        "residual tissue cannot be measured: no front teeth found"
    ]


def test_a_face_in_the_original_is_seen_by_the_checks_own_calibrated_rule():
    """MTCNN at 0.86 alone does not show a face in the original; a detector above its calibrated threshold does (the
    rule that flags a defaced image), landmarks in a face's layout do, and the score-less face mesh never does."""
    thresholds = dict(THRESHOLDS, detectors={"mtcnn": 0.8, "dlib-hog": 0.66, "mediapipe-mesh": 0.5})
    quiet = {"front/skin": [finding(0.86, detector="mtcnn")], "left-30/skin": [finding(0.6, detector="dlib-hog")]}
    assert not verdict.original_face_seen(quiet)  # the fixed 0.9 rule alone
    assert verdict.original_face_seen(quiet, thresholds)  # mtcnn 0.86 > its calibrated 0.8
    assert not verdict.original_face_seen(quiet, dict(thresholds, detectors={"mtcnn": 0.95, "dlib-hog": 0.66}))
    landmarks = {"front/skin": [finding(0.65, FACE, detector="mtcnn")]}  # above mtcnn's landmark threshold 0.6
    assert verdict.original_face_seen(landmarks, dict(thresholds, detectors={"mtcnn": 0.95}))
    mesh = {"front/skin": [finding(1.0, FACE, detector="mediapipe-mesh")]}
    assert not verdict.original_face_seen(mesh, thresholds)
    assert verdict.original_face_seen({"front/skin": [finding(0.93, detector="other")]})


def test_thresholds_file_errors_are_one_sentence(tmp_path):
    from CTADefaceLib.errors import DefaceError

    with pytest.raises(DefaceError, match="does not exist"):
        verdict.load_thresholds(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DefaceError, match="cannot be used"):
        verdict.load_thresholds(str(bad))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(dict(THRESHOLDS, calibration={"date": "2026-01-02"})))
    loaded = verdict.load_thresholds(str(good))
    assert loaded["detectors"] == {"mtcnn": 0.8} and "2026-01-02" in loaded["source"] or loaded["source"] == "test"


def test_bundled_thresholds_say_how_they_were_made():
    data = json.load(open(verdict.THRESHOLDS_FILE))
    calibration = data["calibration"]
    assert calibration["command"].startswith("ctadeface eval calibrate") and calibration["date"]
    assert data["residual"] and data["detectors"]
    assert all(row["sensitivity"] == 1.0 and row["specificity"] == 1.0 for row in calibration["table"])


@pytest.mark.slow
def test_no_face_in_the_original_means_cannot_verify_never_pass():
    """A head-sized ball of soft tissue in a bone shell has no face: the check cannot show that it would see one, so even an image
    with nothing face-like gets REVIEW with the reason, and the result says it was not verifiable."""
    from builders import make_ct

    block = make_ct(size=(80, 80, 80), spacing=(2.5, 2.5, 2.5), body="ellipsoid")  # a skull-like ball
    result = verdict.check_case(block, block, thresholds=THRESHOLDS, size=160)
    assert result.verdict == "REVIEW" and not result.verifiable
    assert result.reasons[0] == "cannot verify: no face found in the original's views"
    assert result.original_views and all(v.rgb.shape[:2] == (160, 160) for v in result.original_views)
    as_dict = result.to_dict()
    json.dumps(as_dict)  # the sidecar's JSON
    assert as_dict["check"] == "REVIEW" and as_dict["verifiable"] is False


@pytest.mark.slow
def test_without_the_original_the_result_says_it_is_not_verified():
    from builders import make_ct

    block = make_ct(size=(80, 80, 80), spacing=(2.5, 2.5, 2.5), body="ellipsoid")  # a skull-like ball
    result = verdict.check_case(block, thresholds=THRESHOLDS, size=160)
    assert not result.verifiable and any("not verified" in n for n in result.notes)
    # no teeth in a ball: the residual regions cannot be placed, and that is said, as a reason for review
    assert result.residual["nose"] is None and result.verdict == "REVIEW"
    assert result.reasons[-1].startswith("residual tissue cannot be measured")


@pytest.mark.slow
def test_eval_compare_gives_every_method_cannot_verify_when_the_original_shows_no_face(tmp_path, monkeypatch):
    """`eval compare` checks each method against the original: its frame and views are found once per case, and
    when no face is found in them no method can PASS."""
    from builders import make_ct
    from CTADefaceEvalLib.cohort import evaluate_case

    rendered = []
    render_views = verdict.render_views
    monkeypatch.setattr(
        verdict, "render_views", lambda image, **kw: rendered.append(image) or render_views(image, **kw)
    )
    ball = make_ct(size=(80, 80, 80), spacing=(2.5, 2.5, 2.5), body="ellipsoid")  # a skull-like ball
    other = make_ct(size=(80, 80, 80), spacing=(2.5, 2.5, 2.5), body="ellipsoid", seed=1)
    thresholds = dict(THRESHOLDS, calibration={"render_size": 96})
    case = {"case": "ball", "images": {"original": ball, "a": other, "b": ball}}
    rows = evaluate_case(case, ["original", "a", "b"], str(tmp_path), size=96, check=thresholds)
    assert [r["method"] for r in rows] == ["original", "a", "b"]
    assert rows[0]["check_face_in_original"] is False and "check" not in rows[0]
    for row in rows[1:]:
        assert row["check"] == "REVIEW", row
        assert row["check_reasons"].startswith("cannot verify: no face found in the original's views"), row
    assert len(rendered) == 3  # the original once, then each method


@pytest.mark.slow
def test_thick_slices_are_checked_and_the_undefaced_scan_is_review():
    """A 5 mm-slice scan (coarser than the pose's 4 mm grid) is checked without a crash; the undefaced scan, tilted
    as in a head holder, is REVIEW with the views that still show a face."""
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    spec = PhantomSpec(seed=11, shape=(120, 120, 40), spacing=(2.0, 2.0, 5.0), pose_deg=(15.0, 8.0, 0.0))
    image = make_phantom(spec).image
    result = verdict.check_case(image, image, size=160)
    assert result.verdict == "REVIEW" and result.verifiable, result.reasons
    assert any(reason.startswith("view ") for reason in result.reasons), result.reasons


@pytest.mark.slow
def test_the_slicer_module_checks_several_volumes_against_one_rendering_of_the_original(tmp_path, monkeypatch):
    from builders import make_ct
    from CTADefaceEvalLib.slicer_logic import check_job

    rendered = []
    render_views = verdict.render_views
    monkeypatch.setattr(
        verdict, "render_views", lambda image, **kw: rendered.append(image) or render_views(image, **kw)
    )
    ball = make_ct(size=(80, 80, 80), spacing=(2.5, 2.5, 2.5), body="ellipsoid")  # no face: cannot verify
    frame = seen = None
    for name in ("a", "b"):
        out = check_job(ball, ball, {"name": name, "png": str(tmp_path / f"{name}.png")}, frame=frame, seen=seen)
        frame, seen = out.pop("frame"), out.pop("seen")
        assert out["check"] == "REVIEW" and out["reasons"][0].startswith("cannot verify"), out
        assert (tmp_path / f"{name}_check.png").stat().st_size > 1000
    assert len(rendered) == 3  # the original once, then each volume


def _cli(*args, timeout=900):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "CTADefaceLib.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )


@pytest.mark.slow  # a CLI start that imports torch
def test_eval_check_refuses_a_missing_thresholds_file_in_one_sentence(tmp_path):
    done = _cli("eval", "check", tmp_path / "x.nii.gz", "--thresholds", tmp_path / "none.json")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "none.json does not exist" in done.stderr


@pytest.mark.slow
def test_eval_check_prints_the_reasons_per_case_and_draws_the_views(tmp_path):
    import SimpleITK as sitk

    from builders import make_ct

    ball = tmp_path / "ball.nii.gz"
    sitk.WriteImage(make_ct(size=(80, 80, 80), spacing=(2.5, 2.5, 2.5)), str(ball))
    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps(THRESHOLDS))
    done = _cli(
        "eval",
        "check",
        ball,
        "--original",
        ball,
        "--thresholds",
        thresholds,
        "--size",
        128,
        "--figure",
        tmp_path / "f.png",
    )
    assert done.returncode == 3, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"REVIEW {ball}"
    reasons = [line.strip() for line in lines[1:]]
    # a ball has no face and no teeth: whatever the detectors make of its views, the check cannot pass it
    assert reasons and any(
        r == "- cannot verify: no face found in the original's views"
        or r.startswith("- residual tissue cannot be measured")
        for r in reasons
    ), done.stdout
    assert all(r.startswith("- ") or r.startswith("(") for r in reasons), done.stdout
    assert (tmp_path / "f.png").stat().st_size > 5000
    mismatch = _cli("eval", "check", ball, ball, "--original", ball)
    assert mismatch.returncode != 0 and "one image per IMAGE" in mismatch.stderr and "Traceback" not in mismatch.stderr


@pytest.mark.slow
def test_batch_script_report_carries_the_check(tmp_path):
    """deface_batch.py --check (inside slicer-core): each defaced case's report line is followed by its verdict and
    reasons, and the summary counts the cases to REVIEW."""
    pytest.importorskip("slicer")
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(repo, "Testing"))
    from test_batch_script_safety import RUN_AS_SLICER, SAMPLE, SCRIPT

    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps(dict(THRESHOLDS, calibration={"render_size": 128})))
    done = subprocess.run(
        [sys.executable, "-c", RUN_AS_SLICER, os.path.join(repo, "Testing"), SCRIPT, "--"]
        + [SAMPLE, "-o", str(tmp_path / "out"), "--engine", "box", "--check", str(thresholds)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=900,
    )
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("done"))
    verdict = lines[at + 1].split()
    assert verdict[:1] == ["check"] and verdict[1] in ("PASS", "REVIEW"), done.stdout
    assert done.returncode == (3 if verdict[1] == "REVIEW" else 0), done.stdout + done.stderr[-2000:]
    if verdict[1] == "REVIEW":
        assert lines[at + 2].strip() and "1 to REVIEW" in lines[-1], done.stdout
    else:
        assert "REVIEW" not in lines[-1]
