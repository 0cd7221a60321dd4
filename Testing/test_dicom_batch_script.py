"""Slicer's batch script on a DICOM study: the same core as `ctadeface deface`, defaced de-identified DICOM out."""

from __future__ import annotations

import json
import os

import pytest

from builders import make_synthetic_head
from dicom_study import build_phantom_study

pytest.importorskip("slicer")


def test_batch_script_writes_a_defaced_dicom_study(tmp_path):
    from test_batch_script_safety import _run_in_slicer

    root = tmp_path / "export"
    build_phantom_study(str(root), make_synthetic_head(spacing=4.0).image, own_frame=False)
    out = tmp_path / "out"
    result = _run_in_slicer(
        root,
        "-o",
        out,
        "--engine",
        "box",
        "--min-face-ml",
        "0",
        "--deid-key",
        tmp_path / "key",
        "--deid-option",
        "retain-dates",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (report_name,) = [n for n in os.listdir(out) if n.endswith("_deface.json")]
    report = json.load(open(out / report_name))
    assert sorted(s["series_number"] for s in report["series"] if s["fate"] == "defaced") == [1, 2, 3, 4]
    assert report["settings"]["deid_options"] == ["retain-dates"]
    assert "1 defaced, 1 skipped, 0 failed" in result.stdout


@pytest.mark.slow  # imports torch and renders the check's small pictures
def test_batch_script_checks_a_dicom_study_and_review_exits_3(tmp_path):
    """--check on DICOM input in the batch script: the study's verdict is printed and REVIEW exits 3 (it crashed
    before: the script looked for a NIfTI output in a DICOM study's record)."""
    pytest.importorskip("vtk")
    pytest.importorskip("facenet_pytorch")
    from builders import make_ct
    from dicom_study import write_series
    from test_batch_script_safety import _run_in_slicer
    from test_eval_exit_status import THRESHOLDS

    study = tmp_path / "ball"
    write_series(make_ct(size=(64, 64, 64), spacing=(3.0, 3.0, 3.0)), str(study), "1.2.826.0.1.3680043.10.543.92", 1)
    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps(THRESHOLDS))
    out = tmp_path / "out"
    result = _run_in_slicer(study, "-o", out, "--engine", "box", "--deid-key", tmp_path / "key", "--check", thresholds)
    assert result.returncode == 3, result.stdout + result.stderr[-3000:]
    assert "check REVIEW" in result.stdout and "series 1: " in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
