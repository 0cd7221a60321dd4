"""The paper's statistics over a cohort: detection counts with exact intervals, Friedman + Wilcoxon, paired t.

- Detections: k of n pictures with a face above the threshold, with the 95% Clopper-Pearson interval
  (the paper: 42/50 = 84%, 71-93%).
- Detection probabilities (0 where no face was found): Friedman rank-sum test over all methods, then
  pairwise Wilcoxon signed-rank tests, Bonferroni-corrected (p x number of pairs, capped at 1).
- FaceNet embedding distances to the original: paired t-test between defacing methods, over the
  cases where every compared method has a distance.
"""

from __future__ import annotations

import itertools
import math

DETECTION_THRESHOLD = 0.0  # the paper counts any MTCNN detection; use 0.9 for a "confident face" count


def detection_count(probabilities, threshold: float = DETECTION_THRESHOLD, confidence: float = 0.95) -> dict:
    """k faces among n pictures (probability > threshold) with the exact (Clopper-Pearson) interval."""
    from scipy.stats import binomtest

    values = [float(p) for p in probabilities if p is not None]
    n = len(values)
    k = sum(p > threshold for p in values)
    if n == 0:
        return {"detected": 0, "n": 0, "rate": None, "ci_low": None, "ci_high": None}
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return {"detected": k, "n": n, "rate": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high)}


def bonferroni(p_values: list) -> list:
    """Each p times the number of tests, capped at 1 (None stays None)."""
    m = len(p_values)
    return [None if p is None else min(1.0, p * m) for p in p_values]


def _finite(x):
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def friedman(samples: dict) -> dict:
    """Friedman test over methods (dict name -> list of per-case values, same case order).

    Cases with a gap are dropped.
    """
    from scipy.stats import friedmanchisquare

    names = list(samples)
    rows = [row for row in zip(*(samples[n] for n in names)) if all(_finite(v) for v in row)]
    if len(names) < 3 or len(rows) < 2:
        return {"statistic": None, "p": None, "n": len(rows), "methods": names}
    columns = [[row[i] for row in rows] for i in range(len(names))]
    if all(len(set(col)) == 1 and col == columns[0] for col in columns):
        return {"statistic": 0.0, "p": 1.0, "n": len(rows), "methods": names}  # all identical: no evidence
    result = friedmanchisquare(*columns)
    return {"statistic": float(result.statistic), "p": float(result.pvalue), "n": len(rows), "methods": names}


def wilcoxon_pairs(samples: dict) -> list[dict]:
    """Two-sided Wilcoxon signed-rank test for every pair of methods, with Bonferroni-corrected p."""
    from scipy.stats import wilcoxon

    pairs = list(itertools.combinations(samples, 2))
    raw = []
    for a, b in pairs:
        rows = [(x, y) for x, y in zip(samples[a], samples[b]) if _finite(x) and _finite(y)]
        if len(rows) < 1 or all(x == y for x, y in rows):
            raw.append((None, None, len(rows)))
            continue
        result = wilcoxon([x for x, _ in rows], [y for _, y in rows])
        raw.append((float(result.statistic), float(result.pvalue), len(rows)))
    corrected = bonferroni([p for _, p, _ in raw])
    return [
        {"a": a, "b": b, "statistic": s, "p": p, "p_bonferroni": pc, "n": n}
        for (a, b), (s, p, n), pc in zip(pairs, raw, corrected)
    ]


def paired_t(a_values, b_values) -> dict:
    """Paired t-test (scipy.stats.ttest_rel) over cases where both values exist."""
    from scipy.stats import ttest_rel

    rows = [(x, y) for x, y in zip(a_values, b_values) if _finite(x) and _finite(y)]
    if len(rows) < 2:
        return {"statistic": None, "p": None, "n": len(rows)}
    result = ttest_rel([x for x, _ in rows], [y for _, y in rows])
    statistic, p = float(result.statistic), float(result.pvalue)
    return {
        "statistic": None if math.isnan(statistic) else statistic,
        "p": None if math.isnan(p) else p,
        "n": len(rows),
    }


def describe(values) -> dict:
    """Mean, SD (n-1), median, n of the finite values."""
    import numpy as np

    finite = np.array([v for v in values if _finite(v)], dtype=float)
    if finite.size == 0:
        return {"mean": None, "sd": None, "median": None, "n": 0}
    return {
        "mean": float(finite.mean()),
        "sd": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        "median": float(np.median(finite)),
        "n": int(finite.size),
    }


def cohort_statistics(
    rows: list[dict], methods: list[str], original: str = "original", threshold: float = DETECTION_THRESHOLD
) -> dict:
    """All the paper's statistics from per-case rows ({case, method, face_probability, embedding_distance, ...})."""
    table = {m: {} for m in methods}
    for row in rows:
        if row["method"] in table:
            table[row["method"]][row["case"]] = row
    cases = sorted({row["case"] for row in rows})
    probability = {m: [table[m].get(c, {}).get("face_probability") for c in cases] for m in methods}
    distance = {m: [table[m].get(c, {}).get("embedding_distance") for c in cases] for m in methods if m != original}
    defacers = [m for m in methods if m != original]
    summary = {
        "cases": len(cases),
        "threshold": threshold,
        "detections": {m: detection_count(probability[m], threshold) for m in methods},
        "probability": {m: describe(probability[m]) for m in methods},
        "friedman": friedman(probability),
        "wilcoxon": wilcoxon_pairs(probability),
        "distance": {m: describe(distance[m]) for m in defacers},
        "paired_t_distance": [
            dict(a=a, b=b, **paired_t(distance[a], distance[b])) for a, b in itertools.combinations(defacers, 2)
        ],
    }
    for key in ("dice", "runtime_s", "changed_outside_mask"):
        if any(key in row for row in rows):
            summary[key] = {m: describe([table[m].get(c, {}).get(key) for c in cases]) for m in defacers}
    return summary
