"""Exit statuses of the check, in real processes: REVIEW must not look like success to a data steward's script
(`ctadeface deface --check ... && share`): 3 when a case is REVIEW, 1 when a case failed (it wins), 0 otherwise."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("vtk")
pytest.importorskip("facenet_pytorch")

from builders import make_ct  # noqa: E402
from helpers import BOX, ctadeface  # noqa: E402

# Small renders (the calibration's size is what the check renders at); limits as in test_eval_verdict.py.
THRESHOLDS = {
    "detectors": {"mtcnn": 0.8},
    "landmarks": {"mtcnn": 0.6},
    "residual": {"nose": {"protrusion_mm": 5.0, "tissue_ml": 2.0}},
    "default_detector": 0.9,
    "calibration": {"render_size": 96},
}


@pytest.fixture(scope="module")
def ball_case(tmp_path_factory):
    """A head-sized ball of soft tissue in a bone shell: no face in the original, so the check cannot verify it
    and the verdict is REVIEW whatever the detectors make of it."""
    import SimpleITK as sitk

    folder = tmp_path_factory.mktemp("ball")
    sitk.WriteImage(make_ct(size=(64, 64, 64), spacing=(3.0, 3.0, 3.0)), str(folder / "ball.nii.gz"))
    (folder / "t.json").write_text(json.dumps(THRESHOLDS))
    return folder


@pytest.mark.slow  # a CLI start that imports torch and renders 28 small pictures
def test_deface_check_exits_3_when_a_case_is_review(ball_case, tmp_path):
    done = ctadeface("deface", ball_case / "ball.nii.gz", "-o", tmp_path / "out", *BOX, "--check", ball_case / "t.json")
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    assert "check REVIEW" in done.stdout and "1 to REVIEW" in done.stdout.splitlines()[-1], done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_deface_check_exits_1_when_a_case_failed_even_with_a_review(ball_case, tmp_path):
    broken = tmp_path / "in" / "broken.nii.gz"
    broken.parent.mkdir()
    broken.write_bytes(b"not an image")
    done = ctadeface(
        "deface", ball_case / "ball.nii.gz", broken, "-o", tmp_path / "out", *BOX, "--check", ball_case / "t.json"
    )
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    assert "1 failed" in done.stdout and "1 to REVIEW" in done.stdout, done.stdout


def test_the_help_documents_the_exit_statuses():
    for args in (("deface", "--help"), ("eval", "check", "--help")):
        done = ctadeface(*args)
        text = " ".join(done.stdout.split())
        assert done.returncode == 0 and "3" in text and "REVIEW" in text and "Exit status" in text, text


@pytest.mark.slow
def test_batch_script_exits_3_when_a_case_is_review(ball_case, tmp_path):
    """deface_batch.py --check run as Slicer runs it (slicer-core MRML; the application's exit is a stand-in)."""
    pytest.importorskip("slicer")
    from helpers import cli_environment
    from test_batch_script_safety import RUN_AS_SLICER, SCRIPT

    testing = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run(
        [sys.executable, "-c", RUN_AS_SLICER, testing, SCRIPT, "--"]
        + [str(ball_case / "ball.nii.gz"), "-o", str(tmp_path / "out"), "--engine", "box"]
        + ["--check", str(ball_case / "t.json")],
        capture_output=True,
        text=True,
        env=cli_environment(),
        timeout=900,
    )
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    assert "check REVIEW" in done.stdout and "1 to REVIEW" in done.stdout.splitlines()[-1], done.stdout
