"""One re-identification verdict, PASS or REVIEW, with the reasons spelled out.

`check_case(defaced, original)` combines the parts of the check:
- the face's own frame (pose.estimate_face_frame), estimated ONCE, on the original when there is one, and shared
  by both renders, so the defaced image is seen from exactly where the original's face was seen;
- several views around that front, two transfer functions (views.render_views);
- independent face detectors, with their landmarks (detectors.find_faces);
- the residual soft tissue in front of the facial skeleton, per region (residual.residual_face).

The check of the check: when the original is given, its views are rendered and searched first. If no detector
finds a face in any of them, the check has shown that it cannot see this head's face at all, so a silent defaced
render proves nothing: the verdict is REVIEW ("cannot verify"), never PASS.

REVIEW when, in any defaced view, a detector finds a face above its calibrated threshold, or locates the eyes,
the nose tip and the mouth in a face's geometry (above its calibrated landmark threshold); or when the residual
measure of any region exceeds its calibrated limit. The thresholds come from `ctadeface eval calibrate`
(calibrate.py), stored in data/check_thresholds.json with the command and date that wrote them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

# The parts built by the other modules of the check. This block is the only place that names them.
from .detectors import find_faces
from .pose import estimate_face_frame
from .residual import residual_face
from .views import DEFAULT_VIEWS, render_views

THRESHOLDS_FILE = os.path.join(os.path.dirname(__file__), "data", "check_thresholds.json")

#: Used only where no calibrated file exists (a fresh checkout before `ctadeface eval calibrate`): the paper-era
#: MTCNN threshold, and no residual limits (the residual rule is then off, which the reasons say).
FALLBACK_THRESHOLDS: dict[str, Any] = {"detectors": {}, "landmarks": {}, "residual": {}, "default_detector": 0.9}

#: The residual measures (per region) the thresholds limit; the others in residual_face's result are context.
RESIDUAL_MEASURES = ("protrusion_mm", "tissue_ml")

#: Landmark names are matched by these words, so that each detector may name its points its own way
#: (MTCNN: left_eye, right_eye, nose, mouth_left, mouth_right; face meshes: many more).
EYE, NOSE, MOUTH = "eye", "nose", "mouth"


@dataclass
class CheckResult:
    verdict: str  # "PASS" or "REVIEW"
    reasons: list[str]  # one sentence per reason for REVIEW; empty for PASS
    views: list  # views.View of the defaced image
    findings: dict  # view label -> list of detectors.FaceFinding on that view
    residual: dict | None  # residual.residual_face's per-region measures, or None
    verifiable: bool  # the original was given and a face was found in its views
    original_views: list = field(default_factory=list)
    original_findings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # facts that are no reason for REVIEW (e.g. no original given)
    thresholds_source: str = ""
    frame: Any = None  # the face frame both renders used

    def to_dict(self) -> dict:
        """JSON for the sidecar and the command line (no pictures)."""
        return {
            "check": self.verdict,
            "reasons": list(self.reasons),
            "verifiable": self.verifiable,
            "notes": list(self.notes),
            "views": [view_label(v) for v in self.views],
            "max_probability": {
                det: round(p, 4) for det, p in sorted(max_probabilities(self.findings).items(), key=lambda kv: kv[0])
            },
            "findings": {
                label: [
                    {"detector": f.detector, "probability": round(float(f.probability), 4), "box": _floats(f.box)}
                    for f in found
                ]
                for label, found in self.findings.items()
                if found
            },
            "residual": self.residual,
            "thresholds": self.thresholds_source,
            "method": "views around the face's own front (two transfer functions), independent face detectors "
            "with landmarks, and the residual soft tissue per region; thresholds calibrated on phantoms",
        }


def _floats(values):
    return None if values is None else [round(float(v), 1) for v in values]


def view_label(view) -> str:
    return f"{view.name}/{view.preset}"


def max_probabilities(findings: dict) -> dict:
    best: dict = {}
    for found in findings.values():
        for f in found:
            best[f.detector] = max(best.get(f.detector, 0.0), float(f.probability))
    return best


def load_thresholds(path: str | None = None) -> dict:
    """The calibrated thresholds (data/check_thresholds.json unless `path`); the fallback when none was written."""
    path = path or THRESHOLDS_FILE
    if not os.path.exists(path):
        if path != THRESHOLDS_FILE:
            from CTADefaceLib.errors import DefaceError

            raise DefaceError(f"The check's thresholds file {path} does not exist.")
        return dict(FALLBACK_THRESHOLDS, source="built-in fallback (not calibrated)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data.get("detectors"), dict) or not isinstance(data.get("residual"), dict):
            raise ValueError("no detectors/residual sections")
    except (OSError, ValueError) as err:
        from CTADefaceLib.errors import DefaceError

        raise DefaceError(f"The check's thresholds file {path} cannot be used ({err}).") from None
    calibration = data.get("calibration") or {}
    data.setdefault("source", f"{path} ({calibration.get('date', 'undated')})")
    return data


def located_landmarks(finding) -> list[str] | None:
    """The landmark names that show eyes, a nose tip and a mouth in a face's layout, or None.

    Layout (picture coordinates, y down): the eyes above the nose tip, the nose tip above the mouth, and the
    nose tip between the eyes horizontally. A detector that fits points to anything gives a scrambled layout on a
    bare skull; a face that is still there gives this one.
    """
    marks = finding.landmarks or {}
    eyes = [k for k in marks if EYE in k.lower()]
    noses = [k for k in marks if NOSE in k.lower()]
    mouths = [k for k in marks if MOUTH in k.lower() or "lip" in k.lower()]
    if len(eyes) < 2 or not noses or not mouths:
        return None
    eye_xy = [marks[k] for k in eyes]
    nose = marks[noses[0]]
    mouth_y = sum(marks[k][1] for k in mouths) / len(mouths)
    eye_y = max(p[1] for p in eye_xy)
    xs = [p[0] for p in eye_xy]
    if not (eye_y < nose[1] < mouth_y and min(xs) < nose[0] < max(xs)):
        return None
    return sorted(eyes) + [noses[0]] + sorted(mouths)


def _detector_threshold(thresholds: dict, detector: str) -> float:
    return float(thresholds["detectors"].get(detector, thresholds.get("default_detector", 0.9)))


def _landmark_threshold(thresholds: dict, detector: str) -> float:
    return float(thresholds.get("landmarks", {}).get(detector, _detector_threshold(thresholds, detector)))


def detection_reasons(findings: dict, thresholds: dict) -> list[str]:
    """One sentence per view and detector that still sees a face (box or landmarks) above its threshold.
    `findings`: view label -> that view's findings, in view order."""
    reasons = []
    for label, found in findings.items():
        for f in found:
            limit = _detector_threshold(thresholds, f.detector)
            if f.probability > limit:
                reasons.append(
                    f"view {label}: {f.detector} finds a face, p = {f.probability:.3f} (threshold {limit:.3f})"
                )
                continue
            marks = located_landmarks(f)
            limit = _landmark_threshold(thresholds, f.detector)
            if marks and f.probability > limit:
                reasons.append(
                    f"view {label}: {f.detector} locates {', '.join(marks)} in a face's layout, "
                    f"p = {f.probability:.3f} (landmark threshold {limit:.3f})"
                )
    return reasons


def residual_reasons(residual: dict | None, thresholds: dict) -> list[str]:
    """One sentence per region and measure above its calibrated limit; one when the regions could not be placed
    (then nothing shows that the tissue is gone, so that is a reason for review too)."""
    reasons = []
    limited = thresholds.get("residual", {})
    placed = [residual.get(region) for region in limited if region in residual] if residual else []
    if placed and all(measures is None for measures in placed):
        why = (residual.get("anchor") or {}).get("reason", "the face's regions could not be placed")
        return [f"residual tissue cannot be measured: {why}"]
    for region, limits in sorted(limited.items()):
        measured = (residual or {}).get(region) or {}
        for key, limit in sorted(limits.items()):
            value = measured.get(key)
            if isinstance(value, (int, float)) and value > float(limit):
                unit = key.rsplit("_", 1)[-1]
                reasons.append(
                    f"region {region}: soft tissue left, {key} = {value:.1f} {unit} (limit {float(limit):.1f} {unit})"
                )
    return reasons


def find_in_views(views, detectors=None) -> dict:
    return {view_label(v): find_faces(v.rgb, detectors) for v in views}


#: The original counts as "a face is seen" only for a confident finding: MediaPipe's BlazeFace gives 0.5-0.7 on a
#: featureless ball of soft tissue in a bone shell (Testing/test_eval_verdict.py), MTCNN gives 0.98-0.99 on an
#: undefaced head. Detectors without a score of their own (the face mesh reports 1.0 for anything it fits) never
#: count here.
ORIGINAL_FACE_PROBABILITY = 0.9
SCORELESS_DETECTORS = frozenset(("mediapipe-mesh",))


def original_face_seen(findings_by_view: dict, thresholds: dict | None = None) -> bool:
    """Whether any view of the original holds a confident face finding (see ORIGINAL_FACE_PROBABILITY) or, with
    `thresholds`, a finding that the check's own detection rule would flag in a defaced image (above the detector's
    calibrated threshold, or landmarks in a face's layout above its landmark threshold): then the check has shown
    that it sees this head's face. Detectors without a score of their own never count."""
    scored = {
        label: [f for f in found if f.detector not in SCORELESS_DETECTORS] for label, found in findings_by_view.items()
    }
    if any(f.probability >= ORIGINAL_FACE_PROBABILITY for found in scored.values() for f in found):
        return True
    return thresholds is not None and bool(detection_reasons(scored, thresholds))


def look_at_original(
    original, *, frame, views=DEFAULT_VIEWS, size: int = 512, presets: tuple | None = None, detectors=None
) -> tuple[list, dict]:
    """The original's views and their findings, for check_case's `seen_original` when several defaced versions of
    one original are checked (`eval compare`): the original is rendered and searched once."""
    options: dict = {"frame": frame, "views": views, "size": size}
    if presets is not None:
        options["presets"] = presets
    original_views = render_views(original, **options)
    return original_views, find_in_views(original_views, detectors)


def check_case(
    defaced,
    original=None,
    *,
    thresholds: dict | str | None = None,
    frame=None,
    views=DEFAULT_VIEWS,
    size: int | None = None,
    presets: tuple | None = None,
    detectors=None,
    seen_original: tuple | None = None,
) -> CheckResult:
    """PASS or REVIEW for one defaced image (SimpleITK), with the reasons; see the module docstring.

    `thresholds`: a dict as in data/check_thresholds.json, a path to such a file, or None for the calibrated one.
    `frame`: the face frame, when the caller has it; otherwise estimated on the original (or the defaced image).
    `views`, `size`, `presets`, `detectors`: passed to render_views / find_faces (smaller for tests); the size
    defaults to the one the thresholds were calibrated at, since a detector's probability depends on it.
    `seen_original`: look_at_original's result for `original` with the same frame, views, size and presets.
    """
    if not isinstance(thresholds, dict):
        thresholds = load_thresholds(thresholds)
    if size is None:
        size = int((thresholds.get("calibration") or {}).get("render_size", 512))
    if frame is None:
        frame = estimate_face_frame(original if original is not None else defaced)
    render_options: dict = {"frame": frame, "views": views, "size": size}
    if presets is not None:
        render_options["presets"] = presets
    reasons: list[str] = []
    notes: list[str] = []
    original_views: list = []
    original_findings: dict = {}
    verifiable = False
    if original is not None:
        if seen_original is None:
            seen_original = look_at_original(original, presets=presets, detectors=detectors, **render_options)
        original_views, original_findings = seen_original
        verifiable = original_face_seen(original_findings, thresholds)
        if not verifiable:
            reasons.append("cannot verify: no face found in the original's views")
    else:
        notes.append("not verified: no original given, so the check cannot show that it sees this head's face")
    defaced_views = render_views(defaced, **render_options)
    findings = find_in_views(defaced_views, detectors)
    reasons += detection_reasons(findings, thresholds)
    residual = residual_face(defaced, original, frame=frame)
    if thresholds.get("residual"):
        reasons += residual_reasons(residual, thresholds)
    else:
        notes.append("residual-tissue rule off: the thresholds file has no calibrated limits")
    return CheckResult(
        verdict="REVIEW" if reasons else "PASS",
        reasons=reasons,
        views=defaced_views,
        findings=findings,
        residual=residual,
        verifiable=verifiable,
        original_views=original_views,
        original_findings=original_findings,
        notes=notes,
        thresholds_source=str(thresholds.get("source", "given")),
        frame=frame,
    )
