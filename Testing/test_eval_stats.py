"""The statistics wrappers give what scipy gives, and the paper's intervals."""

import pytest
from scipy import stats as sps

from CTADefaceEvalLib import stats

ORIGINAL = [0.99, 0.98, 0.97, 0.0, 0.99, 0.95, 0.999, 0.9, 0.97, 0.96]
BOX = [0.97, 0.95, 0.0, 0.0, 0.98, 0.91, 0.99, 0.85, 0.0, 0.93]
NNUNET = [0.0, 0.92, 0.0, 0.0, 0.0, 0.8, 0.95, 0.0, 0.0, 0.0]


def test_clopper_pearson_matches_the_paper():
    result = stats.detection_count([1.0] * 31 + [0.0] * 19)
    assert (result["detected"], result["n"]) == (31, 50)
    assert result["ci_low"] == pytest.approx(0.4717, abs=1e-4)
    assert result["ci_high"] == pytest.approx(0.7534, abs=1e-4)
    result = stats.detection_count([0.99] * 42 + [0.0] * 8)
    assert (round(result["ci_low"], 2), round(result["ci_high"], 2)) == (0.71, 0.93)  # paper: 71-93%


def test_friedman_and_wilcoxon_match_scipy():
    samples = {"original": ORIGINAL, "box": BOX, "nnunet": NNUNET}
    result = stats.friedman(samples)
    direct = sps.friedmanchisquare(ORIGINAL, BOX, NNUNET)
    assert result["statistic"] == pytest.approx(direct.statistic) and result["p"] == pytest.approx(direct.pvalue)
    pairs = stats.wilcoxon_pairs(samples)
    assert [(p["a"], p["b"]) for p in pairs] == [("original", "box"), ("original", "nnunet"), ("box", "nnunet")]
    for pair in pairs:
        direct = sps.wilcoxon(samples[pair["a"]], samples[pair["b"]])
        assert pair["p"] == pytest.approx(direct.pvalue)
        assert pair["p_bonferroni"] == pytest.approx(min(1.0, 3 * direct.pvalue))


def test_bonferroni_multiplies_and_caps():
    assert stats.bonferroni([0.01, 0.2, 0.5, None]) == [0.04, 0.8, 1.0, None]


def test_paired_t_matches_scipy_and_skips_missing():
    a, b = [0.3, 0.5, 0.4, None, 0.6], [0.9, 1.1, 0.8, 1.0, None]
    result = stats.paired_t(a, b)
    direct = sps.ttest_rel([0.3, 0.5, 0.4], [0.9, 1.1, 0.8])
    assert result["n"] == 3 and result["p"] == pytest.approx(direct.pvalue)
    assert result["statistic"] == pytest.approx(direct.statistic)


def test_cohort_statistics_shape():
    rows = []
    for method, values in (("original", ORIGINAL), ("box", BOX), ("nnunet", NNUNET)):
        for i, p in enumerate(values):
            rows.append(
                {
                    "case": f"c{i}",
                    "method": method,
                    "face_probability": p,
                    "embedding_distance": None if method == "original" or p == 0 else 0.5 + i / 20,
                }
            )
    summary = stats.cohort_statistics(rows, ["original", "box", "nnunet"])
    assert summary["detections"]["original"]["detected"] == 9
    assert summary["detections"]["nnunet"]["detected"] == 3
    assert summary["paired_t_distance"][0]["n"] == 3
