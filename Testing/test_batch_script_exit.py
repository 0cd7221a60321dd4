"""Scripts/deface_batch.py run as Slicer runs it (`--python-script S.py -- ARGS`): it must always end Slicer.

Slicer does not exit by itself after an uncaught exception (outside testing mode), so every failure has to
become one sentence on stderr and `slicer.util.exit(code)`. The script runs in a fresh interpreter with the real
slicer-core MRML; only `slicer.app` and `slicer.util.exit` (the Slicer application) are stand-ins that record
the exit status.
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip("slicer")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "CTADeface", "Scripts", "deface_batch.py")
SAMPLE = os.path.join(REPO, "CTADeface", "CTADefaceLib", "data", "sample_phantom.nii.gz")

RUN_AS_SLICER = r"""
import runpy, sys
sys.path.insert(0, sys.argv[1])
EXIT_FILE = sys.argv[2]
from slicer_bootstrap import bootstrap
bootstrap()
import slicer
# --- TEST STAND-INS for the Slicer application: it quits with slicer.util.exit(code) ---
slicer.app = object()
def _exit(code):
    open(EXIT_FILE, "w").write(str(code))
slicer.util.exit = _exit
# --- end of stand-ins ---
sys.argv = [sys.argv[3], *sys.argv[4:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run_in_slicer(tmp_path, *args):
    exit_file = tmp_path / "exit-code"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "CTADeface"), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-c", RUN_AS_SLICER, os.path.join(REPO, "Testing"), str(exit_file), SCRIPT, "--", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    code = int(exit_file.read_text()) if exit_file.exists() else None
    return code, done


def test_an_unusable_output_folder_ends_slicer_with_one_sentence(tmp_path):
    # The output folder is checked before the model loads (as `ctadeface deface` does): a usage error, status 2.
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    code, done = _run_in_slicer(tmp_path, SAMPLE, "-o", str(not_a_folder / "out"), "--engine", "box")
    assert code == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("deface_batch: error:")]
    assert len(errors) == 1 and "cannot be created (Not a directory)" in errors[0], done.stderr


def test_a_usage_error_ends_slicer_with_status_2(tmp_path):
    code, done = _run_in_slicer(tmp_path, SAMPLE)  # no -o
    assert code == 2
    assert "the following arguments are required: -o/--output" in done.stderr


def test_a_successful_batch_ends_slicer_with_status_0(tmp_path):
    code, done = _run_in_slicer(tmp_path, SAMPLE, "-o", str(tmp_path / "out"), "--engine", "box")
    assert code == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "out")) == [
        "sample_phantom_deface.json",
        "sample_phantom_defaced.nii.gz",
        "sample_phantom_facemask.nii.gz",
    ]
