"""CTADeface: remove the face from head CT angiography in 3D Slicer (CTA-DEFACE nnU-Net model).

Thin by design: the widget turns clicks into calls on `CTADefaceLib.slicerlogic.DefaceLogic`;
the model runs in a child process (`ctadeface deface`) so Slicer stays responsive and Cancel
works. Nothing heavy (torch, nnunetv2, SimpleITK) is imported here: the module must load in an
instant on a fresh Slicer, and missing packages are offered for installation on first use.
"""

import logging
import os
import sys

import qt
import slicer
import vtk  # noqa: F401  (Slicer modules conventionally have it; VTK is always present)
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from CTADefaceLib.slicerlogic import EXPORT_FORMATS, DefaceLogic

try:  # Slicer >= 5.2; older Slicers run the widget without a persisted parameter node
    from slicer.parameterNodeWrapper import parameterNodeWrapper
except ImportError:
    parameterNodeWrapper = None

BOX_ENGINE_ITEM = "box (no model: ICHSEG-style prism)"
FILL_CHOICES = ("p10", "air")
DEVICE_CHOICES = ("auto", "cuda", "cpu")


class CTADeface(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CTA Deface"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SlicerCTADeface contributors"]
        self.parent.helpText = (
            "Removes the face from head CT/CTA: the CTA-DEFACE nnU-Net model segments facial soft tissue, "
            "you can correct the 'Face' segment in Segment Editor, then Apply replaces those voxels by the "
            "image's 10th percentile (or a chosen value) in a new volume. Export writes the defaced volume, "
            "the mask and a provenance sidecar; 'Save as ground truth' grows an nnU-Net training dataset.")
        self.parent.acknowledgementText = (
            "Model: CTA-DEFACE (Mahmutoglu et al., CCI Bonn / Heidelberg). nnU-Net v2 by Isensee et al.")


if parameterNodeWrapper is not None:
    @parameterNodeWrapper
    class CTADefaceParameterNode:
        inputVolume: slicer.vtkMRMLScalarVolumeNode
        faceSegmentation: slicer.vtkMRMLSegmentationNode
        device: str = "auto"
        tileStep: float = 0.5
        mirroring: bool = False
        fill: str = "p10"
else:
    CTADefaceParameterNode = None


class CTADefaceLogic(ScriptedLoadableModuleLogic, DefaceLogic):
    """Slicer's logic base (parameter node) + the Qt-free DefaceLogic that does the work."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        DefaceLogic.__init__(self)

    def getParameterNode(self):
        node = ScriptedLoadableModuleLogic.getParameterNode(self)
        return CTADefaceParameterNode(node) if CTADefaceParameterNode is not None else node


class CTADefaceWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._process = None  # the running child (deface or model install)
        self._onProcessDone = None
        self._dependenciesAsked = False

    # ------------------------------------------------------------------ set-up
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CTADeface.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CTADefaceLogic()
        self.ui.deviceSelector.addItems(list(DEVICE_CHOICES))
        self.ui.fillSelector.addItems(list(FILL_CHOICES))
        self._refreshModels()
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self._pollProcess)
        for button, handler in ((self.ui.defaceButton, self.onDeface), (self.ui.applyButton, self.onApply),
                                (self.ui.exportButton, self.onExport), (self.ui.cancelButton, self.onCancel),
                                (self.ui.saveGroundTruthButton, self.onSaveGroundTruth),
                                (self.ui.installModelButton, self.onInstallModel),
                                (self.ui.installFromFileButton, self.onInstallModelFromFile)):
            button.connect("clicked(bool)", handler)
        self.ui.modelSelector.connect("currentIndexChanged(int)", self._showModelState)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._updateButtons)
        self.ui.segmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._updateButtons)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()
        self._updateButtons()

    def cleanup(self):
        self.onCancel()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self._parameterNode = self.logic.getParameterNode()
        if CTADefaceParameterNode is not None:
            if not self._parameterNode.inputVolume:
                self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            self._parameterNode.connectGui(self.ui)  # widgets carry SlicerParameterName in the .ui

    # ------------------------------------------------------------------ state shown
    def _refreshModels(self):
        from CTADefaceLib.models.install import all_entries, is_installed

        current = self.ui.modelSelector.currentData
        self.ui.modelSelector.clear()
        for name, entry in all_entries().items():
            state = "installed" if is_installed(name) else "not installed"
            self.ui.modelSelector.addItem(f"{name} ({state})", name)
        self.ui.modelSelector.addItem(BOX_ENGINE_ITEM, "box")
        index = self.ui.modelSelector.findData(current) if current else 0
        self.ui.modelSelector.setCurrentIndex(max(index, 0))
        self._showModelState()

    def _showModelState(self, *unused):
        from CTADefaceLib.models.install import all_entries, is_installed

        name = self.ui.modelSelector.currentData
        entry = all_entries().get(name)
        if name == "box" or entry is None:
            self.ui.modelStateLabel.text = "no model needed"
        else:
            clinical = "" if entry.clinical else " - NOT FOR CLINICAL USE"
            state = "installed" if is_installed(name) else f"not installed ({entry.total_bytes / 1e6:.0f} MB)"
            self.ui.modelStateLabel.text = state + clinical
        self.ui.installModelButton.enabled = entry is not None and not is_installed(name) and self._process is None

    def _updateButtons(self, *unused):
        busy = self._process is not None
        volume = self.ui.inputVolumeSelector.currentNode()
        segmentation = self.ui.segmentationSelector.currentNode()
        self.ui.defaceButton.enabled = volume is not None and not busy
        for button in (self.ui.applyButton, self.ui.exportButton, self.ui.saveGroundTruthButton):
            button.enabled = volume is not None and segmentation is not None and not busy
        self.ui.cancelButton.enabled = busy

    def _log(self, text):
        self.ui.logTextEdit.appendPlainText(text)
        logging.info(text)

    def _settings(self):
        from CTADefaceLib.pipeline import DefaceSettings

        choice = self.ui.modelSelector.currentData
        return DefaceSettings(engine="box" if choice == "box" else "nnunet", model=choice or "cta-deface",
                              device=self.ui.deviceSelector.currentText, mirroring=self.ui.mirroringCheckBox.checked,
                              tile_step=self.ui.tileStepSpinBox.value, fill=self._fill())

    def _fill(self):
        from CTADefaceLib.deface import parse_fill

        return parse_fill(self.ui.fillSelector.currentText)  # a typo is a DefaceError shown as one sentence

    # ------------------------------------------------------------------ child processes
    def _runProcess(self, process, onDone):
        self._process, self._onProcessDone = process, onDone
        self.ui.progressBar.value = 0
        self._timer.start()
        self._updateButtons()

    def _pollProcess(self):
        process = self._process
        if process is None:
            return
        for line in process.poll():
            self._log(line)
        self.ui.progressBar.value = int(process.progress * 100)
        if process.finished:
            self._timer.stop()
            self._process, onDone = None, self._onProcessDone
            try:
                with slicer.util.tryWithErrorDisplay("CTADeface failed.", waitCursor=True):
                    onDone(process)
            finally:
                self._updateButtons()
                self._showModelState()

    def onCancel(self):
        if self._process is not None:
            self._process.cancel()
            self._log("Cancelled.")

    # ------------------------------------------------------------------ actions
    def onDeface(self):
        with slicer.util.tryWithErrorDisplay("Defacing could not start.", waitCursor=True):
            settings = self._settings()
            if not self._ensureDependencies(settings.engine):
                return
            volume = self.ui.inputVolumeSelector.currentNode()
            self._log(f"Defacing {volume.GetName()} with {settings.engine} {settings.model} on {settings.device}...")
            process = self.logic.startDeface(volume, settings)
            self._runProcess(process, lambda done: self._defaceFinished(done, volume))

    def _defaceFinished(self, process, volume):
        segmentation = self.logic.finishDeface(process, volume)
        self.ui.segmentationSelector.setCurrentNode(segmentation)
        self.ui.progressBar.value = 100
        self._log("Face segmented: check and correct the 'Face' segment in Segment Editor, then Apply defacing.")

    def onApply(self):
        with slicer.util.tryWithErrorDisplay("Applying the defacing failed.", waitCursor=True):
            volume = self.ui.inputVolumeSelector.currentNode()
            defaced = self.logic.applyDefacing(volume, self.ui.segmentationSelector.currentNode(), self._fill())
            slicer.util.setSliceViewerLayers(background=defaced, fit=True)
            self._log(f"Created {defaced.GetName()}; the original volume is unchanged.")

    def onExport(self):
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Export defaced volume to")
        if not folder:
            return
        fileFormat = qt.QInputDialog.getItem(slicer.util.mainWindow(), "Export", "File format:",
                                             list(EXPORT_FORMATS), 0, False)
        with slicer.util.tryWithErrorDisplay("Export failed.", waitCursor=True):
            settings = self._settings()
            sidecar = self.logic.export(self.ui.inputVolumeSelector.currentNode(),
                                        self.ui.segmentationSelector.currentNode(), folder, fileFormat or ".nii.gz",
                                        settings)
            self._log("Exported " + ", ".join(sidecar["outputs"].values()))

    def onSaveGroundTruth(self):
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(),
                                                     "nnU-Net dataset folder (e.g. Dataset501_FaceCorrections)")
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Saving the ground truth failed.", waitCursor=True):
            case = self.logic.saveGroundTruth(self.ui.inputVolumeSelector.currentNode(),
                                              self.ui.segmentationSelector.currentNode(), folder)
            self._log(f"Saved ground-truth case {case} in {folder}.")

    def onInstallModel(self, source=None):
        from CTADefaceLib.subprocess_runner import DefaceProcess

        name = self.ui.modelSelector.currentData
        argv = [sys.executable, "-m", "CTADefaceLib.cli", "models", "install", name]
        if source:
            argv += ["--from", source]
        self._log(f"Installing the model '{name}'" + (f" from {source}" if source else " (download)") + "...")
        self._runProcess(DefaceProcess(argv).start(), self._installFinished)

    def onInstallModelFromFile(self):
        source = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), "Model zip (or cancel to pick a folder)",
                                                "", "Zip files (*.zip)")
        if not source:
            source = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Model folder")
        if source:
            self.onInstallModel(source)

    def _installFinished(self, process):
        from CTADefaceLib.errors import ModelError

        message = process.error_message()
        self._refreshModels()
        if message:
            raise ModelError(message)
        self._log("Model installed and verified.")

    # ------------------------------------------------------------------ first-use dependencies
    def _ensureDependencies(self, engine):
        """Offer, once, to install what the model needs; False when it cannot run yet."""
        from CTADefaceLib import dependencies

        report = dependencies.check(engine)
        asked, ready = ensureDependencies(report, lambda: dependencies.check(engine),
                                          needsPip=report.missing_nnunet or report.missing_core,
                                          alreadyAsked=self._dependenciesAsked, log=self._log,
                                          restartMessage="PyTorch was installed: restart Slicer, then click Deface again.")
        self._dependenciesAsked = asked
        return ready


def ensureDependencies(report, recheck, needsPip, alreadyAsked, log, restartMessage):
    """First-use installs shared by both modules' widgets: torch through the PyTorch extension, the rest
    through pip without replacing Slicer's own packages. Asks once. Returns (asked, ready)."""
    from CTADefaceLib import dependencies

    if report.complete:
        return alreadyAsked, True
    if report.missing_torch or getattr(report, "missing_torchvision", False):
        try:
            import PyTorchUtils  # the PyTorch extension picks the right CUDA/CPU build of torch + torchvision
        except ImportError:
            slicer.util.errorDisplay(dependencies.torch_install_hint())
            return alreadyAsked, False
        if not PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True):
            return alreadyAsked, False
    if needsPip:
        if alreadyAsked or not slicer.util.confirmOkCancelDisplay(report.summary() + " Install now?"):
            return True, False
        alreadyAsked = True
        _pipInstall(dependencies, report, log)
    after = recheck()
    if dependencies.restart_needed(report, after):
        slicer.util.infoDisplay(restartMessage)
        return alreadyAsked, False
    if not after.complete:
        slicer.util.errorDisplay(after.summary() + " Installation did not complete; see the Python console.")
    return alreadyAsked, after.complete


def _pipInstall(dependencies, report, log):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(dependencies.owned_constraints()) + "\n")
    with slicer.util.WaitCursor():
        for argv in dependencies.pip_commands(report, sys.executable, constraints.name):
            log(" ".join(argv))
            slicer.util.logProcessOutput(slicer.util.launchConsoleProcess(argv))
    os.remove(constraints.name)


class CTADefaceTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload and Test): edit a face segment and apply; no model needed."""

    def runTest(self):
        slicer.mrmlScene.Clear()
        self.test_ApplyChangesOnlyTheEditedFace()

    def test_ApplyChangesOnlyTheEditedFace(self):
        import numpy as np

        from CTADefaceLib import slicerbridge

        array = np.full((10, 16, 12), -1000, np.int16)
        array[2:8, 3:13, 2:10] = 40
        array[4:6, 6:10, 4:8] = 1000
        volume = slicer.util.addVolumeFromArray(array, name="CTADefaceTestHead")
        face = np.zeros(array.shape, np.uint8)
        face[2:8, 3:6, 2:10] = 1
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        segmentId = segmentation.GetSegmentation().AddEmptySegment("Face")
        slicer.util.updateSegmentBinaryLabelmapFromArray(face, segmentation, segmentId, volume)
        self.assertEqual(slicerbridge.face_segment_id(segmentation), segmentId)
        defaced = CTADefaceLogic().applyDefacing(volume, segmentation, fill=-1024)
        result = slicer.util.arrayFromVolume(defaced)
        self.assertTrue(np.array_equal(result, np.where(face > 0, np.int16(-1024), array)))
        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(volume), array))
        self.delayDisplay("CTADeface apply test passed")
