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
