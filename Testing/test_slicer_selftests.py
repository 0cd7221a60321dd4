"""The modules' own self tests (what Slicer's "Reload and Test" and ctest run) pass under slicer-core.

slicer_add_python_unittest in each module's CMakeLists.txt registers them with ctest in a Slicer build;
here they run with real MRML (slicer-core) and the labelled stand-ins of Testing/slicer_standins.py.
"""

import os
import re
import subprocess
import sys

import pytest

from slicer_standins import PRELUDE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN = r"""
sys.path[:0] = [{testing!r}, {ctadeface!r}, {ctadefaceeval!r}]
from slicer_bootstrap import bootstrap
bootstrap()
import {module}
from CTADefaceLib.slicer import installer as dependencies
if {box!r}:
    dependencies.is_available = lambda name: name not in ("torch", "nnunetv2", "torchvision")
{module}.{module}Test().runTest()
print("SELFTEST PASSED")
"""


def _run(module, tmp_path, box):
    pytest.importorskip("slicer")
    code = PRELUDE + RUN.format(
        testing=os.path.join(REPO, "Testing"),
        ctadeface=os.path.join(REPO, "CTADeface"),
        ctadefaceeval=os.path.join(REPO, "CTADefaceEval"),
        module=module,
        box=box,
    )
    env = dict(os.environ, CTADEFACE_HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)


def test_deface_self_test_with_the_box_engine(tmp_path):
    result = _run("CTADeface", tmp_path, box=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Defacing the sample with the box engine" in result.stdout and "SELFTEST PASSED" in result.stdout
    assert not os.path.exists(tmp_path / "home")  # the self test keeps its model cache to itself


@pytest.mark.slow
def test_deface_self_test_with_the_synthetic_model(tmp_path):
    pytest.importorskip("nnunetv2")
    result = _run("CTADeface", tmp_path, box=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Defacing the sample with the nnunet engine" in result.stdout and "SELFTEST PASSED" in result.stdout


def test_eval_self_test_without_face_models_says_so(tmp_path):
    result = _run("CTADefaceEval", tmp_path, box=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Scoring skipped: " in result.stdout and "SELFTEST PASSED" in result.stdout


@pytest.mark.slow
def test_eval_self_test_scores_the_sample(tmp_path):
    pytest.importorskip("facenet_pytorch")
    pytest.importorskip("cv2")
    result = _run("CTADefaceEval", tmp_path, box=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CTADefaceEval scoring test passed" in result.stdout and "SELFTEST PASSED" in result.stdout


def test_both_modules_register_their_self_test_with_ctest():
    for module in ("CTADeface", "CTADefaceEval"):
        text = open(os.path.join(REPO, module, "CMakeLists.txt"), encoding="utf-8").read()
        block = re.search(r"if\(BUILD_TESTING\)(.*?)endif\(\)", text, re.S)
        assert block and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in block.group(1)
        assert "WITH_GENERIC_TESTS" in text
