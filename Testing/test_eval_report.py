"""The report for 5 cases and three methods: every file exists and the HTML carries the pictures."""

import json

import numpy as np
import pytest

from CTADefaceEvalLib.render import save_png
from CTADefaceEvalLib.report import write_report

METHODS = ["original", "box", "nnunet"]


def fake_rows(folder):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(5):
        for j, method in enumerate(METHODS):
            picture = np.zeros((32, 32, 3), np.uint8)
            picture[8:24, 8:24] = (40 * j + 60, 80, 200 - 40 * i)
            path = save_png(picture, str(folder / f"c{i}_{method}.png"))
            probability = [0.99, 0.9 if i % 2 else 0.0, 0.8 if i == 0 else 0.0][j] + 0.001 * rng.random() * (j == 0)
            rows.append(
                {
                    "case": f"case{i}",
                    "method": method,
                    "face_probability": probability,
                    "embedding_distance": None if method == "original" else 0.3 + 0.1 * j + 0.05 * i,
                    "dice": None if method == "original" else 0.9 - 0.3 * (method == "box"),
                    "runtime_s": None if method == "original" else 1.0 + j,
                    "render": path,
                }
            )
    return rows


def test_report_for_five_cases_and_three_methods(tmp_path):
    rows = fake_rows(tmp_path)
    files = write_report(rows, METHODS, str(tmp_path / "report"))
    for key in ("csv", "json", "detection_png", "distance_png", "html"):
        assert (tmp_path / "report").joinpath(files[key].split("/")[-1]).stat().st_size > 100
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["cases"] == 5 and summary["detections"]["original"]["detected"] == 5
    assert len(summary["wilcoxon"]) == 3
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 + 15  # two figures and every render
    assert "case4" in html and "Friedman" in html
    lines = (tmp_path / "report" / "cases.csv").read_text().splitlines()
    assert len(lines) == 1 + 15 and lines[0].startswith("case,method,face_probability")


def test_eval_command_is_registered():
    from CTADefaceLib.cli import build_parser

    args = build_parser().parse_args(["eval", "score", "x.nii.gz", "--json"])
    assert args.eval_func.__name__ == "run_score" and args.json
    args = build_parser().parse_args(["eval", "compare", "--originals", "a", "--method", "box=b", "-o", "out"])
    assert args.method == ["box=b"]


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_report_on_five_real_phantoms_and_three_methods(tmp_path, synthetic_model):
    """The benchmark's own code on 5 small phantoms: truth, box and nnunet (the synthetic test model) against
    the originals, with small renders to stay quick. Real phantoms, real renders, real MTCNN/FaceNet."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks", "eval_phantoms.py")
    spec = importlib.util.spec_from_file_location("eval_phantoms", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.MODEL["name"] = synthetic_model
    files = bench.run(5, str(tmp_path / "report"), ["truth", "box", "nnunet"], 160, "small")
    assert files["skipped"] == {}
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["cases"] == 5
    assert set(summary["detections"]) == {"original", "truth", "box", "nnunet"}
    assert summary["dice"]["truth"]["mean"] == 1.0 and summary["dice"]["nnunet"]["mean"] > 0.85
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 + 5 * 4
    assert len((tmp_path / "report" / "cases.csv").read_text().splitlines()) == 1 + 5 * 4


def test_report_counts_the_check_per_method_and_prints_detections_next_to_the_paper(tmp_path):
    from CTADefaceEvalLib.report import check_lines, detection_lines

    rows = fake_rows(tmp_path)
    for row in rows:
        if row["method"] == "box":
            row.update(check="REVIEW", check_reasons="region nose: soft tissue left, protrusion_mm = 12.0 mm")
        elif row["method"] == "nnunet":
            cannot = row["case"] == "case3"
            row.update(
                check="REVIEW" if cannot else "PASS",
                check_reasons="cannot verify: no face found in the original's views" if cannot else "",
            )
    files = write_report(rows, METHODS, str(tmp_path / "report"))
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["check"] == {
        "box": {"n": 5, "pass": 0, "review": 5, "cannot_verify": 0},
        "nnunet": {"n": 5, "pass": 4, "review": 1, "cannot_verify": 1},
    }
    text = "\n".join(check_lines(files["summary"]))
    assert (
        "box          PASS 0/5, REVIEW 5/5" in text
        and "nnunet       PASS 4/5, REVIEW 1/5 (of which cannot verify: 1)" in text
    )
    assert "Re-identification check" in (tmp_path / "report" / "report.html").read_text()
    header = (tmp_path / "report" / "cases.csv").read_text().splitlines()[0].split(",")
    assert "check" in header and "check_reasons" in header
    detections = "\n".join(detection_lines(files["summary"], METHODS))
    assert "original     5/5 (100%, 95% CI 48-100%)" in detections and "84%" in detections and "62%" in detections
    # without the check (eval compare --no-check), no section and no counts
    plain = write_report(fake_rows(tmp_path), METHODS, str(tmp_path / "plain"))
    assert "check" not in plain["summary"] and check_lines(plain["summary"]) == []
