"""CTADeface.py loads without the Slicer application and without heavy packages.

qt, ctk and slicer.ScriptedLoadableModule exist only inside Slicer; the stand-ins below are
LABELLED TEST STAND-INS with just the names the module file touches at import time.
"""

import ast
import os
import re
import subprocess
import sys

import pytest

from slicer_standins import PRELUDE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_FILE = os.path.join(REPO, "CTADeface", "CTADeface.py")
WIDGET_BASE = os.path.join(REPO, "CTADeface", "CTADefaceLib", "slicer", "widget_base.py")
HEAVY = ("torch", "nnunetv2", "SimpleITK", "scipy")


@pytest.mark.parametrize("path", [MODULE_FILE, WIDGET_BASE])
def test_no_heavy_import_at_module_level(path):
    """Slicer imports the module file and, with it, the widget base when the application starts."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_level.add(node.module.split(".")[0])
    assert not top_level & set(HEAVY), top_level


def test_widget_base_touches_only_widgets_both_ui_files_name():
    """The shared widget code reads self.ui.<name>: each name must be a widget of both modules' .ui files."""
    used = set(re.findall(r"self\.ui\.([A-Za-z_]\w*)", open(WIDGET_BASE, encoding="utf-8").read()))
    assert used == {"logTextEdit", "progressBar"}
    for module in ("CTADeface", "CTADefaceEval"):
        ui = open(os.path.join(REPO, module, "Resources", "UI", module + ".ui"), encoding="utf-8").read()
        assert used <= set(re.findall(r'<widget class="[^"]+" name="([^"]+)"', ui)), module


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


def test_core_library_imports_no_slicer_except_the_bridge_and_the_widget_base():
    """The design rule: only slicer/bridge.py touches MRML and only slicer/widget_base.py (imported by the module
    files, inside Slicer) touches Qt; everything else runs without Slicer."""
    lib = os.path.join(REPO, "CTADeface", "CTADefaceLib")
    allowed = {os.path.join(lib, "slicer", "bridge.py"), os.path.join(lib, "slicer", "widget_base.py")}
    offenders = []
    for dirpath, _, filenames in os.walk(lib):
        for name in filenames:
            if not name.endswith(".py") or os.path.join(dirpath, name) in allowed:
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


def test_both_widgets_take_the_template_from_the_shared_base():
    """The parameter-node life cycle, Reload, the child-process poll and the install dialogs are written once."""
    shared = {"cleanup", "enter", "exit", "initializeParameterNode", "onReload", "_pollProcess", "_runProcess"}
    shared |= {"onCancel", "_log", "ensurePackages", "onSceneEndClose"}
    for module in ("CTADeface", "CTADefaceEval"):
        tree = ast.parse(open(os.path.join(REPO, module, module + ".py"), encoding="utf-8").read())
        widget = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == module + "Widget")
        assert [ast.unparse(base) for base in widget.bases] == ["ModuleWidget"]
        defined = {n.name for n in widget.body if isinstance(n, ast.FunctionDef)}
        assert not defined & shared, f"{module}Widget redefines {sorted(defined & shared)}"
        assert not [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "ensurePackages"]
