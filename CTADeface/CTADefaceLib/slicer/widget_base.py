"""The part both module widgets (CTADeface, CTADefaceEval) share: Slicer's scripted-module template and its chores.

A module widget subclasses `ModuleWidget` and keeps only what is its own: the buttons and what they do,
which buttons are enabled, and the parameter node class (through its logic). Here:
- the template's parameter-node life cycle: setup loads the .ui and observes the scene; enter connects the
  GUI, exit disconnects it, a scene close lets the node go (it is about to be deleted) and takes a fresh one;
- Reload drops the module's libraries from sys.modules (Slicer's Reload re-reads only the module file);
- one child process at a time, polled by a timer into the log and the progress bar, with Cancel;
- the first-use installation dialogs (PyTorch through the PyTorch extension, then pip for the rest).

Slicer imports this with the module file, so it imports only what Slicer bundles (qt, slicer, vtk and the standard
library); each module's own libraries are imported on first use. The module that uses it declares CTADeface as a
dependency (CTADefaceLib comes with it).
"""

import logging
import sys
from typing import Any, Callable, Optional

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin


class ModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Subclasses set the class attributes below and implement `_updateButtons`."""

    #: the module's ScriptedLoadableModuleLogic subclass; its getParameterNode() returns the wrapped node
    logicClass: Optional[Callable[[], Any]] = None
    #: top-level packages the Reload button drops from sys.modules (the module's own libraries)
    libraries: tuple[str, ...] = ()
    #: the parameter-node field set to the scene's first scalar volume when it is empty (None: no such field)
    volumeParameter = None
    #: how often a running child process is read (ms)
    pollIntervalMs = 200
    #: the title of the error shown when handling a finished child process fails
    processFailedMessage = "The process failed."

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic: Any = None  # the logicClass instance (Slicer's classes carry no types)
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._process = None  # the running child process, if any
        self._onProcessDone: Optional[Callable[[Any], None]] = None

    # ------------------------------------------------------------------ set-up (Slicer's scripted-module template)
    def setup(self):
        """The .ui (Resources/UI/<module>.ui), the logic, the poll timer and the scene observers.

        The subclass's setup() calls this first, connects its own buttons, then calls initializeParameterNode().
        """
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{self.moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        if self.logicClass is None:
            raise TypeError(f"{type(self).__name__} must set logicClass")
        self.logic = self.logicClass()
        self._timer = qt.QTimer()
        self._timer.setInterval(self.pollIntervalMs)
        self._timer.connect("timeout()", self._pollProcess)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

    def connectButtons(self, handlers):
        """handlers: (button, method) pairs; each button's click calls its method."""
        for button, handler in handlers:
            button.connect("clicked(bool)", handler)

    def cleanup(self):
        self.onCancel()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        # Do not react to parameter node changes (the GUI is updated when the user enters the module again)
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)  # the parameter node is about to go: do not use it any more

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if self.volumeParameter and not getattr(self._parameterNode, self.volumeParameter):
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                setattr(self._parameterNode, self.volumeParameter, firstVolumeNode)

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # the widgets carry a "SlicerParameterName" property in the .ui
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._updateButtons()

    def onReload(self):
        """Reload the libraries too: Slicer's Reload re-reads only the module file."""
        prefixes = tuple(library + "." for library in self.libraries)
        for name in [name for name in sys.modules if name in self.libraries or name.startswith(prefixes)]:
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)

    # ------------------------------------------------------------------ state shown
    def _updateButtons(self, *unused):
        raise NotImplementedError("each module widget enables its own buttons")

    def _processStateChanged(self):
        """Called when a child process starts or ends; the subclass may show more than the buttons."""
        self._updateButtons()

    def _log(self, text):
        self.ui.logTextEdit.appendPlainText(text)
        logging.info(text)

    # ------------------------------------------------------------------ child processes
    def _runProcess(self, process, onDone):
        """Poll the started `process` until it ends, then call onDone(process); errors it raises are shown."""
        self._process, self._onProcessDone = process, onDone
        self.ui.progressBar.value = 0
        self._timer.start()
        self._processStateChanged()

    def _pollProcess(self):
        process = self._process
        if process is None:
            return
        for line in process.poll():
            self._log(line)
        self.ui.progressBar.value = int(round(process.progress * 100))  # the child's progress, 0 to 1
        if process.finished:
            self._timer.stop()
            self._process, onDone = None, self._onProcessDone
            try:
                with slicer.util.tryWithErrorDisplay(self.processFailedMessage, waitCursor=True):
                    if onDone is not None:  # _runProcess sets both together
                        onDone(process)
            finally:
                self._processStateChanged()

    def onCancel(self):
        if self._process is not None:
            self._process.cancel()
            self._log("Cancelled.")

    # ------------------------------------------------------------------ first-use dependencies
    def ensurePackages(self, check, task):
        """Return when check() reports nothing missing; else offer the installation and raise a DefaceError.

        check: returns a CTADefaceLib.slicer.installer DependencyReport (called again after each step);
        task: what needs the packages, to start the sentence that says why it cannot run ("Defacing with the
        model"). Asked on every click until installed: a declined or failed installation is never a silent no-op.
        """
        from ..errors import DefaceError
        from . import installer

        report = check()
        if report.complete:
            return
        if report.missing_torch or report.missing_torchvision:
            try:
                import PyTorchUtils  # the PyTorch extension picks the right CUDA/CPU build of torch + torchvision
            except ImportError:
                raise DefaceError(installer.torch_install_hint()) from None
            if not PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=True, torchVersionRequirement=installer.torch_requirement()
            ):
                raise DefaceError(f"{task} needs PyTorch, which was not installed.")
        after = check()
        if not after.complete:
            if not slicer.util.confirmOkCancelDisplay(after.summary() + " Install now?"):
                raise DefaceError(f"{task} needs packages that are not installed: {after.summary()}")
            with slicer.util.WaitCursor():
                after = installer.run_install(after, python=sys.executable, log=self._log)
        if installer.restart_needed(report, after):
            raise DefaceError("PyTorch was installed: restart Slicer, then try again.")
        if not after.complete:
            raise DefaceError(after.summary() + " Installation did not complete; see the Python console.")
