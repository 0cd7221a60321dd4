"""Scripts/deface_batch.py keeps the same output rules as `ctadeface deface` (it runs the pipeline's batch loop).

Each test runs the script in a fresh interpreter the way Slicer runs it (`--python-script S.py -- ARGS`) with the
real slicer-core MRML; only `slicer.app` and `slicer.util.exit` (the Slicer application) are stand-ins.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("slicer")
from helpers import tree_hashes  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "CTADeface", "Scripts", "deface_batch.py")
SAMPLE = os.path.join(REPO, "CTADeface", "CTADefaceLib", "data", "sample_phantom.nii.gz")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "CTADeface"), os.environ.get("PYTHONPATH", "")]))

RUN_AS_SLICER = r"""
import runpy, sys
sys.path.insert(0, sys.argv[1])
from slicer_bootstrap import bootstrap
bootstrap()
import slicer
# --- TEST STAND-INS for the Slicer application: it quits with slicer.util.exit(code) ---
slicer.app = object()
slicer.util.exit = lambda code: sys.exit(code)
# --- end of stand-ins ---
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run_in_slicer(*args):
    return subprocess.run(
        [sys.executable, "-c", RUN_AS_SLICER, os.path.join(REPO, "Testing"), SCRIPT, "--", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


def _two_patients_named_alike(tmp_path):
    """siteA/scan.nii.gz and siteB/scan.nii.gz: two different scans with the same file name."""
    import SimpleITK as sitk

    scans = []
    for site, flip in (("siteA", False), ("siteB", True)):
        (tmp_path / site).mkdir()
        image = sitk.ReadImage(SAMPLE)
        sitk.WriteImage(sitk.Flip(image, [flip, False, False]), str(tmp_path / site / "scan.nii.gz"))
        scans.append(tmp_path / site / "scan.nii.gz")
    return scans


def _errors(done):
    return [line for line in done.stderr.splitlines() if line.startswith("deface_batch: error:")]


def test_same_name_clash_is_refused_before_anything_runs(tmp_path):
    site_a, site_b = _two_patients_named_alike(tmp_path)
    out = tmp_path / "out"
    done = _run_in_slicer(site_a, site_b, "-o", out, "--engine", "box", "--overwrite")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = _errors(done)
    assert len(errors) == 1, done.stderr
    assert str(site_a) in errors[0] and str(site_b) in errors[0] and "scan_defaced.nii.gz" in errors[0]
    assert not [line for line in done.stdout.splitlines() if line.startswith("done")]
    assert not out.exists() or os.listdir(out) == []  # nothing was written, not even the folder's contents


def test_another_inputs_outputs_are_never_replaced_even_with_overwrite(tmp_path):
    site_a, site_b = _two_patients_named_alike(tmp_path)
    out = tmp_path / "out"
    first = _run_in_slicer(site_a, "-o", out, "--engine", "box")
    assert first.returncode == 0, first.stdout + first.stderr
    sidecar = json.loads((out / "scan_deface.json").read_text())
    # The sidecar says whose outputs these are: that is what lets the next run refuse.
    assert sidecar["input"]["path"] == os.path.abspath(site_a)
    assert sidecar["input"]["sha256"] == hashlib.sha256(site_a.read_bytes()).hexdigest()
    before = tree_hashes(out)

    second = _run_in_slicer(site_b, "-o", out, "--engine", "box", "--overwrite")
    assert second.returncode == 1, second.stdout + second.stderr
    lines = second.stdout.splitlines()
    assert any(
        line.startswith("failed")
        and str(site_b) in line
        and "holds the outputs of another input" in line
        and str(site_a) in line
        for line in lines
    ), second.stdout
    assert tree_hashes(out) == before  # siteA's outputs are untouched, byte for byte

    # The same input again without --overwrite is skipped: its own outputs are complete.
    third = _run_in_slicer(site_a, "-o", out, "--engine", "box")
    assert third.returncode == 0 and any(line.startswith("skipped") for line in third.stdout.splitlines()), (
        third.stdout + third.stderr
    )
    assert tree_hashes(out) == before


def test_an_unexpected_error_in_one_case_does_not_end_the_batch(tmp_path):
    # A folder where a.nii.gz's defaced output must go: replacing it is an OSError (IsADirectoryError), not a
    # DefaceError. It costs that case, in one sentence; b.nii.gz is still defaced.
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        shutil.copy(SAMPLE, inputs / f"{name}.nii.gz")
    out = tmp_path / "out"
    (out / "a_defaced.nii.gz").mkdir(parents=True)
    done = _run_in_slicer(inputs, "-o", out, "--engine", "box", "--overwrite")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    records = {
        line.split()[1].rstrip(":"): line
        for line in done.stdout.splitlines()
        if line.split() and line.split()[0] in ("done", "failed", "skipped")
    }
    assert records[str(inputs / "a.nii.gz")].startswith("failed"), done.stdout
    assert "a_defaced.nii.gz" in records[str(inputs / "a.nii.gz")]
    assert records[str(inputs / "b.nii.gz")].startswith("done"), done.stdout
    assert {"b_defaced.nii.gz", "b_facemask.nii.gz", "b_deface.json"} <= set(os.listdir(out))
    assert "1 defaced, 0 skipped, 1 failed" in done.stdout


def test_plain_python_says_the_script_runs_inside_slicer(tmp_path):
    # Plain Python, slicer-core importable but no Slicer application (no MRML scene): the case the review hit.
    done = subprocess.run(
        [sys.executable, SCRIPT, "--", SAMPLE, "-o", str(tmp_path / "out"), "--engine", "box"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "AttributeError" not in done.stderr
    errors = _errors(done)
    assert len(errors) == 1 and done.stderr.strip() == errors[0], done.stderr
    assert "runs inside 3D Slicer" in errors[0] and "--python-script" in errors[0]
    assert "ctadeface deface" in errors[0]
    assert not (tmp_path / "out").exists()
