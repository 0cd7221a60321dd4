"""The face detectors of independent families (CTADefaceEvalLib.detectors) on a photograph, on empty pictures
and on CT renders of a phantom before and after defacing with its ground-truth face mask."""

import dataclasses

import numpy as np
import pytest

from CTADefaceEvalLib import detectors
from CTADefaceEvalLib.detectors import FACE_LANDMARKS, FaceFinding, available_detectors, find_faces

# The landmarks each detector gives (MediaPipe's BlazeFace: no mouth corners; dlib's 5-point model: eyes and nose).
EXPECTED_LANDMARKS = {
    "mtcnn": set(FACE_LANDMARKS),
    "mediapipe": {"left_eye", "right_eye", "nose_tip", "mouth_center"},
    "mediapipe-mesh": set(FACE_LANDMARKS),
    "dlib-hog": {"left_eye", "right_eye", "nose_tip"},
}


def _need(name):
    if name not in available_detectors():
        pytest.skip(f"{name} is not installed here ({detectors._INSTALL_HINTS[name]})")
    if name == "dlib-hog" and detectors.dlib_landmark_model() is None:
        pytest.skip("dlib's landmarks need the face-recognition-models package")


@pytest.fixture(scope="module")
def astronaut():
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()  # 512 x 512 RGB; Eileen Collins' face at about x 165-265, y 75-170


@pytest.mark.parametrize("name", detectors.DETECTORS)
def test_each_detector_finds_the_astronaut_with_landmarks_in_place(astronaut, name):
    _need(name)
    findings = find_faces(astronaut, [name])
    assert findings and all(f.detector == name for f in findings)
    best = findings[0]
    assert best.probability > 0.5
    x0, y0, x1, y1 = best.box
    assert 140 < (x0 + x1) / 2 < 290 and 60 < (y0 + y1) / 2 < 190  # her face, not her suit or the flag
    assert EXPECTED_LANDMARKS[name] <= set(best.landmarks)
    lm = best.landmarks
    # picture-side names: the picture's left eye is left of the right one; eyes above the nose, nose above the mouth
    assert lm["left_eye"][0] < lm["right_eye"][0]
    assert max(lm["left_eye"][1], lm["right_eye"][1]) < lm["nose_tip"][1]
    for point in lm.values():
        assert x0 - 15 <= point[0] <= x1 + 15 and y0 - 15 <= point[1] <= y1 + 15
    if "mouth_left" in lm:
        assert lm["mouth_left"][0] < lm["mouth_right"][0]
        assert lm["nose_tip"][1] < min(lm["mouth_left"][1], lm["mouth_right"][1])
    assert best.all_landmarks == (set(FACE_LANDMARKS) <= set(lm))


@pytest.mark.parametrize("name", detectors.DETECTORS)
def test_each_detector_finds_nothing_in_blank_and_noise_pictures(name):
    if name not in available_detectors():
        pytest.skip(f"{name} is not installed here")
    rng = np.random.default_rng(13)
    for picture in (
        np.zeros((512, 512, 3), np.uint8),
        np.full((480, 640, 3), 200, np.uint8),
        rng.integers(0, 256, (512, 512, 3), dtype=np.uint8),
    ):
        assert find_faces(picture, [name]) == []


def test_find_faces_runs_every_available_detector_best_first(astronaut):
    names = available_detectors()
    if len(names) < 2:
        pytest.skip("only one face detector is installed here")
    findings = find_faces(astronaut)
    assert {f.detector for f in findings} == set(names)  # each one finds her
    order = [f.detector for f in findings]
    assert order == sorted(order, key=names.index)  # grouped in available_detectors() order
    for name in names:
        probabilities = [f.probability for f in findings if f.detector == name]
        assert probabilities == sorted(probabilities, reverse=True)
    assert detectors.best_per_detector(findings)[names[0]] == findings[0]


def test_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="unknown face detector"):
        find_faces(np.zeros((64, 64, 3), np.uint8), ["haar"])


def test_a_detector_asked_for_but_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(detectors, "_package_dir", lambda name: None)  # as if mediapipe were not installed
    assert "mediapipe" not in available_detectors()
    with pytest.raises(detectors.DetectorUnavailable, match="pip install --no-deps mediapipe==0.10.14"):
        find_faces(np.zeros((64, 64, 3), np.uint8), ["mediapipe"])


def test_finding_reports_which_landmarks_it_located():
    finding = FaceFinding("x", 0.4, None, {"left_eye": (1.0, 2.0), "nose_tip": (3.0, 4.0)})
    assert finding.located() == ("left_eye", "nose_tip")
    assert not finding.all_landmarks
    full = dataclasses.replace(finding, landmarks={n: (0.0, 0.0) for n in FACE_LANDMARKS})
    assert full.all_landmarks


def test_faces_detect_face_still_gives_mtcnn_best_face(astronaut):
    pytest.importorskip("facenet_pytorch")
    from CTADefaceEvalLib.faces import detect_face

    detection = detect_face(astronaut)
    best = find_faces(astronaut, ["mtcnn"])[0]
    assert detection.probability == best.probability > 0.99
    assert detection.box == list(best.box)


@pytest.mark.slow
def test_phantom_renders_undefaced_and_defaced_with_ground_truth():
    """What each detector says about a phantom's front render before and after removing its true face mask.

    Only the undefaced render is asserted on (at least one detector finds it); the rest is printed, since which
    detector fires on a bare phantom skull is what the verdict's calibration measures, not a fixed fact.
    """
    from CTADefaceEvalLib.render import render_anterior
    from CTADefaceLib.fill import apply_mask, fill_value
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    names = available_detectors()
    if not names:
        pytest.skip("no face detector is installed")
    phantom = make_phantom(dataclasses.replace(PhantomSpec.random(4242, size="medium"), devices=()))
    defaced = apply_mask(phantom.image, phantom.face, fill_value(phantom.image, "p10"))
    results = {}
    for label, image in (("undefaced", phantom.image), ("defaced", defaced)):
        findings = find_faces(render_anterior(image, size=512), names)
        results[label] = detectors.best_per_detector(findings)
        for name in names:
            best = results[label].get(name)
            text = "nothing" if best is None else f"p={best.probability:.3f} landmarks={list(best.located())}"
            print(f"phantom {label:9s} {name:15s} {text}")
    assert results["undefaced"], "no detector found the undefaced phantom's face"


def test_draw_findings_marks_boxes_and_landmarks_without_touching_the_picture():
    pytest.importorskip("cv2")
    picture = np.zeros((100, 120, 3), np.uint8)
    finding = FaceFinding("mtcnn", 0.9, (10.0, 20.0, 60.0, 80.0), {"nose_tip": (35.0, 50.0)})
    drawn = detectors.draw_findings(picture, [finding])
    assert not picture.any()  # the input is not drawn on
    assert tuple(drawn[50, 35]) == detectors.COLOURS["mtcnn"]  # the landmark
    assert tuple(drawn[50, 10]) == detectors.COLOURS["mtcnn"]  # the box's left edge
    assert not drawn[95, 115].any()  # far from both: untouched
