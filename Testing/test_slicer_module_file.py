"""CTADeface.py loads without the Slicer application and without heavy packages.

qt, ctk and slicer.ScriptedLoadableModule exist only inside Slicer; the stand-ins below are
LABELLED TEST STAND-INS with just the names the module file touches at import time.
"""

import ast
import os
import subprocess
import sys

from slicer_standins import PRELUDE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_FILE = os.path.join(REPO, "CTADeface", "CTADeface.py")
HEAVY = ("torch", "nnunetv2", "SimpleITK", "scipy")


def test_no_heavy_import_at_module_level():
    tree = ast.parse(open(MODULE_FILE, encoding="utf-8").read())
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_level.add(node.module.split(".")[0])
    assert not top_level & set(HEAVY), top_level


STAND_IN_IMPORT = r"""
sys.path[:0] = [{ctadeface!r}]
import CTADeface
logic = CTADeface.CTADefaceLogic()
assert hasattr(logic, "applyDefacing") and hasattr(logic, "deface") and hasattr(logic, "saveGroundTruth")
heavy = [m for m in {heavy!r} if m in sys.modules]
print("HEAVY", heavy)
"""


def test_module_imports_with_stand_ins_and_loads_nothing_heavy():
    code = PRELUDE + STAND_IN_IMPORT.format(ctadeface=os.path.join(REPO, "CTADeface"), heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_core_library_imports_no_slicer_except_the_bridge():
    """The design rule: only slicer/bridge.py touches MRML; everything else runs without Slicer."""
    lib = os.path.join(REPO, "CTADeface", "CTADefaceLib")
    offenders = []
    for dirpath, _, filenames in os.walk(lib):
        for name in filenames:
            if not name.endswith(".py") or os.path.join(dirpath, name) == os.path.join(lib, "slicer", "bridge.py"):
                continue
            tree = ast.parse(open(os.path.join(dirpath, name), encoding="utf-8").read())
            for node in ast.walk(tree):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and node.level == 0
                    else []
                )
                if any(n.split(".")[0] in ("slicer", "qt", "ctk", "vtk") for n in names):
                    offenders.append(os.path.relpath(os.path.join(dirpath, name), lib))
    assert offenders == []
