"""CTADeface: remove the face from head CT angiography in 3D Slicer (CTA-DEFACE nnU-Net model).

Thin by design: the widget turns clicks into calls on `CTADefaceLib.slicer.logic.DefaceLogic`;
the model runs in a child process (`ctadeface deface`) so Slicer stays responsive and Cancel
works. Nothing heavy (torch, nnunetv2, SimpleITK) is imported here: the module must load in an
instant on a fresh Slicer, and missing packages are offered for installation on first use.
"""

import sys
from typing import Annotated

import qt
import slicer
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)

from CTADefaceLib.settings import DEVICES
from CTADefaceLib.slicer.dicom_export import can_export
from CTADefaceLib.slicer.logic import EXPORT_FORMATS, DefaceLogic
from CTADefaceLib.slicer.widget_base import ModuleWidget

#: The PS3.15 options of "Export de-identified DICOM": parameter (a check box each) -> DeidOptions name.
DEID_OPTION_PARAMETERS = {
    "deidCleanDescriptors": "clean-descriptors",
    "deidRetainDates": "retain-dates",
    "deidRetainPatientCharacteristics": "retain-patient-characteristics",
    "deidRetainDeviceIdentity": "retain-device-identity",
    "deidRetainSafePrivate": "retain-safe-private",
}
BOX_ENGINE_ITEM = "box (no model: ICHSEG-style prism)"
#: The fill combo box: the two policies, or "value" = the number in the fill value box (HU).
FILL_CHOICES = ("p10", "air", "value")


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
            "the mask and a provenance sidecar; 'Save as ground truth' grows an nnU-Net training dataset. For a volume "
            "loaded from the DICOM database, 'Export de-identified DICOM' writes its series defaced with the current "
            "Face segment and de-identified (DICOM PS3.15) into a new folder, and can add it to the DICOM database."
        )
        self.parent.acknowledgementText = (
            "Model: CTA-DEFACE (Mahmutoglu et al., CCI Bonn / Heidelberg). nnU-Net v2 by Isensee et al."
        )


# Every field bound to a widget (SlicerParameterName in the .ui) has a type Slicer's GUI connectors accept
# (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py, 5.8 to main): a QComboBox needs a Choice, a
# QDoubleSpinBox a float (bounded, or the connector makes the box unbounded), a QCheckBox a bool.
# Testing/test_slicer_parameter_node.py checks each binding against those rules.
@parameterNodeWrapper
class CTADefaceParameterNode:
    inputVolume: slicer.vtkMRMLScalarVolumeNode
    faceSegmentation: slicer.vtkMRMLSegmentationNode
    model: str = "cta-deface"  # the model selector's item data (its items are the installed models: not bound)
    device: Annotated[str, Choice(DEVICES)] = "auto"
    tileStep: Annotated[float, WithinRange(0.1, 1.0)] = 0.5
    mirroring: bool = False
    fillPolicy: Annotated[str, Choice(FILL_CHOICES)] = "p10"
    fillValue: Annotated[float, WithinRange(-3024.0, 3071.0)] = -1024.0  # HU, used when fillPolicy is "value"
    exportFormat: Annotated[str, Choice(EXPORT_FORMATS)] = ".nii.gz"
    addToDicomDatabase: bool = True  # "Export de-identified DICOM" imports the written series
    deidCleanDescriptors: bool = False
    deidRetainDates: bool = False
    deidRetainPatientCharacteristics: bool = False
    deidRetainDeviceIdentity: bool = False
    deidRetainSafePrivate: bool = False


def settingsFromParameterNode(parameterNode):
    """The DefaceSettings the widget runs with: everything comes from the (saved) parameter node."""
    from CTADefaceLib.pipeline import DefaceSettings

    model = parameterNode.model or "cta-deface"
    return DefaceSettings(
        engine="box" if model == "box" else "nnunet",
        model=model,
        device=parameterNode.device,
        mirroring=parameterNode.mirroring,
        tile_step=parameterNode.tileStep,
        fill=fillFromParameterNode(parameterNode),
        deid_options=[name for field, name in DEID_OPTION_PARAMETERS.items() if getattr(parameterNode, field)],
    )


def fillFromParameterNode(parameterNode):
    return float(parameterNode.fillValue) if parameterNode.fillPolicy == "value" else parameterNode.fillPolicy


class CTADefaceLogic(ScriptedLoadableModuleLogic, DefaceLogic):
    """Slicer's logic base (parameter node) + the Qt-free DefaceLogic that does the work."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        DefaceLogic.__init__(self)

    def getParameterNode(self):
        return CTADefaceParameterNode(super().getParameterNode())


class CTADefaceWidget(ModuleWidget):
    """The panel; the template's parameter-node life cycle, child process polling and install dialogs are
    ModuleWidget's (CTADefaceLib/slicer/widget_base.py, shared with CTADefaceEval)."""

    logicClass = CTADefaceLogic
    libraries = ("CTADefaceLib",)  # reloaded with the module by the Reload button
    volumeParameter = "inputVolume"
    processFailedMessage = "CTADeface failed."

    # ------------------------------------------------------------------ set-up (Slicer's scripted-module template)
    def setup(self):
        ModuleWidget.setup(self)  # the .ui, the logic, the poll timer, the scene observers
        self.connectButtons(
            (
                (self.ui.defaceButton, self.onDeface),
                (self.ui.applyButton, self.onApply),
                (self.ui.exportButton, self.onExport),
                (self.ui.exportDicomButton, self.onExportDicom),
                (self.ui.cancelButton, self.onCancel),
                (self.ui.saveGroundTruthButton, self.onSaveGroundTruth),
                (self.ui.installModelButton, self.onInstallModel),
                (self.ui.installFromFileButton, self.onInstallModelFromFile),
            )
        )
        self.ui.modelSelector.connect("currentIndexChanged(int)", self.onModelSelected)
        self.initializeParameterNode()  # needed for module reload
        self._refreshModels()

    def setParameterNode(self, inputParameterNode):
        ModuleWidget.setParameterNode(self, inputParameterNode)
        if self._parameterNode:
            index = self.ui.modelSelector.findData(self._parameterNode.model)  # the model list is not bound
            if index >= 0:
                self.ui.modelSelector.setCurrentIndex(index)

    # ------------------------------------------------------------------ state shown
    def _refreshModels(self):
        from CTADefaceLib.models.install import all_entries, is_installed

        current = self._parameterNode.model if self._parameterNode else None
        selector = self.ui.modelSelector
        wasBlocked = selector.blockSignals(True)
        selector.clear()
        for name in all_entries():
            state = "installed" if is_installed(name) else "not installed"
            selector.addItem(f"{name} ({state})", name)
        selector.addItem(BOX_ENGINE_ITEM, "box")
        index = selector.findData(current) if current else 0
        selector.setCurrentIndex(max(index, 0))
        selector.blockSignals(wasBlocked)
        self.onModelSelected()

    def onModelSelected(self, *unused):
        if self._parameterNode and self.ui.modelSelector.currentData:
            self._parameterNode.model = self.ui.modelSelector.currentData
        self._showModelState()

    def _showModelState(self):
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
        node = self._parameterNode
        volume = node.inputVolume if node else None
        segmentation = node.faceSegmentation if node else None
        self.ui.defaceButton.enabled = volume is not None and not busy
        for button in (self.ui.applyButton, self.ui.exportButton, self.ui.saveGroundTruthButton):
            button.enabled = volume is not None and segmentation is not None and not busy
        # only a volume loaded from the DICOM database has the DICOM files to export from
        self.ui.exportDicomButton.enabled = can_export(volume, segmentation) and not busy
        self.ui.cancelButton.enabled = busy
        self.ui.fillValueSpinBox.enabled = node is not None and node.fillPolicy == "value"

    def _requireParameterNode(self):
        from CTADefaceLib.errors import DefaceError

        if not self._parameterNode or not self._parameterNode.inputVolume:
            raise DefaceError("Select an input volume first.")
        return self._parameterNode

    # ------------------------------------------------------------------ actions
    def onDeface(self):
        with slicer.util.tryWithErrorDisplay("Defacing could not start.", waitCursor=True):
            parameterNode = self._requireParameterNode()
            settings = settingsFromParameterNode(parameterNode)
            self._ensureDependencies(settings.engine)
            volume = parameterNode.inputVolume
            self._log(f"Defacing {volume.GetName()} with {settings.engine} {settings.model} on {settings.device}...")
            process = self.logic.startDeface(volume, settings)
            self._runProcess(process, lambda done: self._defaceFinished(done, volume))

    def _defaceFinished(self, process, volume):
        segmentation = self.logic.finishDeface(process, volume)
        if self._parameterNode:
            self._parameterNode.faceSegmentation = segmentation
        self.ui.progressBar.value = 100
        self._log("Face segmented: check and correct the 'Face' segment in Segment Editor, then Apply defacing.")

    def onApply(self):
        with slicer.util.tryWithErrorDisplay("Applying the defacing failed.", waitCursor=True):
            parameterNode = self._requireParameterNode()
            defaced = self.logic.applyDefacing(
                parameterNode.inputVolume, parameterNode.faceSegmentation, fillFromParameterNode(parameterNode)
            )
            slicer.util.setSliceViewerLayers(background=defaced, fit=True)
            self._log(f"Created {defaced.GetName()}; the original volume is unchanged.")

    def onExport(self):
        # The file format is a combo box in the panel: the only dialog is the folder, whose Cancel gives "".
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Export defaced volume to")
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Export failed.", waitCursor=True):
            parameterNode = self._requireParameterNode()
            sidecar = self.logic.export(
                parameterNode.inputVolume,
                parameterNode.faceSegmentation,
                folder,
                parameterNode.exportFormat,
                settingsFromParameterNode(parameterNode),
            )
            self._log("Exported " + ", ".join(sidecar["outputs"].values()))

    def onExportDicom(self):
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), "Export de-identified DICOM to (a new or empty folder)"
        )
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Export of de-identified DICOM failed.", waitCursor=True):
            parameterNode = self._requireParameterNode()
            record = self.logic.exportDicom(
                parameterNode.inputVolume,
                parameterNode.faceSegmentation,
                folder,
                settingsFromParameterNode(parameterNode),
                addToDatabase=parameterNode.addToDicomDatabase,
            )
            added = " and added it to the DICOM database" if record["imported"] else ""
            self._log(f"Wrote the de-identified, defaced series to {record['study_folder']}{added}.")

    def onSaveGroundTruth(self):
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), "nnU-Net dataset folder (e.g. Dataset501_FaceCorrections)"
        )
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Saving the ground truth failed.", waitCursor=True):
            parameterNode = self._requireParameterNode()
            case = self.logic.saveGroundTruth(parameterNode.inputVolume, parameterNode.faceSegmentation, folder)
            self._log(f"Saved ground-truth case {case} in {folder}.")

    def onInstallModel(self, source=None):
        from CTADefaceLib.slicer.child_process import DefaceProcess

        name = self.ui.modelSelector.currentData
        argv = [sys.executable, "-m", "CTADefaceLib.cli", "models", "install", name]
        if source:
            argv += ["--from", source]
        with slicer.util.tryWithErrorDisplay("The model could not be installed.", waitCursor=True):
            # The install child needs the core's own packages (tqdm for the download bar) like a box-engine run.
            self._ensureDependencies("box")
            self._log(f"Installing the model '{name}'" + (f" from {source}" if source else " (download)") + "...")
            self._runProcess(DefaceProcess(argv).start(), self._installFinished)

    def onInstallModelFromFile(self):
        source = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(), "Model zip (or cancel to pick a folder)", "", "Zip files (*.zip)"
        )
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

    def _processStateChanged(self):
        self._updateButtons()
        self._showModelState()  # the install button follows the running child

    # ------------------------------------------------------------------ first-use dependencies
    def _ensureDependencies(self, engine):
        """Return when `engine` can run; otherwise offer the installation and raise a DefaceError saying why not."""
        from CTADefaceLib.slicer import installer

        self.ensurePackages(lambda: installer.check(engine), "Defacing with the model")


class CTADefaceTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload and Test; ctest through slicer_add_python_unittest in CMakeLists.txt)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ApplyChangesOnlyTheEditedFace()
        self.setUp()
        self.test_DefaceTheBundledSampleAndApply()

    def test_DefaceTheBundledSampleAndApply(self):
        """The bundled sample head: Deface, Apply; the face voxels hold the fill, every other voxel is unchanged.

        Deface uses the bundled synthetic model when PyTorch and nnU-Net are installed, else the box engine
        (no model), so the test runs on a fresh Slicer too. The model cache is a temporary folder.
        """
        import os
        import shutil
        import tempfile

        import numpy as np
        import SimpleITK as sitk

        from CTADefaceLib.io.volume import read_image
        from CTADefaceLib.models.bundled import DATA_DIR, SYNTHETIC_NAME
        from CTADefaceLib.pipeline import DefaceSettings
        from CTADefaceLib.slicer import bridge as slicerbridge
        from CTADefaceLib.slicer import installer as dependencies

        volume = slicerbridge.volume_from_image(
            read_image(os.path.join(DATA_DIR, "sample_phantom.nii.gz")), "CTADefaceSample"
        )
        original = slicer.util.arrayFromVolume(volume).copy()
        cache, home = tempfile.mkdtemp(prefix="ctadeface-selftest-"), os.environ.get("CTADEFACE_HOME")
        os.environ["CTADEFACE_HOME"] = cache
        try:
            if dependencies.check("nnunet").complete:
                from CTADefaceLib.models.install import install

                install(SYNTHETIC_NAME, progress=False)
                settings = DefaceSettings(engine="nnunet", model=SYNTHETIC_NAME, device="cpu")
            else:
                settings = DefaceSettings(engine="box")
            self.delayDisplay(f"Defacing the sample with the {settings.engine} engine")
            logic = CTADefaceLogic()
            segmentation = logic.deface(volume, settings)
            # the mask on the volume's grid; SimpleITK's array order (k, j, i) is MRML's too
            face = sitk.GetArrayFromImage(slicerbridge.mask_from_segmentation(segmentation, volume)) > 0
            defaced = logic.applyDefacing(volume, segmentation, fill=-1024.0)
        finally:
            if home is None:
                os.environ.pop("CTADEFACE_HOME", None)
            else:
                os.environ["CTADEFACE_HOME"] = home
            shutil.rmtree(cache, ignore_errors=True)
        result = slicer.util.arrayFromVolume(defaced)
        self.assertGreater(int(face.sum()), 0)
        self.assertTrue(np.all(result[face] == -1024))
        self.assertTrue(np.any(original[face] != -1024))  # the face really changed
        self.assertTrue(np.array_equal(result[~face], original[~face]))  # nothing else did
        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(volume), original))  # the input is untouched
        self.delayDisplay("CTADeface sample test passed")

    def test_ApplyChangesOnlyTheEditedFace(self):
        import numpy as np

        from CTADefaceLib.slicer import bridge as slicerbridge

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
