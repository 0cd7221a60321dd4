"""Identity figures of `eval compare`: rank-1 identification and same-versus-different pair AUC (identity.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from CTADefaceEvalLib.identity import (
    METRICS,
    case_score,
    cohort_identity,
    identification,
    identity_lines,
    similarity,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def unit_vectors(n, dim=512, seed=0):
    vectors = np.random.default_rng(seed).normal(size=(n, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def one_view(vectors, names, view="anterior"):
    return {name: {view: vector} for name, vector in zip(names, vectors)}


def mann_whitney_auc(gallery, probes, metric):
    """The same AUC from scipy's Mann-Whitney U (an independent computation): U / (n_genuine * n_impostor)."""
    from scipy.stats import mannwhitneyu

    genuine, impostor = [], []
    for p, pv in probes.items():
        for g, gv in gallery.items():
            (genuine if p == g else impostor).append(case_score(pv, gv, metric))
    return mannwhitneyu(genuine, impostor).statistic / (len(genuine) * len(impostor))


@pytest.mark.parametrize("metric", METRICS)
def test_perfect_separation_gives_rank1_one_and_auc_one(metric):
    names = [f"case{i}" for i in range(8)]
    gallery_vectors = unit_vectors(8, seed=1)
    noisy = gallery_vectors + 0.05 * unit_vectors(8, seed=2)  # each probe stays nearest its own original
    result = identification(one_view(gallery_vectors, names), one_view(noisy, names), metric)
    assert result["computable"] and result["n_probes"] == 8 and result["n_gallery"] == 8
    assert result["rank1"] == 1.0 and result["rank1_hits"] == 8
    assert result["auc"] == 1.0
    assert result["genuine_pairs"] == 8 and result["impostor_pairs"] == 56
    assert result["chance_rank1"] == pytest.approx(1 / 8)


@pytest.mark.parametrize("metric", METRICS)
def test_unrelated_probes_score_around_chance_and_auc_matches_mann_whitney(metric):
    n = 120
    names = [f"c{i:03d}" for i in range(n)]
    gallery = one_view(unit_vectors(n, dim=32, seed=3), names)
    probes = one_view(unit_vectors(n, dim=32, seed=4), names)  # no relation to the gallery
    result = identification(gallery, probes, metric)
    assert result["rank1"] <= 0.06  # chance is 1/120; 0.06 would be 7 lucky hits
    assert 0.44 < result["auc"] < 0.56
    assert result["auc"] == pytest.approx(mann_whitney_auc(gallery, probes, metric), abs=1e-12)


def test_ties_share_the_rank1_hit_and_count_half_in_the_auc():
    v, w = unit_vectors(2, dim=16, seed=5)
    gallery = one_view([v, v, w], ["a", "b", "c"])  # a and b look identical
    result = identification(gallery, gallery, "cosine")
    # a ties with b (1/2), b ties with a (1/2), c is found alone (1)
    assert result["rank1_hits"] == pytest.approx(2.0) and result["rank1"] == pytest.approx(2 / 3)
    assert result["auc"] == pytest.approx(mann_whitney_auc(gallery, gallery, "cosine"))
    assert 0.5 < result["auc"] < 1.0


def test_cosine_and_euclidean_agree_on_unit_vectors_and_differ_on_others():
    names = [f"case{i}" for i in range(10)]
    gallery = one_view(unit_vectors(10, dim=8, seed=6), names)
    probes = one_view(unit_vectors(10, dim=8, seed=7), names)
    cos, euc = (identification(gallery, probes, m) for m in METRICS)
    assert (cos["rank1"], cos["auc"]) == pytest.approx((euc["rank1"], euc["auc"]))
    # unnormalised: the probe points the way of "a" but lies next to "b"
    gallery = one_view(np.array([[1.0, 0.0], [10.0, 1.0]]), ["a", "b"])
    probes = one_view(np.array([[9.0, 0.1]]), ["a"])
    assert identification(gallery, probes, "cosine")["rank1"] == 1.0
    assert identification(gallery, probes, "euclidean")["rank1"] == 0.0
    assert similarity([3.0, 4.0], [0.0, 0.0], "euclidean") == -5.0


def test_a_probe_without_embedding_is_a_miss_and_ties_at_the_bottom_of_the_auc():
    names = ["a", "b", "c", "d"]
    vectors = unit_vectors(4, seed=8)
    gallery = one_view(vectors, names)
    probes = one_view(vectors, names)
    probes["d"] = {"anterior": None}  # MTCNN found no face in d's defaced render
    result = identification(gallery, probes, "cosine")
    assert result["rank1_hits"] == 3 and result["rank1"] == 0.75 and result["probes_without_score"] == 1
    # d's four pairs tie below every real score: 3 real genuine pairs beat all impostors, d's genuine pair
    # beats none of the 9 real impostors and ties with d's 3 impostor pairs
    expected = (3 * 12 + 0.5 * 3) / (4 * 12)
    assert result["auc"] == pytest.approx(expected)


def test_fewer_than_two_cases_is_not_computable_and_says_so():
    gallery = one_view(unit_vectors(1), ["only"])
    result = identification(gallery, gallery, "cosine")
    assert not result["computable"] and result["rank1"] is None and result["auc"] is None
    assert "at least 2" in result["reason"]
    embeddings = {
        "original": {"only": {"face": {"anterior": None}, "any": {"anterior": unit_vectors(1)[0]}, "crop": {}}},
        "truth": {"only": {"face": {"anterior": None}, "any": {"anterior": unit_vectors(1)[0]}, "crop": {}}},
    }
    text = "\n".join(identity_lines(cohort_identity(embeddings, ["original", "truth"])))
    assert "not computable" in text and "rank-1" in text
    assert "%" not in text.split("Published figures")[0]  # no number pretends to be a rate


def test_views_front_gallery_or_best_match_over_all_views():
    names = ["a", "b", "c"]
    front, side = unit_vectors(3, seed=9), unit_vectors(3, seed=10)
    gallery = {n: {"front": f, "left": s} for n, f, s in zip(names, front, side)}
    # probes have only a side view, close to their own side view and unrelated to every front view
    probes = {n: {"left": s + 0.05 * r} for n, s, r in zip(names, side, unit_vectors(3, seed=11))}
    assert identification(gallery, probes, "cosine")["rank1"] == 1.0  # same view: left vs left
    front_only = identification(gallery, probes, "cosine", gallery_views=["front"])
    assert front_only["rank1"] == 0.0 and front_only["probes_without_score"] == 3  # no left view to compare with
    best = identification(gallery, probes, "cosine", pairing="any", gallery_views=["front"])
    assert best["probes_without_score"] == 0  # left probe against the front gallery: scored, whatever the result
    assert identification(gallery, probes, "cosine", pairing="any")["rank1"] == 1.0


def test_report_lines_show_both_metrics_and_the_published_figures():
    names = [f"case{i}" for i in range(4)]
    vectors = unit_vectors(4, seed=12)

    def entry(vector):
        return {"face": {"anterior": vector}, "any": {"anterior": vector}, "crop": {"anterior": "own face box"}}

    embeddings = {
        "original": {n: entry(v) for n, v in zip(names, vectors)},
        "kept": {n: entry(v) for n, v in zip(names, vectors)},  # a "defacer" that changed nothing
    }
    summary = cohort_identity(embeddings, ["original", "kept"])
    figures = summary["methods"]["kept"]["face"]
    assert figures["cosine"]["rank1"] == 1.0 and figures["euclidean"]["auc"] == 1.0
    text = "\n".join(identity_lines(summary))
    assert "4/4 (100%)" in text and "1.000" in text and "chance: rank-1 1/4 = 25.0%" in text
    assert "42/50" in text and "31/50" in text and "Selfridge" in text and "93%" in text and "6%" in text
    json.dumps(summary)  # goes into summary.json as it is


def _write_phantom_cohort(folder, seeds):
    """Originals and ground-truth-defaced copies of small phantoms (one identity per seed) as NIfTI files."""
    import SimpleITK as sitk

    from CTADefaceLib.fill import apply_mask, fill_value
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    originals, defaced = folder / "originals", folder / "truth"
    originals.mkdir()
    defaced.mkdir()
    for seed in seeds:
        phantom = make_phantom(PhantomSpec.random(seed, size="small"))
        sitk.WriteImage(phantom.image, str(originals / f"p{seed:02d}.nii.gz"))
        masked = apply_mask(phantom.image, phantom.face, fill_value(phantom.image, "p10"))
        sitk.WriteImage(masked, str(defaced / f"p{seed:02d}_defaced.nii.gz"))
    return originals, defaced


def _compare(*args):
    environment = dict(
        os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "CTADeface"), os.path.join(REPO, "CTADefaceEval")])
    )
    return subprocess.run(
        [sys.executable, "-m", "CTADefaceLib.cli", "eval", "compare", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


@pytest.mark.slow  # three small phantoms: renders, the check, MTCNN and FaceNet in a subprocess: ~110 s on 2 shared cores
def test_eval_compare_prints_rank1_and_auc_for_a_phantom_cohort(tmp_path):
    originals, defaced = _write_phantom_cohort(tmp_path, [0, 1, 2])
    out = tmp_path / "report"
    result = _compare("--originals", str(originals), "--method", f"truth={defaced}", "-o", str(out), "--size", "160")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("Identity (FaceNet): gallery = the 3 original renders") for line in lines)
    start = next(i for i, line in enumerate(lines) if line.startswith("Identity (FaceNet)"))
    rows = [line.split() for line in lines[start:] if line.strip().startswith("truth ")]
    assert [row[1] for row in rows] == ["face", "any"]
    summary = json.loads((out / "summary.json").read_text())
    figures = summary["identity"]["methods"]["truth"]
    for mode in ("face", "any"):
        for metric in METRICS:
            f = figures[mode][metric]
            assert f["computable"] and f["n_probes"] == 3 and f["n_gallery"] == 3
            assert 0.0 <= f["rank1"] <= 1.0 and 0.0 <= f["auc"] <= 1.0
    assert sum(summary["identity"]["crops"]["truth"].values()) == 3
    # the check ran on each case against its original, and its counts and the detections are printed
    check = summary["check"]["truth"]
    assert check["n"] == 3 and check["pass"] + check["review"] == 3
    assert any(line.startswith("  truth        PASS ") for line in lines)
    assert any(line.startswith("  original     ") and "/3 (" in line for line in lines) and any(
        "84%" in line for line in lines
    )
    print("\n".join(lines))
    assert (out / "identity.txt").read_text().splitlines()[0] in lines
    assert "Identity (rank-1 and AUC, FaceNet)" in (out / "report.html").read_text()


@pytest.mark.slow  # one phantom: rendering and FaceNet in a subprocess
def test_eval_compare_on_one_case_says_not_computable(tmp_path):
    originals, defaced = _write_phantom_cohort(tmp_path, [3])
    result = _compare(
        "--originals",
        str(originals),
        "--method",
        f"truth={defaced}",
        "-o",
        str(tmp_path / "r"),
        "--size",
        "128",
        "--no-check",
    )
    assert result.returncode == 0, result.stderr
    assert "Re-identification check" not in result.stdout  # --no-check
    assert "rank-1 and AUC: not computable (needs at least 2 cases, the cohort has 1)" in result.stdout
