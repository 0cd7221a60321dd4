"""Which widget can be bound to which parameter-node field: Slicer's own rules, as code the tests can apply.

Read from Base/Python/slicer/parameterNodeWrapper/guiConnectors.py at v5.8.0, v5.10.0 and main; each rule
names the connector class it comes from. Only the widget types this project binds are listed: a binding to
any other widget type is reported, so that a new binding makes someone read the real connector first.
Standard library only: it runs in the Slicer-equivalent venvs and under pytest.
"""

from __future__ import annotations

import typing
import xml.etree.ElementTree as ET

SLICER_PARAMETER_NAME = "SlicerParameterName"  # wrapper.py: SlicerParameterNamePropertyName


def split(annotation):
    """(type, [annotations]) like parameterNodeWrapper.util.splitAnnotations."""
    if typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        return args[0], list(args[1:])
    return annotation, []


def _choice(annotations):
    return next((a for a in annotations if type(a).__name__ == "Choice"), None)


def _bounded(annotations):
    names = {type(a).__name__ for a in annotations}
    return "WithinRange" in names or {"Minimum", "Maximum"} <= names


def problem(widget_class: str, annotation, slicer_version: str = "5.10") -> str | None:
    """Why Slicer's connectGui would raise (or silently misbehave) for this binding; None when it is fine."""
    datatype, annotations = split(annotation)
    is_node = isinstance(datatype, type) and datatype.__name__.startswith("vtkMRML")
    if widget_class == "qMRMLNodeComboBox":
        # qMRMLNodeComboBoxToNodeConnector: type(widget) == slicer.qMRMLNodeComboBox and isNodeOrUnionOfNodes
        return None if is_node else "qMRMLNodeComboBox binds only an MRML node type (qMRMLNodeComboBoxToNodeConnector)"
    if widget_class in ("QComboBox", "ctkComboBox"):
        # QComboBoxToStringableConnector.create: "requires the Choice annotation to be used" (RuntimeError);
        # the connector then clears the combo box and lists only the choices (so no free text: an editable box
        # would show a typed value that the parameter never gets).
        if datatype not in (int, float, str, bool):
            return f"{widget_class} binds int/float/str/bool with a Choice, or an Enum (QComboBoxToEnumConnector)"
        if _choice(annotations) is None:
            return (
                f"{widget_class} bound to {datatype.__name__} needs Annotated[..., Choice(...)]: "
                "QComboBoxToStringableConnector raises 'requires the Choice annotation to be used'"
            )
        return None
    if widget_class in ("QDoubleSpinBox", "ctkDoubleSpinBox", "ctkSliderWidget"):
        # QDoubleSpinBoxCtkSliderWidgetToFloatConnector (5.8: float only) /
        # QDoubleSpinBoxCtkSliderWidgetToFloatIntConnector (5.10, main: float or int)
        allowed = (float,) if slicer_version == "5.8" else (float, int)
        if datatype not in allowed:
            return f"{widget_class} binds {' or '.join(t.__name__ for t in allowed)} in Slicer {slicer_version}"
        if not _bounded(annotations):
            # without WithinRange/Minimum+Maximum the connector sets minimum -inf and maximum +inf, overriding
            # the .ui's range (a ctkSliderWidget even raises "unbounded")
            return f"{widget_class} needs WithinRange (or Minimum and Maximum), else the connector unbounds it"
        return None
    if widget_class in ("QCheckBox", "ctkCheckBox"):
        # QCheckBoxToBoolConnector: unannotatedType(datatype) == bool
        return None if datatype is bool else f"{widget_class} binds only bool (QCheckBoxToBoolConnector)"
    if widget_class in ("QSpinBox", "QSlider"):
        # QSliderOrSpinBoxToIntConnector: int; a QSlider must be bounded
        return None if datatype is int else f"{widget_class} binds only int (QSliderOrSpinBoxToIntConnector)"
    return f"no rule recorded here for {widget_class}: read guiConnectors.py and add one"


def ui_bindings(ui_path: str) -> dict[str, str]:
    """{parameter name: widget class} for every widget with a SlicerParameterName property in a .ui file."""
    bindings = {}
    for widget in ET.parse(ui_path).iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == SLICER_PARAMETER_NAME:
                bindings[prop.findtext("string")] = widget.get("class")
    return bindings


def check(ui_path: str, hints: dict, slicer_version: str) -> list[str]:
    """Every problem with the .ui's bindings against the parameter node's annotations (get_type_hints(...,
    include_extras=True) of the class given to @parameterNodeWrapper)."""
    problems = []
    for name, widget_class in sorted(ui_bindings(ui_path).items()):
        if name not in hints:
            problems.append(f"{name}: bound in the .ui but not a parameter (wrapper.py raises on unknown names)")
            continue
        why = problem(widget_class, hints[name], slicer_version)
        if why:
            problems.append(f"{name}: {why}")
    return problems
