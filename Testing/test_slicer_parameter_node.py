"""Every widget the .ui files bind (SlicerParameterName) has a GUI connector in the real Slicer.

Slicer's parameterNodeWrapper (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py, read at v5.8.0,
v5.10.0 and main) picks a connector per (widget class, field type); connectGui raises RuntimeError when
none fits, in setup() and on every enter(). The rules are in Testing/slicer_env/connector_rules.py, each
with the connector class it comes from; here they are applied to the real .ui files and the real
parameter node classes (imported with the stand-ins, whose wrapper records the annotations as written).
"""

import json
import os
import subprocess
import sys
from typing import Annotated

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "Testing", "slicer_env"))
import connector_rules  # noqa: E402

DEFACE_UI = os.path.join(REPO, "CTADeface", "Resources", "UI", "CTADeface.ui")
EVAL_UI = os.path.join(REPO, "CTADefaceEval", "Resources", "UI", "CTADefaceEval.ui")

CHECK = r"""
import json, sys
sys.path[:0] = [{env!r}, {ctadeface!r}, {ctadefaceeval!r}]
import standins
standins.install({version!r})
import connector_rules, CTADeface, CTADefaceEval
print(json.dumps({{
    "deface": connector_rules.check({deface_ui!r}, CTADeface.CTADefaceParameterNode.allParameters, {version!r}),
    "eval": connector_rules.check({eval_ui!r}, CTADefaceEval.CTADefaceEvalParameterNode.allParameters, {version!r}),
}}))
"""


@pytest.mark.parametrize("version", ["5.8", "5.10", "main"])
def test_every_bound_widget_has_a_slicer_connector(version):
    code = CHECK.format(
        env=os.path.join(REPO, "Testing", "slicer_env"),
        ctadeface=os.path.join(REPO, "CTADeface"),
        ctadefaceeval=os.path.join(REPO, "CTADefaceEval"),
        deface_ui=DEFACE_UI,
        eval_ui=EVAL_UI,
        version=version,
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    problems = json.loads(result.stdout.strip().splitlines()[-1])
    assert problems == {"deface": [], "eval": []}


def test_the_ui_binds_the_settings_the_widget_needs():
    bindings = connector_rules.ui_bindings(DEFACE_UI)
    assert bindings == {
        "inputVolume": "qMRMLNodeComboBox",
        "faceSegmentation": "qMRMLNodeComboBox",
        "device": "QComboBox",
        "tileStep": "QDoubleSpinBox",
        "mirroring": "QCheckBox",
        "fillPolicy": "QComboBox",
        "fillValue": "QDoubleSpinBox",
        "exportFormat": "QComboBox",
        "addToDicomDatabase": "QCheckBox",
        "deidCleanDescriptors": "QCheckBox",
        "deidRetainDates": "QCheckBox",
        "deidRetainPatientCharacteristics": "QCheckBox",
        "deidRetainDeviceIdentity": "QCheckBox",
        "deidRetainSafePrivate": "QCheckBox",
    }
    assert connector_rules.ui_bindings(EVAL_UI) == {"originalVolume": "qMRMLNodeComboBox", "pictureSize": "QComboBox"}


class Choice:  # the rule looks for an annotation of this name, as findFirstAnnotation(validators.Choice) does
    def __init__(self, choices):
        self.choices = choices


class WithinRange:
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum


class vtkMRMLScalarVolumeNode:
    pass


def test_rules_reject_what_slicer_rejects():
    """The bindings the module had before: each raised (or misbehaved) in the real connectGui."""
    # a QComboBox bound to a plain str: "ComboBoxToStringableConnector requires the Choice annotation"
    assert "Choice" in connector_rules.problem("QComboBox", str)
    assert connector_rules.problem("QComboBox", Annotated[str, Choice(("p10", "air"))]) is None
    # an unbounded float spin box: the connector sets minimum -inf, maximum +inf over the .ui's range
    assert "WithinRange" in connector_rules.problem("QDoubleSpinBox", float)
    assert connector_rules.problem("QDoubleSpinBox", Annotated[float, WithinRange(0.1, 1.0)]) is None
    # 5.8's QDoubleSpinBoxCtkSliderWidgetToFloatConnector takes float only; 5.10 added int
    assert connector_rules.problem("QDoubleSpinBox", Annotated[int, WithinRange(0, 9)], "5.8")
    assert connector_rules.problem("QDoubleSpinBox", Annotated[int, WithinRange(0, 9)], "5.10") is None
    assert connector_rules.problem("QCheckBox", int) and connector_rules.problem("QCheckBox", bool) is None
    assert connector_rules.problem("qMRMLNodeComboBox", str)
    assert connector_rules.problem("qMRMLNodeComboBox", vtkMRMLScalarVolumeNode) is None
    assert "no rule" in connector_rules.problem("ctkRangeWidget", float)


def test_check_reports_an_unknown_parameter_name(tmp_path):
    ui = tmp_path / "x.ui"
    ui.write_text(
        '<ui><widget class="QCheckBox" name="box"><property name="SlicerParameterName" stdset="0">'
        "<string>mirrorring</string></property></widget></ui>"
    )
    assert connector_rules.check(str(ui), {"mirroring": bool}, "5.10") == [
        "mirrorring: bound in the .ui but not a parameter (wrapper.py raises on unknown names)"
    ]


def test_the_module_before_the_fix_fails_the_rules():
    """The parameter node this project shipped (device/fill as plain str on combo boxes) is caught."""
    old = {
        "inputVolume": vtkMRMLScalarVolumeNode,
        "faceSegmentation": vtkMRMLScalarVolumeNode,
        "device": str,
        "tileStep": float,
        "mirroring": bool,
        "fillPolicy": str,
        "fillValue": float,
        "exportFormat": str,
        # bound in today's .ui (correct bindings: not among the named)
        "addToDicomDatabase": bool,
        "deidCleanDescriptors": bool,
        "deidRetainDates": bool,
        "deidRetainPatientCharacteristics": bool,
        "deidRetainDeviceIdentity": bool,
        "deidRetainSafePrivate": bool,
    }
    named = {p.split(":")[0] for p in connector_rules.check(DEFACE_UI, old, "5.10")}
    assert named == {"device", "fillPolicy", "exportFormat", "tileStep", "fillValue"}
