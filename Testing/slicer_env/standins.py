"""TEST STAND-INS for what only the 3D Slicer application provides: qt, ctk and the `slicer` package.

Used by driver.py inside the Slicer-equivalent venvs (Slicer's bundled packages and nothing else; slicer-core
cannot be installed there). They are deliberately small, and they enforce the rules of the real API that
matter to the module files:
- `slicer.util.loadUI` reads the real .ui file: every widget the module touches must exist in it;
- `parameterNodeWrapper`'s connectGui applies Slicer's GUI connector rules (connector_rules.py, read from
  guiConnectors.py) and raises RuntimeError as Slicer does; at 5.8 connectGui returns None (wrapper.py there);
- widgets reject attributes a Qt widget of that class does not have, so a typo fails here, not in Slicer.
Everything is recorded (errors shown, dialogs opened) for the driver's checks.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
import typing
import xml.etree.ElementTree as ET

import connector_rules
import vtk

RECORD = {"errors": [], "dialogs": [], "confirm": [], "reloaded": [], "infos": []}
ANSWERS = {"getExistingDirectory": "", "getOpenFileName": "", "confirmOkCancelDisplay": False}


# ------------------------------------------------------------------------------------ qt
class Signal:
    def __init__(self):
        self.slots = []

    def connect(self, slot):
        self.slots.append(slot)

    def disconnect(self, slot):
        self.slots.remove(slot)

    def emit(self, *args):
        for slot in list(self.slots):
            slot(*args)


class QObject:
    _signals = ()

    def __init__(self, *args, **kwargs):
        self._properties, self._connections = {}, {}
        for name in self._signals:
            object.__setattr__(self, name, Signal())

    def connect(self, signature, slot):
        self._connections.setdefault(signature, []).append(slot)

    def setProperty(self, name, value):
        self._properties[name] = value

    def property(self, name):
        return self._properties.get(name)

    def blockSignals(self, block):
        return False

    def emitSignature(self, signature, *args):
        for slot in self._connections.get(signature, []):
            slot(*args)


class QWidget(QObject):
    enabled = True
    toolTip = ""
    objectName = ""

    def setMRMLScene(self, scene):
        self.mrmlScene = scene

    def layout(self):
        return getattr(self, "_layout", None) or QGridLayout()

    def deleteLater(self):
        pass


class QPushButton(QWidget):
    text = ""

    def click(self):
        self.emitSignature("clicked(bool)", False)


class QLabel(QWidget):
    text = ""

    def setPixmap(self, pixmap):
        pass

    def setWordWrap(self, on):
        pass

    def setAlignment(self, alignment):
        pass

    def setToolTip(self, tip):
        self.toolTip = tip


class QCheckBox(QWidget):
    _signals = ("stateChanged",)
    checked = False


class QDoubleSpinBox(QWidget):
    _signals = ("valueChanged",)
    value, minimum, maximum, decimals, singleStep = 0.0, 0.0, 99.99, 2, 1.0


class QSpinBox(QDoubleSpinBox):
    pass


class QComboBox(QWidget):
    _signals = ("currentIndexChanged",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._items, self._index = [], -1

    def addItem(self, text, data=None):
        self._items.append((text, data))
        if self._index < 0:
            self.currentIndex = 0

    def addItems(self, texts):
        for text in texts:
            self.addItem(text)

    def clear(self):
        self._items, self._index = [], -1

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self._items) if d == data), -1)

    def setCurrentIndex(self, index):
        self.currentIndex = index

    @property
    def currentIndex(self):
        return self._index

    @currentIndex.setter
    def currentIndex(self, index):
        if index != self._index:
            self._index = index
            self.currentIndexChanged.emit(index)
            self.emitSignature("currentIndexChanged(int)", index)

    @property
    def currentText(self):
        return self._items[self._index][0] if self._index >= 0 else ""

    @property
    def currentData(self):
        return self._items[self._index][1] if self._index >= 0 else None

    @property
    def count(self):
        return len(self._items)

    def itemText(self, index):
        return self._items[index][0]


class QProgressBar(QWidget):
    value = 0


class QPlainTextEdit(QWidget):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = []

    def appendPlainText(self, text):
        self.lines.append(text)


class QHeader(QObject):
    def setStretchLastSection(self, on):
        pass


class QTableWidget(QWidget):
    rowCount = 0

    def setHorizontalHeaderLabels(self, labels):
        self.labels = labels

    def horizontalHeader(self):
        return QHeader()

    def selectedItems(self):
        return []


class QGridLayout(QObject):
    def addWidget(self, *args):
        pass

    def removeWidget(self, widget):
        pass


class QVBoxLayout(QGridLayout):
    pass


class QTimer(QObject):
    def setInterval(self, ms):
        self.interval = ms

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class QFileDialog:
    @staticmethod
    def getExistingDirectory(*args):
        RECORD["dialogs"].append(("getExistingDirectory",) + args[1:])
        return ANSWERS["getExistingDirectory"]

    @staticmethod
    def getOpenFileName(*args):
        RECORD["dialogs"].append(("getOpenFileName",) + args[1:])
        return ANSWERS["getOpenFileName"]


class QDialog:
    Accepted, Rejected = 1, 0


class QScrollArea(QWidget):
    pass


def _qt_module():
    qt = types.ModuleType("qt")
    qt.__doc__ = "TEST STAND-IN for PythonQt's qt module"
    for cls in (
        QObject,
        QWidget,
        QPushButton,
        QLabel,
        QCheckBox,
        QDoubleSpinBox,
        QSpinBox,
        QComboBox,
        QProgressBar,
        QPlainTextEdit,
        QTableWidget,
        QGridLayout,
        QVBoxLayout,
        QTimer,
        QFileDialog,
        QDialog,
        QScrollArea,
    ):
        setattr(qt, cls.__name__, cls)
    qt.Qt = types.SimpleNamespace(SmoothTransformation=1, AlignHCenter=4, AlignTop=32)
    return qt


# ------------------------------------------------------------------------------------ ctk
class ctkCollapsibleButton(QWidget):
    text, collapsed = "", False


class ctkPathLineEdit(QWidget):
    currentPath = ""


def _ctk_module():
    ctk = types.ModuleType("ctk")
    ctk.__doc__ = "TEST STAND-IN for CTK's Python module"
    ctk.ctkCollapsibleButton, ctk.ctkPathLineEdit = ctkCollapsibleButton, ctkPathLineEdit
    return ctk


# ------------------------------------------------------------------------------------ slicer
class MRMLNode(vtk.vtkObject):
    """Node attributes as vtkMRMLNode keeps them: strings by name; GetAttribute gives None when unset."""

    def SetAttribute(self, name, value):
        self.__dict__.setdefault("attributes", {})[name] = value

    def GetAttribute(self, name):
        return self.__dict__.get("attributes", {}).get(name)

    def RemoveAttribute(self, name):
        self.__dict__.get("attributes", {}).pop(name, None)


class vtkMRMLScalarVolumeNode(MRMLNode):
    def GetName(self):
        return "volume"


class vtkMRMLSegmentationNode(MRMLNode):
    pass


class qMRMLNodeComboBox(QWidget):
    _signals = ("currentNodeChanged",)
    _node = None

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node):
        self._node = node
        self.currentNodeChanged.emit(node)


class qMRMLCheckableNodeComboBox(qMRMLNodeComboBox):
    def checkedNodes(self):
        return []


class qMRMLWidget(QWidget):
    pass


class Scene(vtk.vtkObject):
    """slicer.mrmlScene: the close events the module observes, and the first node of a class."""

    StartCloseEvent, EndCloseEvent = 66018, 66019  # vtkMRMLScene's event ids (values do not matter here)

    def __init__(self):
        self.nodes = []

    def GetFirstNodeByClass(self, name):
        return next((n for n in self.nodes if type(n).__name__ == name), None)

    def close(self):
        self.InvokeEvent(self.StartCloseEvent)
        self.nodes = []
        self.InvokeEvent(self.EndCloseEvent)


WIDGET_CLASSES = {
    cls.__name__: cls
    for cls in (
        QWidget,
        QPushButton,
        QLabel,
        QCheckBox,
        QDoubleSpinBox,
        QSpinBox,
        QComboBox,
        QProgressBar,
        QPlainTextEdit,
        QTableWidget,
        QScrollArea,
        ctkCollapsibleButton,
        ctkPathLineEdit,
        qMRMLNodeComboBox,
        qMRMLCheckableNodeComboBox,
        qMRMLWidget,
    )
}


def loadUI(path):
    """The .ui's named widgets as stand-ins, with their dynamic (stdset=0) properties set."""
    root = QWidget()
    root.children = []
    for element in ET.parse(path).iter("widget"):
        if element.get("class") not in WIDGET_CLASSES:
            raise RuntimeError(f"{path}: no stand-in for {element.get('class')}")
        widget = WIDGET_CLASSES[element.get("class")]()
        widget.objectName = element.get("name") or ""
        widget.className = element.get("class")
        for prop in element.findall("property"):
            if prop.get("stdset") == "0":
                widget.setProperty(prop.get("name"), prop.findtext("string"))
        root.children.append(widget)
    return root


def childWidgetVariables(root):
    return types.SimpleNamespace(**{w.objectName: w for w in root.children if w.objectName})


@contextlib.contextmanager
def tryWithErrorDisplay(message="", show=True, waitCursor=False):
    try:
        yield
    except Exception as error:
        RECORD["errors"].append(f"{message} {error}")


class VTKObservationMixin:
    """slicer.util.VTKObservationMixin's bookkeeping: (object, event, method) -> observer tag."""

    def __init__(self):
        self.Observations = []

    def addObserver(self, obj, event, method, priority=0.0):
        self.Observations.append((obj, event, method, obj.AddObserver(event, method, priority)))

    def removeObserver(self, obj, event, method):
        for o, e, m, tag in list(self.Observations):
            if o is obj and e == event and m == method:
                o.RemoveObserver(tag)
                self.Observations.remove((o, e, m, tag))

    def removeObservers(self, method=None):
        for o, e, m, tag in list(self.Observations):
            if method is None or m == method:
                o.RemoveObserver(tag)
                self.Observations.remove((o, e, m, tag))


def _parameter_node_wrapper_module(slicer_version):
    module = types.ModuleType("slicer.parameterNodeWrapper")
    module.__doc__ = "TEST STAND-IN for slicer.parameterNodeWrapper: connectGui applies Slicer's connector rules"

    class Choice:
        def __init__(self, choices):
            self.choices = tuple(choices)

    class WithinRange:
        def __init__(self, minimum, maximum):
            self.minimum, self.maximum = minimum, maximum

    def parameterNodeWrapper(cls):
        hints = typing.get_type_hints(cls, include_extras=True)
        defaults = {name: getattr(cls, name, None) for name in hints}

        class Wrapped:
            allParameters = hints

            def __init__(self, node):
                object.__setattr__(self, "parameterNode", node)
                store = node.__dict__.setdefault("values", dict(defaults))
                object.__setattr__(self, "_values", store)
                object.__setattr__(self, "_guis", {})
                object.__setattr__(self, "_nextTag", 0)

            def __getattr__(self, name):
                if name in hints:
                    return self._values[name]
                raise AttributeError(name)

            def __setattr__(self, name, value):
                if name not in hints:
                    raise AttributeError(f"{cls.__name__} has no parameter '{name}'")
                datatype, annotations = connector_rules.split(hints[name])
                choice = next((a for a in annotations if isinstance(a, Choice)), None)
                if choice is not None and value not in choice.choices:
                    raise ValueError(f"{value!r} is not one of {choice.choices}")  # validators.Choice
                self._values[name] = value
                self.parameterNode.Modified()

            def AddObserver(self, *args):
                return self.parameterNode.AddObserver(*args)

            def RemoveObserver(self, tag):
                return self.parameterNode.RemoveObserver(tag)

            def connectGui(self, gui):
                bound = {}
                for widget in gui.__dict__.values():
                    name = widget.property(connector_rules.SLICER_PARAMETER_NAME)
                    if not name:
                        continue
                    if name not in hints:
                        raise ValueError(f"'{name}' is not a parameter of {cls.__name__}")
                    why = connector_rules.problem(type(widget).__name__, hints[name], slicer_version)
                    if why:
                        raise RuntimeError(f"Unable to create GUI connector for '{name}': {why}")
                    _, annotations = connector_rules.split(hints[name])
                    choice = next((a for a in annotations if isinstance(a, Choice)), None)
                    if choice is not None:  # the connector refills the combo box with the choices only
                        widget.clear()
                        for c in choice.choices:
                            widget.addItem(str(c))
                    bound[name] = widget
                tag = self._nextTag  # wrapper.py: _nextParameterGUIsTag, never reused
                object.__setattr__(self, "_nextTag", tag + 1)
                self._guis[tag] = bound
                RECORD.setdefault("connected", []).append(sorted(bound))
                return None if slicer_version == "5.8" else tag  # 5.8's wrapper.py returns nothing

            def disconnectGui(self, tag):
                self._guis.pop(tag, None)

        Wrapped.__name__ = cls.__name__
        return Wrapped

    module.parameterNodeWrapper, module.Choice, module.WithinRange = parameterNodeWrapper, Choice, WithinRange
    return module


def _slm_module():
    module = types.ModuleType("slicer.ScriptedLoadableModule")
    module.__doc__ = "TEST STAND-IN for slicer.ScriptedLoadableModule"

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent
            self.moduleName = type(self).__name__
            parent.dependencies, parent.isEntered = [], True

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent or types.SimpleNamespace(isEntered=True)
            self.moduleName = type(self).__name__[: -len("Widget")]

        def setup(self):
            self.layout = QVBoxLayout()

        def resourcePath(self, filename):
            module = sys.modules[self.moduleName]
            return os.path.join(os.path.dirname(module.__file__), "Resources", filename)

        def onReload(self):
            RECORD["reloaded"].append(
                (self.moduleName, sorted(n for n in sys.modules if n.endswith("Lib") or ".slicer" in n))
            )

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            pass

        def getParameterNode(self):
            node = PARAMETER_NODES.setdefault(type(self).__name__, vtk.vtkObject())
            return node

    class ScriptedLoadableModuleTest:
        pass

    for cls in (
        ScriptedLoadableModule,
        ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
    ):
        setattr(module, cls.__name__, cls)
    return module


PARAMETER_NODES = {}


def install(slicer_version: str):
    """Put the stand-ins in sys.modules; returns the `slicer` stand-in."""
    slicer = types.ModuleType("slicer")
    slicer.__doc__ = "TEST STAND-IN for the Slicer application's `slicer` package"
    slicer.__path__ = []
    slicer.mrmlScene = Scene()
    slicer.vtkMRMLScalarVolumeNode, slicer.vtkMRMLSegmentationNode = vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
    util = types.ModuleType("slicer.util")
    util.loadUI, util.childWidgetVariables, util.tryWithErrorDisplay = loadUI, childWidgetVariables, tryWithErrorDisplay
    util.VTKObservationMixin = VTKObservationMixin
    util.mainWindow = lambda: None
    util.errorDisplay = lambda text, **kw: RECORD["errors"].append(text)
    util.infoDisplay = lambda text, **kw: RECORD["infos"].append(text)

    def confirmOkCancelDisplay(text, **kw):
        RECORD["confirm"].append(text)
        return ANSWERS["confirmOkCancelDisplay"]

    util.confirmOkCancelDisplay = confirmOkCancelDisplay
    util.WaitCursor = contextlib.nullcontext
    util.setSliceViewerLayers = lambda **kw: None
    slicer.util = util
    slicer.parameterNodeWrapper = _parameter_node_wrapper_module(slicer_version)
    slicer.ScriptedLoadableModule = _slm_module()
    slicer.qMRMLNodeComboBox = qMRMLNodeComboBox
    sys.modules.update(
        {
            "qt": _qt_module(),
            "ctk": _ctk_module(),
            "slicer": slicer,
            "slicer.util": util,
            "slicer.parameterNodeWrapper": slicer.parameterNodeWrapper,
            "slicer.ScriptedLoadableModule": slicer.ScriptedLoadableModule,
        }
    )
    return slicer
