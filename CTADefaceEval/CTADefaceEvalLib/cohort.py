"""Score images and whole cohorts: render -> MTCNN -> FaceNet distance to the original's render.

Also `check_defaced`, the re-identification check (verdict.check_case) as a dict for a sidecar or a report.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)


def score_image(
    image, reference_embedding=None, *, size: int = 512, angles=((0, 0),), save_to: str | None = None
) -> dict:
    """Render `image` (SimpleITK) from each angle and score the pictures.

    face_probability / embedding_distance / box / embedding come from the first angle (the
    anterior view, the paper's measure); `max_probability` is the highest over all angles.
    """
    from . import render
    from .faces import score_picture

    start = time.perf_counter()
    pictures = render.render_volume(image, size=size, angles=angles)
    render_s = time.perf_counter() - start
    scores = [score_picture(p, reference_embedding) for p in pictures]
    result = dict(scores[0])
    result.update(
        render_s=round(render_s, 3),
        picture=pictures[0],
        probabilities_by_angle={f"{y:+d},{p:+d}": s["face_probability"] for (y, p), s in zip(angles, scores)},
        max_probability=max(s["face_probability"] for s in scores),
    )
    if save_to:
        render.save_png(pictures[0], save_to)
        result["render"] = save_to
    return result


def check_defaced(image, original=None, *, thresholds=None, size: int | None = None) -> dict:
    """Re-identification check of a defaced image (verdict.check_case): PASS, or REVIEW with the reasons; with the
    original, REVIEW "cannot verify" when no face is found in the original's views. Returns a dict for the sidecar."""
    from .verdict import check_case

    return check_case(image, original, thresholds=thresholds, size=size).to_dict()


def _load(item):
    if item is None or hasattr(item, "GetSize"):
        return item
    from CTADefaceLib.io.volume import read_image

    return read_image(item)


def _load_mask(item):
    if item is None or hasattr(item, "GetSize"):
        return item
    import SimpleITK as sitk

    return sitk.ReadImage(item)


def _views(scored) -> tuple[dict, dict]:
    """({view: picture}, {view: MTCNN box}) of a score_image result: one anterior view for now."""
    return {"anterior": scored["picture"]}, {"anterior": scored["box"]}


def evaluate_case(
    case: dict,
    methods: list[str],
    outdir: str,
    original: str = "original",
    size: int = 512,
    identity: dict | None = None,
    check: dict | None = None,
) -> list[dict]:
    """One case: {"case", "images": {method: path|image}, optional "masks", "sidecars", "truth",
    "intracranial", "arteries"}. Returns one row per method present.

    With `identity` (a dict), FaceNet embeddings of every render are added to it as
    identity[method][case] = identity.render_embeddings(...), for identity.cohort_identity.
    With `check` (verdict.load_thresholds' dict), each method's image also gets the re-identification check
    (verdict.check_case) against the original: "check" PASS or REVIEW and "check_reasons". The original's face
    frame and views are found once per case; when no face is found in them, every method is REVIEW ("cannot
    verify"), never PASS, and the original's row says so ("check_face_in_original")."""
    from . import metrics

    name = case["case"]
    renders = os.path.join(outdir, "renders")
    original_image = _load(case["images"][original])
    ref = score_image(original_image, size=size, save_to=os.path.join(renders, f"{name}_{original}.png"))
    rows = [_row(name, original, ref)]
    checker = _CaseChecker(original_image, check) if check is not None else None
    if checker is not None:
        rows[0]["check_face_in_original"] = checker.verifiable
    if identity is not None:
        from .identity import render_embeddings

        ref_pictures, ref_boxes = _views(ref)
        identity.setdefault(original, {})[name] = render_embeddings(ref_pictures, ref_boxes)
    truth = _load_mask(case.get("truth"))
    regions = {k: _load_mask(case[k]) for k in ("intracranial", "arteries") if case.get(k) is not None}
    for method in methods:
        if method == original or method not in case["images"]:
            continue
        image = _load(case["images"][method])
        scored = score_image(image, ref["embedding"], size=size, save_to=os.path.join(renders, f"{name}_{method}.png"))
        row = _row(name, method, scored)
        if identity is not None:
            pictures, boxes = _views(scored)
            identity.setdefault(method, {})[name] = render_embeddings(pictures, boxes, fallback_boxes=ref_boxes)
        if checker is not None:
            result = checker(image)
            row.update(check=result.verdict, check_reasons="; ".join(result.reasons + result.notes))
        if ref["embedding"] is not None and scored["embedding"] is None:
            row["embedding_distance"] = None  # no face after defacing: no identity to compare (paper: excluded)
        mask = _load_mask((case.get("masks") or {}).get(method))
        if mask is not None:
            row.update(metrics.mask_report(mask, truth))
            row.update(metrics.preservation(original_image, image, mask, regions))
        sidecar = (case.get("sidecars") or {}).get(method)
        if sidecar:
            row["runtime_s"] = metrics.runtime_s(sidecar)
        rows.append(row)
    return rows


class _CaseChecker:
    """verdict.check_case for several defaced versions of one original: frame and original's views found once."""

    def __init__(self, original, thresholds: dict):
        from .verdict import estimate_face_frame, look_at_original, original_face_seen

        self.original, self.thresholds = original, thresholds
        self.size = int((thresholds.get("calibration") or {}).get("render_size", 512))
        self.frame = estimate_face_frame(original)
        self.seen = look_at_original(original, frame=self.frame, size=self.size)
        self.verifiable = original_face_seen(self.seen[1], thresholds)

    def __call__(self, defaced):
        from .verdict import check_case

        return check_case(
            defaced,
            self.original,
            thresholds=self.thresholds,
            frame=self.frame,
            size=self.size,
            seen_original=self.seen,
        )


def _row(case, method, scored) -> dict:
    return {
        "case": case,
        "method": method,
        "face_probability": scored["face_probability"],
        "embedding_distance": scored["embedding_distance"],
        "render": scored.get("render"),
        "render_s": scored["render_s"],
        "max_probability_all_angles": scored["max_probability"],
    }


def evaluate_cohort(
    cases: list[dict],
    methods: list[str],
    outdir: str,
    original: str = "original",
    size: int = 512,
    progress: bool = True,
    identity: dict | None = None,
    check: dict | None = None,
) -> list[dict]:
    """Rows of every case (evaluate_case); with `identity` (a dict) it also collects the FaceNet embeddings
    that identity.cohort_identity turns into rank-1 rates and pair AUCs; with `check` (thresholds), each
    method's image gets the re-identification check."""
    rows = []
    for i, case in enumerate(cases, start=1):
        if progress:
            log.info("[%d/%d] %s", i, len(cases), case["case"])
        rows.extend(evaluate_case(case, methods, outdir, original, size, identity, check))
    return rows


def find_cases(originals_dir: str, method_dirs: dict, truth_dir: str | None = None) -> list[dict]:
    """Match `<name>.<ext>` in originals_dir with `<name>_defaced.<ext>` (or `<name>.<ext>`) in each method folder,
    plus `<name>_facemask.*`, `<name>_deface.json` there and `<name>.*`/`<name>_gt.*` in truth_dir."""
    from CTADefaceLib.io.volume import IMAGE_SUFFIXES, split_suffix

    def index(folder):
        found = {}
        for entry in sorted(os.listdir(folder)):
            base, suffix = split_suffix(entry)
            if suffix in IMAGE_SUFFIXES or entry.endswith(".json"):
                found[base if suffix else entry] = os.path.join(folder, entry)
        return found

    cases = []
    for base, path in index(originals_dir).items():
        if path.endswith(".json"):
            continue
        case = {"case": base, "images": {"original": path}, "masks": {}, "sidecars": {}}
        for method, folder in method_dirs.items():
            files = index(folder)
            image = files.get(f"{base}_defaced") or files.get(base)
            if image is None:
                log.warning("%s: no image for %s in %s", method, base, folder)
                continue
            case["images"][method] = image
            if f"{base}_facemask" in files:
                case["masks"][method] = files[f"{base}_facemask"]
            if f"{base}_deface.json" in files:
                case["sidecars"][method] = files[f"{base}_deface.json"]
        if truth_dir:
            truths = index(truth_dir)
            case["truth"] = truths.get(f"{base}_gt") or truths.get(base)
        cases.append(case)
    return cases
