"""Calibrate the check's thresholds on phantoms whose face is known, and say how well they separate.

`ctadeface eval calibrate` (commands.py) runs `calibrate()`:
1. phantoms (CTADefaceLib.synthetic.phantom) for several seeds, each in several poses: upright, tilted by 20 degrees
   about each axis either way, and a head-holder pose common in CTA (15 degrees chin down, 8 degrees roll); the field of
   view, the orientation (LPS/RAS) and the devices are what the generator draws for the seed;
2. each phantom defaced with the full ground-truth face mask (must PASS) and with each partial mask, which leaves
   the nose, the lips, the eyes or the left half of the face in place (must be caught: REVIEW); the undefaced
   phantom itself is a case too (must be REVIEW: a check that PASSes an undefaced scan is worse than none);
3. the parts of the check measured on every case (verdict.py: the same frame, views, detectors and residual);
4. thresholds that pass every full mask and catch every partial one, with a margin (`choose_thresholds`);
5. the table: sensitivity (partials caught), undefaced phantoms caught, and specificity (full masks passed) per
   pose, with those thresholds.

Everything is seeded, so anyone gets the same numbers by rerunning the command printed in the thresholds file.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import Any

from .verdict import RESIDUAL_MEASURES

log = logging.getLogger(__name__)

#: (rx, ry, rz) degrees about the patient's L, P and S axes (phantom.rotation). +rx turns the face to the feet.
POSES: dict[str, tuple] = {
    "upright": (0.0, 0.0, 0.0),
    "chin down 20": (20.0, 0.0, 0.0),
    "chin up 20": (-20.0, 0.0, 0.0),
    "roll +20": (0.0, 20.0, 0.0),
    "roll -20": (0.0, -20.0, 0.0),
    "yaw +20": (0.0, 0.0, 20.0),
    "yaw -20": (0.0, 0.0, -20.0),
    "chin down 15 + roll 8": (15.0, 8.0, 0.0),  # a head-holder pose common in CTA
}
QUICK_POSES = ("upright", "chin down 15 + roll 8")
SEEDS = (11, 12)
QUICK_SEEDS = (11,)

#: Which residual regions a partial mask leaves, to place each limit between the full masks and those partials.
REGIONS_LEFT = {"nose_left": ("nose",), "lips_left": ("lips",), "eyes_left": ("eyes",)}

#: The case whose "mask" removes nothing: the original itself, checked against itself. It must be REVIEW; it takes
#: no part in choosing the thresholds (the partial masks bound them), only in the table.
UNDEFACED = "undefaced"

DETECTOR_MARGIN = 0.05  # above the highest full-mask probability
DETECTOR_FLOOR = 0.5  # a detector's own "not a face" level: a threshold is never below it
RESIDUAL_MARGIN = 0.25  # relative margin above the full masks where no partial mask bounds the limit from above
#: ... and at least this much above them, absolute: the measures step by about a voxel, so a limit a fraction of a
#: voxel above the calibration's full masks (0.001 mm of chin when they all had none) fails complete masks of other
#: phantoms on one voxel of tissue. Only limits no partial mask bounds get it.
RESIDUAL_FLOOR = {"protrusion_mm": 2.0, "tissue_ml": 0.5}


@dataclasses.dataclass
class CaseMeasure:
    """What the check measured on one defaced phantom."""

    seed: int
    pose: str
    mask: str  # "full", a partial mask's name, or UNDEFACED
    findings: dict  # view label -> findings
    residual: dict
    verifiable: bool
    views: list = dataclasses.field(default_factory=list)
    original_findings: dict | None = None  # the original's findings: whether a face is seen there depends on thresholds

    @property
    def expected(self) -> str:
        return "PASS" if self.mask == "full" else "REVIEW"


def phantom_specs(seeds, poses, size: str = "medium") -> list:
    """One PhantomSpec per seed and pose: the generator's field of view, orientation and devices for the seed."""
    from CTADefaceLib.synthetic.phantom import PhantomSpec

    specs = []
    for seed in seeds:
        base = PhantomSpec.random(seed, size=size)
        for name in poses:
            specs.append((name, dataclasses.replace(base, pose_deg=POSES[name])))
    return specs


def measure(specs, *, size: int = 256, keep_views: bool = False) -> list[CaseMeasure]:
    """Deface each phantom with each mask and measure the check's parts (one frame per phantom, from the original)."""
    from CTADefaceLib.fill import apply_mask, fill_value
    from CTADefaceLib.synthetic.partial_masks import partial_mask_images
    from CTADefaceLib.synthetic.phantom import make_phantom

    from . import verdict

    cases = []
    for pose, spec in specs:
        phantom = make_phantom(spec)
        frame = verdict.estimate_face_frame(phantom.image)
        original_views = verdict.render_views(phantom.image, frame=frame, size=size)
        original_findings = verdict.find_in_views(original_views)
        verifiable = verdict.original_face_seen(original_findings)
        cases.append(
            CaseMeasure(
                seed=spec.seed,
                pose=pose,
                mask=UNDEFACED,
                findings=original_findings,
                residual=verdict.residual_face(phantom.image, phantom.image, frame=frame),
                verifiable=verifiable,
                views=original_views if keep_views else [],
                original_findings=original_findings,
            )
        )
        value = fill_value(phantom.image, "p10")
        for name, mask in partial_mask_images(phantom).items():
            defaced = apply_mask(phantom.image, mask, value)
            views = verdict.render_views(defaced, frame=frame, size=size)
            cases.append(
                CaseMeasure(
                    seed=spec.seed,
                    pose=pose,
                    mask=name,
                    findings=verdict.find_in_views(views),
                    residual=verdict.residual_face(defaced, phantom.image, frame=frame),
                    verifiable=verifiable,
                    views=views if keep_views else [],
                    original_findings=original_findings,
                )
            )
            log.info("%s seed %d %s: measured", pose, spec.seed, name)
    return cases


def _numeric(measures) -> dict:
    """The calibrated measures of one region (verdict.RESIDUAL_MEASURES) that were measured."""
    if not isinstance(measures, dict):
        return {}
    return {k: float(measures[k]) for k in RESIDUAL_MEASURES if isinstance(measures.get(k), (int, float))}


def _max_probability(case: CaseMeasure, detector: str, landmarks: bool) -> float:
    from .verdict import located_landmarks

    best = 0.0
    for found in case.findings.values():
        for f in found:
            if f.detector == detector and (not landmarks or located_landmarks(f)):
                best = max(best, float(f.probability))
    return best


def choose_thresholds(cases: list[CaseMeasure]) -> dict:
    """Thresholds that pass every full mask and catch the partials, each with a margin.

    Detectors: above the highest probability any full-mask view gave (plus DETECTOR_MARGIN, never below
    DETECTOR_FLOOR); a detector whose full-mask views reach 1 cannot tell them apart and gets 1 (off).
    Residual, per region and measure: in the middle of the gap between the highest full-mask value and the lowest
    value of the partial masks that leave that region; without such a gap (or without such partials), RESIDUAL_MARGIN
    above the full masks and at least RESIDUAL_FLOOR above them, so that every full mask still passes and a voxel
    more of tissue on another phantom does not fail a complete mask.
    """
    full = [c for c in cases if c.mask == "full"]
    partial = [c for c in cases if c.mask not in ("full", UNDEFACED)]
    detectors = sorted({f.detector for c in cases for found in c.findings.values() for f in found})
    thresholds: dict[str, Any] = {"detectors": {}, "landmarks": {}, "residual": {}, "default_detector": 1.0}
    for det in detectors:
        for section, landmarks in (("detectors", False), ("landmarks", True)):
            top = max((_max_probability(c, det, landmarks) for c in full), default=0.0)
            thresholds[section][det] = round(min(1.0, max(DETECTOR_FLOOR, top + DETECTOR_MARGIN)), 4)
    regions = sorted({r for c in cases for r, m in (c.residual or {}).items() if _numeric(m)})
    for region in regions:
        keys = sorted({k for c in cases for k in _numeric(c.residual.get(region))})
        limits = {}
        for key in keys:
            top = max((_numeric(c.residual.get(region)).get(key, 0.0) for c in full), default=0.0)
            left = [
                _numeric(c.residual.get(region)).get(key) for c in partial if region in REGIONS_LEFT.get(c.mask, ())
            ]
            left = [v for v in left if v is not None]
            if left and min(left) > top:
                limits[key] = round((top + min(left)) / 2, 3)
            else:
                limits[key] = round(max(top * (1 + RESIDUAL_MARGIN) + 1e-3, top + RESIDUAL_FLOOR.get(key, 0.0)), 3)
        thresholds["residual"][region] = limits
    return thresholds


def case_verdict(case: CaseMeasure, thresholds: dict) -> tuple[str, list[str]]:
    """The verdict check_case would give this case with these thresholds (same rules, on the stored measures)."""
    from .verdict import detection_reasons, original_face_seen, residual_reasons

    verifiable = case.verifiable
    if case.original_findings is not None:
        verifiable = original_face_seen(case.original_findings, thresholds)
    reasons = [] if verifiable else ["cannot verify: no face found in the original's views"]
    reasons += detection_reasons(case.findings, thresholds) + residual_reasons(case.residual, thresholds)
    return ("REVIEW" if reasons else "PASS"), reasons


def table(cases: list[CaseMeasure], thresholds: dict) -> list[dict]:
    """Per pose, then all: partials caught / partials (sensitivity), undefaced phantoms caught / undefaced phantoms,
    full masks passed / full masks (specificity)."""
    rows = []
    poses = list(dict.fromkeys(c.pose for c in cases))
    for pose in poses + ["all"]:
        group = [c for c in cases if pose in ("all", c.pose)]
        verdicts = [(c, case_verdict(c, thresholds)[0]) for c in group]
        partials = [v for c, v in verdicts if c.mask not in ("full", UNDEFACED)]
        undefaced = [v for c, v in verdicts if c.mask == UNDEFACED]
        fulls = [v for c, v in verdicts if c.mask == "full"]
        caught = sum(v == "REVIEW" for v in partials)
        passed = sum(v == "PASS" for v in fulls)
        rows.append(
            {
                "pose": pose,
                "partial_masks": len(partials),
                "caught": caught,
                "sensitivity": caught / len(partials) if partials else None,
                "undefaced": len(undefaced),
                "undefaced_caught": sum(v == "REVIEW" for v in undefaced),
                "full_masks": len(fulls),
                "passed": passed,
                "specificity": passed / len(fulls) if fulls else None,
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'pose':<24} {'sensitivity':>18} {'undefaced caught':>17} {'specificity':>18}"]
    for r in rows:
        sens = f"{r['caught']}/{r['partial_masks']} = {100 * (r['sensitivity'] or 0):.0f}%"
        undefaced = f"{r.get('undefaced_caught', 0)}/{r.get('undefaced', 0)}"
        spec = f"{r['passed']}/{r['full_masks']} = {100 * (r['specificity'] or 0):.0f}%"
        lines.append(f"{r['pose']:<24} {sens:>18} {undefaced:>17} {spec:>18}")
    return "\n".join(lines)


def calibrate(
    *, quick: bool = False, seeds=None, poses=None, size: int = 256, phantom_size: str = "medium", command: str = ""
) -> tuple[dict, list[dict], list[CaseMeasure]]:
    """Measure, choose, evaluate. Returns (thresholds file content, table rows, cases)."""
    seeds = tuple(seeds or (QUICK_SEEDS if quick else SEEDS))
    poses = tuple(poses or (QUICK_POSES if quick else tuple(POSES)))
    cases = measure(phantom_specs(seeds, poses, phantom_size), size=size, keep_views=True)
    thresholds = choose_thresholds(cases)
    rows = table(cases, thresholds)
    thresholds["calibration"] = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "seeds": list(seeds),
        "poses": {p: list(POSES[p]) for p in poses},
        "phantom_size": phantom_size,
        "render_size": size,
        "masks": sorted({c.mask for c in cases}),
        "table": rows,
    }
    return thresholds, rows, cases
