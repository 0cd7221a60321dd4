"""Face detectors of independent families, with facial landmarks, on rendered pictures.

One detector is a single opinion; the check asks several that were built differently, so that a face one of them
misses (or a skull one of them mistakes for a face) is judged by the others too:

- ``mtcnn``: MTCNN (a cascade of three small CNNs), from `facenet-pytorch` 2.6.0, whose wheel ships the weights.
  Score: the O-Net face probability. Landmarks: both eyes, the nose tip and both mouth corners.
- ``mediapipe``: BlazeFace short-range (Google's single-shot anchor detector for faces filling much of the picture),
  from the legacy "solutions" API of `mediapipe` 0.10.14, whose wheel ships the .tflite model (later versions ship
  no models and download them: not usable here). Score: BlazeFace's. Landmarks: both eyes, the nose tip, the
  mouth centre and both ear tragions.
- ``mediapipe-mesh``: MediaPipe FaceMesh (468-point face landmark regression behind its own BlazeFace), same wheel.
  It gives no score (probability 1.0 when it fits a mesh). Landmarks: eyes (centre of the eye corners), nose tip,
  mouth corners.
- ``dlib-hog``: dlib's frontal face detector, a HOG + linear SVM (no neural network at all), built into the
  `dlib-bin` wheel (Boost licence). Score: the SVM margin mapped through a logistic function (0.5 on dlib's own
  decision boundary; not a calibrated probability; the margin itself is in ``raw_score``). Landmarks, when the
  `face-recognition-models` package is installed: dlib's 5-point shape predictor (CC0; eye corners and the base of
  the nose, reported as ``nose_tip``). dlib's 68-point predictor in the same package is NOT used: it was trained on
  iBUG 300-W, whose licence excludes commercial use.

Landmark names are as seen in the picture: ``left_eye`` is the eye on the picture's left (in an anterior view that is
the patient's right eye), ``mouth_left`` the mouth corner on the picture's left. Coordinates are pixels (x, y), with
(0, 0) the top-left corner of the picture.

A detector is available when its package and model files are installed; ``available_detectors()`` checks that
without importing anything heavy (so it can be called at any time, also after a VTK render). The models load on
first use, once per process. Import order (see render.py): torch must be imported before VTK renders through Mesa;
render.py does that itself. mediapipe and dlib were tried both before and after a VTK render in one process (and a
render after them): no crash, same pictures.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

#: The five points whose presence means a face can still be located, whatever the box probability.
FACE_LANDMARKS = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")

#: Lowest score a detector reports (MTCNN applies its own stage thresholds, 0.6/0.7/0.7).
MEDIAPIPE_MIN_SCORE = 0.5  # mediapipe's own default
DLIB_UPSAMPLE = 1  # once: finds faces down to about 40 px (the HOG window is 80 px)
DLIB_ADJUST_THRESHOLD = 0.0  # dlib's own decision boundary

# FaceMesh indices (the canonical 468-point topology): eye corners, nose tip, mouth corners. "Subject's right"
# points lie on the picture's left in a non-mirrored frontal picture.
_MESH_EYE_PICTURE_LEFT = (33, 133)
_MESH_EYE_PICTURE_RIGHT = (362, 263)
_MESH_NOSE_TIP = 1
_MESH_MOUTH_PICTURE_LEFT = 61
_MESH_MOUTH_PICTURE_RIGHT = 291

_models: dict = {}


class DetectorUnavailable(ImportError):
    """A detector that was asked for by name is not installed (the message says how to install it)."""


@dataclass(frozen=True)
class FaceFinding:
    detector: str  # "mtcnn", "mediapipe", "mediapipe-mesh", "dlib-hog"
    probability: float  # the detector's score in 0..1 (1.0 for a detector without one)
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in pixels
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)  # see FACE_LANDMARKS; {} if none
    raw_score: float | None = None  # the detector's own score where it is not a probability (dlib's SVM margin)

    def located(self, names: Sequence[str] = FACE_LANDMARKS) -> tuple[str, ...]:
        """Which of `names` this finding located."""
        return tuple(name for name in names if name in self.landmarks)

    @property
    def all_landmarks(self) -> bool:
        """True when eyes, nose tip and both mouth corners were all located (the face is not defaced)."""
        return len(self.located()) == len(FACE_LANDMARKS)


# ---- availability (no heavy imports) -------------------------------------------------------------------------


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _mediapipe_file(*parts: str) -> str | None:
    folder = _package_dir("mediapipe")
    if folder is None:
        return None
    path = os.path.join(folder, *parts)
    return path if os.path.isfile(path) else None


def _has_mediapipe_legacy(model: str) -> bool:
    return (
        _mediapipe_file("python", "solutions", "face_detection.py") is not None
        and _mediapipe_file("modules", model.split("/")[0], model.split("/")[1]) is not None
    )


def dlib_landmark_model() -> str | None:
    """Path of dlib's 5-point shape predictor inside `face-recognition-models`, or None (its __init__ is not
    imported: it needs pkg_resources, which recent setuptools no longer has)."""
    folder = _package_dir("face_recognition_models")
    if folder is None:
        return None
    path = os.path.join(folder, "models", "shape_predictor_5_face_landmarks.dat")
    return path if os.path.isfile(path) else None


_INSTALL_HINTS = {
    "mtcnn": "pip install --no-deps facenet-pytorch==2.6.0",
    "mediapipe": "pip install --no-deps mediapipe==0.10.14 'protobuf>=4.25.3,<5' absl-py attrs flatbuffers",
    "mediapipe-mesh": "pip install --no-deps mediapipe==0.10.14 'protobuf>=4.25.3,<5' absl-py attrs flatbuffers",
    "dlib-hog": "pip install dlib-bin (and face-recognition-models for its landmarks)",
}


def _installed(name: str) -> bool:
    if name == "mtcnn":
        return importlib.util.find_spec("facenet_pytorch") is not None
    if name == "mediapipe":
        return _has_mediapipe_legacy("face_detection/face_detection_short_range.tflite")
    if name == "mediapipe-mesh":
        return _has_mediapipe_legacy("face_landmark/face_landmark.tflite")
    if name == "dlib-hog":
        return importlib.util.find_spec("dlib") is not None
    return False


def available_detectors() -> list[str]:
    """Names of the detectors installed here, in the order `find_faces` runs them."""
    return [name for name in _FINDERS if _installed(name)]


# ---- pictures ---------------------------------------------------------------------------------------------------


def as_rgb(picture):
    """H x W x 3 uint8, C-contiguous, from a grey, RGB or RGBA array (floats in 0..1 or 0..255)."""
    import numpy as np

    array = np.asarray(picture)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype != np.uint8:
        array = np.clip(array * (255.0 if array.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def _point(xy) -> tuple[float, float]:
    return (float(xy[0]), float(xy[1]))


def _mean(*points) -> tuple[float, float]:
    return (sum(float(p[0]) for p in points) / len(points), sum(float(p[1]) for p in points) / len(points))


# ---- MTCNN -------------------------------------------------------------------------------------------------------


def _mtcnn():
    if "mtcnn" not in _models:
        import torch  # noqa: F401  (before facenet_pytorch, see render.py)
        from facenet_pytorch import MTCNN

        _models["mtcnn"] = MTCNN(keep_all=True, device="cpu")
    return _models["mtcnn"]


def _find_mtcnn(rgb) -> list[FaceFinding]:
    import numpy as np

    boxes, probs, points = _mtcnn().detect(rgb, landmarks=True)
    if boxes is None or probs is None or len(probs) == 0 or probs[0] is None:
        return []
    names = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")  # MTCNN's own order, picture sides
    findings = []
    for box, probability, five in zip(boxes, probs, points):
        landmarks = {} if five is None else {n: _point(p) for n, p in zip(names, np.asarray(five, dtype=float))}
        box = tuple(float(v) for v in np.asarray(box, dtype=float)[:4])
        findings.append(FaceFinding("mtcnn", float(probability), box, landmarks))  # type: ignore[arg-type]
    return findings


# ---- MediaPipe (BlazeFace and FaceMesh) --------------------------------------------------------------------------


def _mediapipe_solutions():
    try:
        from mediapipe.python.solutions import face_detection, face_mesh
    except Exception as error:  # missing, a version without the legacy solutions, or protobuf >= 5
        raise DetectorUnavailable(
            f"MediaPipe's face detector cannot be loaded ({error}); install it with: {_INSTALL_HINTS['mediapipe']}"
        ) from error
    return face_detection, face_mesh


def _blazeface():
    if "mediapipe" not in _models:
        face_detection, _ = _mediapipe_solutions()
        _models["mediapipe"] = face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=MEDIAPIPE_MIN_SCORE
        )
    return _models["mediapipe"]


def _facemesh():
    if "mediapipe-mesh" not in _models:
        _, face_mesh = _mediapipe_solutions()
        _models["mediapipe-mesh"] = face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=2, min_detection_confidence=MEDIAPIPE_MIN_SCORE
        )
    return _models["mediapipe-mesh"]


def _find_mediapipe(rgb) -> list[FaceFinding]:
    height, width = rgb.shape[:2]
    with warnings.catch_warnings():  # protobuf 4.25 warns that mediapipe 0.10.14 uses a deprecated call
        warnings.simplefilter("ignore", UserWarning)
        result = _blazeface().process(rgb)
    # BlazeFace's keypoints in its own order: the subject's right eye, left eye, nose tip, mouth centre, right ear
    # tragion, left ear tragion; the subject's right is the picture's left.
    names = ("left_eye", "right_eye", "nose_tip", "mouth_center", "left_ear", "right_ear")
    findings = []
    for detection in result.detections or []:
        location = detection.location_data
        rel = location.relative_bounding_box
        box = (rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width, (rel.ymin + rel.height) * height)
        landmarks = {n: (k.x * width, k.y * height) for n, k in zip(names, location.relative_keypoints)}
        score = float(detection.score[0]) if len(detection.score) else 1.0
        findings.append(FaceFinding("mediapipe", score, tuple(float(v) for v in box), landmarks))  # type: ignore[arg-type]
    return findings


def _find_mediapipe_mesh(rgb) -> list[FaceFinding]:
    height, width = rgb.shape[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = _facemesh().process(rgb)
    findings = []
    for face in result.multi_face_landmarks or []:
        points = [(p.x * width, p.y * height) for p in face.landmark]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        landmarks = {
            "left_eye": _mean(*(points[i] for i in _MESH_EYE_PICTURE_LEFT)),
            "right_eye": _mean(*(points[i] for i in _MESH_EYE_PICTURE_RIGHT)),
            "nose_tip": points[_MESH_NOSE_TIP],
            "mouth_left": points[_MESH_MOUTH_PICTURE_LEFT],
            "mouth_right": points[_MESH_MOUTH_PICTURE_RIGHT],
        }
        box = (min(xs), min(ys), max(xs), max(ys))
        findings.append(FaceFinding("mediapipe-mesh", 1.0, box, landmarks))
    return findings


# ---- dlib HOG ----------------------------------------------------------------------------------------------------


def _dlib():
    if "dlib-hog" not in _models:
        try:
            import dlib
        except Exception as error:
            raise DetectorUnavailable(
                f"dlib cannot be loaded ({error}); install it with: {_INSTALL_HINTS['dlib-hog']}"
            ) from error
        path = dlib_landmark_model()
        _models["dlib-hog"] = (dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(path) if path else None)
    return _models["dlib-hog"]


def _find_dlib_hog(rgb) -> list[FaceFinding]:
    dlib, detector, predictor = _dlib()
    rects, scores, _ = detector.run(rgb, DLIB_UPSAMPLE, DLIB_ADJUST_THRESHOLD)
    findings = []
    for rect, score in zip(rects, scores):
        landmarks = {}
        if predictor is not None:
            # The 5-point model: two corners of the picture-right eye, two of the picture-left eye, the nose base.
            parts = [(p.x, p.y) for p in predictor(rgb, rect).parts()]
            landmarks = {
                "left_eye": _mean(parts[2], parts[3]),
                "right_eye": _mean(parts[0], parts[1]),
                "nose_tip": _point(parts[4]),
            }
        box = (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
        probability = 1.0 / (1.0 + math.exp(-float(score)))
        findings.append(FaceFinding("dlib-hog", probability, box, landmarks, raw_score=float(score)))
    return findings


_FINDERS: dict[str, Callable] = {
    "mtcnn": _find_mtcnn,
    "mediapipe": _find_mediapipe,
    "mediapipe-mesh": _find_mediapipe_mesh,
    "dlib-hog": _find_dlib_hog,
}

#: Every detector this module knows, installed or not.
DETECTORS = tuple(_FINDERS)


def find_faces(rgb, detectors: Sequence[str] | None = None) -> list[FaceFinding]:
    """All faces every detector finds in an RGB picture (H x W x 3), each detector's best first.

    `detectors`: names from DETECTORS; None = every available one. A name that is unknown raises ValueError; one
    that is asked for by name but not installed raises DetectorUnavailable (a check must not silently run fewer
    detectors than it was told to).
    """
    names = available_detectors() if detectors is None else list(detectors)
    unknown = [name for name in names if name not in _FINDERS]
    if unknown:
        raise ValueError(f"unknown face detector(s) {unknown}; known: {list(DETECTORS)}")
    picture = as_rgb(rgb)
    findings: list[FaceFinding] = []
    for name in names:
        if not _installed(name):
            raise DetectorUnavailable(f"the face detector {name!r} is not installed: {_INSTALL_HINTS[name]}")
        found = _FINDERS[name](picture)
        findings.extend(sorted(found, key=lambda f: f.probability, reverse=True))
    return findings


def best_per_detector(findings: Sequence[FaceFinding]) -> dict[str, FaceFinding]:
    """The most probable finding of each detector that found something."""
    best: dict[str, FaceFinding] = {}
    for finding in findings:
        if finding.detector not in best or finding.probability > best[finding.detector].probability:
            best[finding.detector] = finding
    return best


#: Drawing colours per detector (RGB).
COLOURS = {
    "mtcnn": (255, 64, 64),
    "mediapipe": (64, 160, 255),
    "mediapipe-mesh": (64, 255, 128),
    "dlib-hog": (255, 200, 0),
}


def draw_findings(rgb, findings: Sequence[FaceFinding]):
    """A copy of the picture with each finding's box, landmarks and detector/score drawn (for reports and the
    module's view), one colour per detector."""
    import cv2

    canvas = as_rgb(rgb).copy()
    for finding in findings:
        colour = COLOURS.get(finding.detector, (255, 255, 255))
        if finding.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in finding.box)
            cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 2)
            label = f"{finding.detector} {finding.probability:.2f}"
            cv2.putText(canvas, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
        for x, y in finding.landmarks.values():
            cv2.circle(canvas, (int(round(x)), int(round(y))), 3, colour, -1)
    return canvas
