"""Identity, not only detection: can a defaced render still be matched to its own original?

The re-identification literature measures a defacer by closed-set identification: the undefaced
renders of a cohort are the gallery, the defaced renders are the probes, and a face recogniser
(here FaceNet, faces.py) embeds every picture. Two figures per method:

- rank-1 identification rate: the share of probes whose most similar gallery entry is their own
  original. Chance is 1 / (gallery size).
- ROC AUC of same-versus-different pairs: every probe x gallery pair is scored; the pair is
  "genuine" when both come from the same case. 1.0 = every genuine pair scores above every
  impostor pair, 0.5 = no better than chance. Computed by scikit-learn's `roc_auc_score`
  (ties count one half, as in the Mann-Whitney U statistic it equals).

Both for cosine similarity and for (negated) Euclidean distance. For unit vectors the two are tied
by |a - b|^2 = 2 - 2 cos(a, b), so with FaceNet's L2-normalised embeddings they rank pairs the same
way and give the same figures; both are printed because the literature uses both.

Views. Every function takes embeddings as {case: {view_name: vector or None}}, so a case can have
one anterior render or several views. A case-to-case score is the best score over the view pairs
allowed: `pairing="same_view"` compares a probe view only with the same view of the gallery case,
`pairing="any"` with every gallery view ("best match over views"); `gallery_views` /
`probe_views` restrict which views take part (e.g. the front view as the gallery).

Undefined cases, decided here and stated in the report:
- a probe view without an embedding (MTCNN found no face, see `render_embeddings` for the
  alternative) takes no part; a probe with no usable view at all is a rank-1 miss, and its pairs
  get a score below every real score (genuine and impostor alike, so they tie at the bottom);
- rank-1 ties: a probe whose own original ties with k - 1 impostors for the best score counts 1/k
  (the expected hit rate of breaking the tie at random);
- fewer than 2 gallery cases, or no probe with a gallery counterpart: "not computable" (rank-1 would
  be trivially 1 and there are no impostor pairs); likewise AUC when there are no genuine or no
  impostor pairs.
"""

from __future__ import annotations

METRICS = ("cosine", "euclidean")
PAIRINGS = ("same_view", "any")

#: What each embedding mode means (render_embeddings makes both).
MODES = {
    "face": "face crops only (MTCNN box; a render without a detected face is a miss)",
    "any": "every render (own MTCNN box, else the original's box, else the whole render)",
}


def similarity(a, b, metric: str = "cosine") -> float:
    """Higher = more alike: cosine similarity, or minus the Euclidean distance."""
    import numpy as np

    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if metric == "cosine":
        return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
    if metric == "euclidean":
        return -float(np.linalg.norm(a - b))
    raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")


def _views(entry: dict, allowed) -> dict:
    return {v: e for v, e in (entry or {}).items() if e is not None and (allowed is None or v in allowed)}


def case_score(probe: dict, gallery: dict, metric: str = "cosine", pairing: str = "same_view") -> float | None:
    """Best similarity over the allowed view pairs of two cases ({view: vector}); None when no pair exists."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, not {pairing!r}")
    scores = [
        similarity(p, g, metric) for pv, p in probe.items() for gv, g in gallery.items() if pairing == "any" or pv == gv
    ]
    return max(scores) if scores else None


def score_matrix(
    gallery: dict,
    probes: dict,
    metric: str = "cosine",
    pairing: str = "same_view",
    gallery_views=None,
    probe_views=None,
):
    """(probe cases, gallery cases, matrix) with matrix[i, j] = score of probe i against gallery case j,
    NaN where the two share no usable view pair. Only probes whose case is in the gallery take part."""
    import numpy as np

    gallery_names = sorted(gallery)
    probe_names = sorted(c for c in probes if c in gallery)
    g = {c: _views(gallery[c], gallery_views) for c in gallery_names}
    matrix = np.full((len(probe_names), len(gallery_names)), np.nan)
    for i, case in enumerate(probe_names):
        p = _views(probes[case], probe_views)
        for j, other in enumerate(gallery_names):
            score = case_score(p, g[other], metric, pairing)
            if score is not None:
                matrix[i, j] = score
    return probe_names, gallery_names, matrix


def rank1(probe_names, gallery_names, matrix) -> dict:
    """Rank-1 hits (ties shared, see the module docstring) over the probes; probes with no score are misses."""
    import numpy as np

    hits, unscored = 0.0, 0
    for i, case in enumerate(probe_names):
        row = matrix[i]
        own = row[gallery_names.index(case)]
        if np.all(np.isnan(row)):
            unscored += 1
            continue
        if np.isnan(own):
            continue  # its own original has no usable view: it cannot be found
        best = np.nanmax(row)
        if own >= best:
            hits += 1.0 / int(np.sum(row == best))
    n = len(probe_names)
    return {"hits": hits, "n": n, "rate": hits / n if n else None, "probes_without_score": unscored}


def pair_auc(probe_names, gallery_names, matrix) -> dict:
    """ROC AUC of genuine (same case) versus impostor pairs over every probe x gallery pair."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    labels = np.array([[p == g for g in gallery_names] for p in probe_names], dtype=bool).ravel()
    scores = matrix.ravel().copy()
    genuine, impostor = int(labels.sum()), int((~labels).sum())
    result = {"auc": None, "genuine_pairs": genuine, "impostor_pairs": impostor}
    if genuine == 0 or impostor == 0:
        return result
    finite = scores[~np.isnan(scores)]
    floor = (float(finite.min()) if finite.size else 0.0) - 1.0  # below every real score: "no evidence"
    scores[np.isnan(scores)] = floor
    result["auc"] = float(roc_auc_score(labels, scores))
    return result


def identification(
    gallery: dict,
    probes: dict,
    metric: str = "cosine",
    pairing: str = "same_view",
    gallery_views=None,
    probe_views=None,
) -> dict:
    """Rank-1 rate and pair AUC of `probes` against `gallery` ({case: {view: vector or None}}).

    Returns {metric, rank1, rank1_hits, auc, n_probes, n_gallery, probes_without_score, chance_rank1,
    genuine_pairs, impostor_pairs, computable, reason}; rank1/auc are None where not computable.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    probe_names, gallery_names, matrix = score_matrix(gallery, probes, metric, pairing, gallery_views, probe_views)
    result = {
        "metric": metric,
        "pairing": pairing,
        "n_probes": len(probe_names),
        "n_gallery": len(gallery_names),
        "chance_rank1": 1.0 / len(gallery_names) if gallery_names else None,
        "rank1": None,
        "rank1_hits": None,
        "auc": None,
        "probes_without_score": None,
        "genuine_pairs": len(probe_names),
        "impostor_pairs": len(probe_names) * max(0, len(gallery_names) - 1),
        "computable": False,
        "reason": "",
    }
    if len(gallery_names) < 2:
        result["reason"] = f"needs at least 2 cases in the gallery, has {len(gallery_names)}"
        return result
    if not probe_names:
        result["reason"] = "no defaced render has an original in the gallery"
        return result
    hits = rank1(probe_names, gallery_names, matrix)
    auc = pair_auc(probe_names, gallery_names, matrix)
    result.update(
        rank1=hits["rate"],
        rank1_hits=hits["hits"],
        probes_without_score=hits["probes_without_score"],
        auc=auc["auc"],
        computable=True,
    )
    return result


def whole_render_box(picture) -> list:
    """The box [x1, y1, x2, y2] of the whole picture (the crop of last resort)."""
    height, width = picture.shape[:2]
    return [0.0, 0.0, float(width), float(height)]


def render_embeddings(pictures: dict, boxes: dict, fallback_boxes: dict | None = None) -> dict:
    """FaceNet embeddings of one image's renders, {view: picture} with {view: MTCNN box or None}.

    Returns {"face": {view: vector or None}, "any": {view: vector}, "crop": {view: how "any" was cropped}}.
    "face" is the literature's pipeline (detector, then recogniser): no face, no embedding.
    "any" never depends on the detector finding the face in this render, so a defaced render whose
    residual face MTCNN misses is still compared: it uses the render's own box, else the box found
    on the original's render of the same view (same camera, so the face would be at the same
    pixels), else the whole render.
    """
    from .faces import embed_crop, face_crop

    face, anything, crop = {}, {}, {}
    for view, picture in pictures.items():
        box = boxes.get(view)
        face[view] = embed_crop(face_crop(picture, box)) if box is not None else None
        if box is not None:
            anything[view], crop[view] = face[view], "own face box"
            continue
        fallback = (fallback_boxes or {}).get(view)
        if fallback is not None:
            anything[view], crop[view] = embed_crop(face_crop(picture, fallback)), "original's face box"
        else:
            whole = face_crop(picture, whole_render_box(picture), margin=0)
            anything[view], crop[view] = embed_crop(whole), "whole render"
    return {"face": face, "any": anything, "crop": crop}


def cohort_identity(embeddings: dict, methods, original: str = "original", pairing: str = "same_view") -> dict:
    """Every defacing method's identification figures against the originals.

    `embeddings` is {method: {case: render_embeddings(...)}}. Returns
    {"gallery_cases", "views", "methods": {method: {mode: {metric: identification(...)}}}, "crops": {...}}.
    """
    gallery = embeddings.get(original, {})
    views = sorted({v for entry in gallery.values() for v in entry.get("face", {})})
    summary: dict = {"gallery_cases": len(gallery), "views": views, "pairing": pairing, "methods": {}, "crops": {}}
    for method in methods:
        if method == original or method not in embeddings:
            continue
        probes = embeddings[method]
        summary["methods"][method] = {
            mode: {
                metric: identification(
                    {c: e[mode] for c, e in gallery.items()},
                    {c: e[mode] for c, e in probes.items()},
                    metric,
                    pairing,
                )
                for metric in METRICS
            }
            for mode in MODES
        }
        counts: dict = {}
        for entry in probes.values():
            for how in entry["crop"].values():
                counts[how] = counts.get(how, 0) + 1
        summary["crops"][method] = counts
    return summary


# What the paper and the literature report, for the report to print next to this cohort's figures.
# In our words; numbers checked against the publications' own text (abstracts and results).
PUBLISHED = (
    "CTA-DEFACE paper (Mahmutoglu et al. 2024, Eur Radiol Exp 8:111; 50 external CTAs, anterior CT-Muscle "
    "renders): MTCNN found a face in 42/50 originals (84%, 95% CI 71-93%), 37/50 after ICHSEG (74%, 60-85%) and "
    "31/50 after CTA-DEFACE (62%, 47-75%); FaceNet Euclidean distances to the original were compared with a "
    "paired t-test (larger after CTA-DEFACE, p < 0.001). The paper reports no rank-1 rate or AUC.",
    "Selfridge et al. 2023 (J Nucl Med 64:1304-1309), total-body PET/CT of 30 volunteers, FaceNet embeddings: "
    "faces rendered from CT were matched to the same person's CT from another time point in 93% before "
    "defacing and in 6% after.",
    "Schwarz et al. 2021 (NeuroImage 231:117845), MRI of 157 volunteers matched to photographs: 97% before "
    "defacing, 28-38% after popular defacing tools (MRI, not CT).",
)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _rank(figures: dict) -> str:
    return f"{figures['rank1_hits']:g}/{figures['n_probes']} ({_percent(figures['rank1'])})"


def _auc(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def identity_lines(summary: dict) -> list[str]:
    """The identity section of the compare report as plain text lines."""
    n = summary["gallery_cases"]
    views = ", ".join(summary["views"]) or "none"
    pairs = "the same view in both" if summary["pairing"] == "same_view" else "any view pair"
    lines = [
        f"Identity (FaceNet): gallery = the {n} original renders, probes = each method's defaced renders; "
        f"views: {views}; case score = best over {pairs}.",
        "  The gallery holds the same scans before defacing (same pose, framing and skull): an upper bound on "
        "what an attacker with a photograph or another scan could do.",
    ]
    if n < 2:
        lines.append(f"  rank-1 and AUC: not computable (needs at least 2 cases, the cohort has {n}).")
    else:
        lines.append(
            f"  chance: rank-1 1/{n} = {100 / n:.1f}%, AUC 0.500. Cosine and Euclidean agree for unit vectors."
        )
        header = f"  {'method':12s} {'embeddings':11s} {'rank-1 cos':>11s} {'rank-1 euc':>11s} {'AUC cos':>8s} {'AUC euc':>8s}"
        lines.append(header)
        for method, modes in summary["methods"].items():
            for mode, by_metric in modes.items():
                cos, euc = by_metric["cosine"], by_metric["euclidean"]
                if not cos["computable"]:
                    lines.append(f"  {method:12s} {mode:11s} not computable: {cos['reason']}")
                    continue
                lines.append(
                    f"  {method:12s} {mode:11s} {_rank(cos):>11s} {_rank(euc):>11s} "
                    f"{_auc(cos['auc']):>8s} {_auc(euc['auc']):>8s}"
                )
        for mode, text in MODES.items():
            lines.append(f"  {mode}: {text}")
        for method, counts in summary["crops"].items():
            lines.append(
                f"  how {method}'s renders were cropped for 'any': "
                + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            )
    lines.append("Published figures (other cohorts and pipelines, for orientation only):")
    lines.extend(f"  - {text}" for text in PUBLISHED)
    return lines
