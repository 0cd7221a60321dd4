"""Load both module files the way Slicer does, in a venv that holds exactly Slicer's bundled packages.

Run by build_env.py with the venv's python (`-I`: no user site, no PYTHONPATH). It imports CTADeface.py
and CTADefaceEval.py with the stand-ins (standins.py: qt, ctk, slicer), then runs what Slicer runs when a
user opens the modules: setup(), enter(), exit(), enter() again, a scene close, Reload, and each button's
path that does not start a model. It fails when
- anything raises where Slicer would show a traceback, or a bound widget breaks Slicer's connector rules;
- the modules import a third-party package that is not in the list of Slicer's bundled packages (the venv
  has nothing else, so such an import fails outright; the check below also names it);
- a click that cannot proceed (declined install, no volume) passes silently instead of saying why.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import sysconfig
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

OWN = {"CTADeface", "CTADefaceEval", "CTADefaceLib", "CTADefaceEvalLib"}
STAND_INS = {"qt", "ctk", "slicer", "standins", "connector_rules"}
RUNTIME = {"cython_runtime"}  # a pseudo-module every Cython-compiled extension (numpy, scipy) registers


def allowed_third_party() -> set[str]:
    """Top-level import names of the distributions installed in this venv (= Slicer's bundled list)."""
    from importlib import metadata

    names = set()
    for dist in metadata.distributions():
        top = dist.read_text("top_level.txt")
        if top:
            names.update(line.strip() for line in top.splitlines() if line.strip())
        for path in dist.files or ():
            first = str(path).split("/")[0]
            if first.endswith(".py"):
                names.add(first[:-3])
            elif "." not in first and first != "__pycache__" and not first.endswith(".libs"):
                names.add(first)
    return names


def stdlib_names() -> set[str]:
    if hasattr(sys, "stdlib_module_names"):  # Python 3.10+
        return set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    names = set(sys.builtin_module_names)  # Python 3.9: list the standard library folder
    for folder in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}:
        for entry in os.listdir(folder):
            if entry in ("site-packages", "dist-packages"):
                continue
            names.add(re.split(r"[.]", entry)[0])
        dynload = os.path.join(folder, "lib-dynload")
        if os.path.isdir(dynload):
            names.update(re.split(r"[.]", entry)[0] for entry in os.listdir(dynload))
    return names


def foreign_modules(imported: set[str], allowed: set[str], stdlib: set[str]) -> list[str]:
    """Top-level names among `imported` that are neither standard library, stand-ins, ours nor bundled."""
    top = {name.split(".")[0] for name in imported}
    return sorted(
        n
        for n in top
        if n not in stdlib
        and n not in OWN
        and n not in STAND_INS
        and n not in allowed
        and n not in RUNTIME
        and not n.startswith("_")
    )


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def exercise_deface(module, standins, slicer, slicer_version):
    widget = module.CTADefaceWidget(None)
    widget.setup()
    ui = widget.ui
    expect(
        standins.RECORD["connected"][-1]
        == [
            "addToDicomDatabase",
            "deidCleanDescriptors",
            "deidRetainDates",
            "deidRetainDeviceIdentity",
            "deidRetainPatientCharacteristics",
            "deidRetainSafePrivate",
            "device",
            "exportFormat",
            "faceSegmentation",
            "fillPolicy",
            "fillValue",
            "inputVolume",
            "mirroring",
            "tileStep",
        ],
        f"bound parameters: {standins.RECORD['connected'][-1]}",
    )
    expect(
        [ui.fillSelector.itemText(i) for i in range(ui.fillSelector.count)] == ["p10", "air", "value"],
        "the fill combo box lists the Choice",
    )
    expect(
        ui.modelSelector.count >= 1 and ui.modelSelector.itemText(ui.modelSelector.count - 1).startswith("box"),
        "the model list ends with the box engine",
    )
    widget.enter()
    node = widget._parameterNode
    if slicer_version != "5.8":  # 5.8's connectGui returns no tag, so nothing can be disconnected there
        expect(len(node._guis) == 1, f"one GUI connection after enter, not {len(node._guis)}")
        widget.exit()
        expect(len(node._guis) == 0, "exit() disconnects the GUI")
    else:
        widget.exit()
    widget.enter()
    node = widget._parameterNode  # a new wrapper of the same MRML node, as in Slicer
    if slicer_version != "5.8":
        expect(len(node._guis) == 1, f"entering again connects once, not {len(node._guis)} times")
    node.fillPolicy = "value"
    expect(ui.fillValueSpinBox.enabled, "the fill value box is enabled for fill = value")
    node.fillPolicy = "p10"
    expect(not ui.fillValueSpinBox.enabled, "the fill value box is disabled for p10")
    # the settings come from the parameter node
    node.fillPolicy, node.fillValue, node.device, node.tileStep, node.mirroring = "value", -500.0, "cpu", 1.0, True
    settings = module.settingsFromParameterNode(node)
    expect(
        (settings.fill, settings.device, settings.tile_step, settings.mirroring) == (-500.0, "cpu", 1.0, True),
        f"settings from the parameter node: {settings}",
    )
    expect(settings.deid_options == [], "the Basic Profile alone unless an option is ticked")
    node.deidRetainDates, node.deidCleanDescriptors = True, True
    chosen = module.settingsFromParameterNode(node).deid_options
    expect(chosen == ["clean-descriptors", "retain-dates"], f"de-identification options: {chosen}")
    from CTADefaceLib.deid.options import DeidOptions

    DeidOptions.from_names(chosen)  # names the core knows
    node.deidRetainDates, node.deidCleanDescriptors = False, False
    ui.modelSelector.setCurrentIndex(ui.modelSelector.count - 1)
    expect(node.model == "box" and module.settingsFromParameterNode(node).engine == "box", "box engine selected")

    errors = standins.RECORD["errors"]
    # no volume: each action says why
    for handler in (widget.onDeface, widget.onApply):
        before = len(errors)
        handler()
        expect(len(errors) == before + 1 and "Select an input volume" in errors[-1], f"{handler.__name__}: {errors}")
    # Export / Save as ground truth / Install from file: a cancelled folder dialog does nothing at all
    before = (len(errors), len(ui.logTextEdit.lines))
    standins.ANSWERS["getExistingDirectory"] = ""
    widget.onExport()
    widget.onExportDicom()
    widget.onSaveGroundTruth()
    widget.onInstallModelFromFile()
    expect((len(errors), len(ui.logTextEdit.lines)) == before, "a cancelled dialog must do nothing")
    widget.onCancel()  # nothing running: nothing happens
    # with a volume but without the model's packages, Deface says what is missing, on every click
    from CTADefaceLib.slicer import installer as dependencies

    volume = slicer.vtkMRMLScalarVolumeNode()
    slicer.mrmlScene.nodes.append(volume)
    node.inputVolume = volume
    node.model = "cta-deface"
    expect(ui.defaceButton.enabled, "Deface is enabled once a volume is selected")
    available, installed = dependencies.is_available, dependencies.installed_versions
    # what this Python holds, as the installer sees it: its check reads metadata (installed_versions) and finds
    # modules (is_available); both are narrowed to "no nnU-Net", whatever the test environment has
    dependencies.installed_versions = lambda: {k: v for k, v in installed().items() if k != "nnunetv2"}
    try:
        dependencies.is_available = lambda name: name not in ("torch", "nnunetv2")  # no PyTorch extension either
        for _ in range(2):
            before = len(errors)
            widget.onDeface()
            expect(len(errors) == before + 1 and "PyTorch" in errors[-1], f"must say why: {errors[-1:]}")
        dependencies.is_available = lambda name: name != "nnunetv2"  # torch there; the user declines the rest
        standins.ANSWERS["confirmOkCancelDisplay"] = False
        for click in range(2):
            before = len(errors)
            widget.onDeface()
            expect(len(standins.RECORD["confirm"]) == click + 1, "the installation is offered on every click")
            expect(len(errors) == before + 1 and "nnunetv2" in errors[-1], f"a declined install says why: {errors}")
    finally:
        dependencies.is_available, dependencies.installed_versions = available, installed
    expect(widget._process is None, "nothing started")
    # what runs is what the parameter node says: Deface's settings, Export's folder and format
    # (the packages the child needs are taken as installed here: this part is about the settings)
    dependencies.check = lambda engine="nnunet": dependencies.DependencyReport(engine=engine)
    calls = []

    def record(name):
        def method(*args, **kwargs):
            calls.append((name,) + args + ((kwargs,) if kwargs else ()))
            raise RuntimeError(f"{name} recorded")

        return method

    widget.logic.startDeface, widget.logic.export = record("startDeface"), record("export")
    node.fillPolicy, node.fillValue, node.device, node.model, node.exportFormat = "value", -900.0, "cpu", "box", ".nrrd"
    expect(not ui.exportDicomButton.enabled, "Export de-identified DICOM is disabled without a face segmentation")
    node.faceSegmentation = slicer.vtkMRMLSegmentationNode()
    expect(ui.exportButton.enabled, "Export is enabled with a volume and a face segmentation")
    expect(
        not ui.exportDicomButton.enabled, "Export de-identified DICOM is disabled for a volume not from the database"
    )
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.826.0.1.3680043.10.543.10.1 1.2.826.0.1.3680043.10.543.10.2")
    node.faceSegmentation = node.faceSegmentation  # what a selection does: the parameter node is modified
    expect(ui.exportDicomButton.enabled, "Export de-identified DICOM is enabled for a volume from the database")
    widget.onDeface()
    settings = calls[-1][2]
    expect(
        calls[-1][:2] == ("startDeface", volume)
        and (settings.engine, settings.fill, settings.device) == ("box", -900.0, "cpu"),
        f"Deface ran with {calls[-1]}",
    )
    standins.ANSWERS["getExistingDirectory"] = "/chosen/folder"
    widget.onExport()
    expect(
        calls[-1][:5] == ("export", volume, node.faceSegmentation, "/chosen/folder", ".nrrd")
        and calls[-1][5].fill == -900.0,
        f"Export ran with {calls[-1]}",
    )
    widget.logic.exportDicom = record("exportDicom")
    node.addToDicomDatabase = False
    widget.onExportDicom()
    expect(
        calls[-1][:4] == ("exportDicom", volume, node.faceSegmentation, "/chosen/folder")
        and calls[-1][4].fill == -900.0
        and calls[-1][5] == {"addToDatabase": False},
        f"Export de-identified DICOM ran with {calls[-1]}",
    )
    expect("Export of de-identified DICOM failed." in errors[-1], f"its failure is shown: {errors[-1:]}")
    standins.ANSWERS["getExistingDirectory"] = ""
    del widget.logic.startDeface, widget.logic.export, widget.logic.exportDicom
    # the progress bar follows the child's tqdm-style percentages while it runs
    from CTADefaceLib.slicer.child_process import DefaceProcess

    child = (
        "import sys, time\n"
        "for p in (10, 40, 70):\n"
        "    sys.stdout.write(f'\\r{p:3d}%|####      | {p}/100'); sys.stdout.flush(); time.sleep(0.3)\n"
    )
    finished, seen = [], []
    widget._runProcess(DefaceProcess([sys.executable, "-c", child]).start(), finished.append)
    expect(ui.cancelButton.enabled and not ui.defaceButton.enabled, "Cancel (only) is enabled while a child runs")
    deadline = time.time() + 30
    while widget._process is not None and time.time() < deadline:
        widget._pollProcess()
        seen.append(ui.progressBar.value)
        time.sleep(0.05)
    moving = sorted(set(v for v in seen if 0 < v < 100))
    expect(moving == [10, 40, 70], f"the progress bar showed {sorted(set(seen))}")
    expect(len(finished) == 1 and not ui.cancelButton.enabled, "the finished child is handed on once")
    # scene close: the parameter node is let go and a fresh one taken (the module is shown)
    slicer.mrmlScene.close()
    expect(widget._parameterNode is not None, "a new parameter node after the scene closed")
    widget.exit()
    # Reload drops the library so that Slicer's reload imports it afresh
    widget.onReload()
    expect(
        not [n for n in standins.RECORD["reloaded"][-1][1] if n.startswith("CTADefaceLib")],
        f"library still loaded at reload: {standins.RECORD['reloaded'][-1]}",
    )
    widget.cleanup()


def exercise_eval(module, standins, slicer):
    widget = module.CTADefaceEvalWidget(None)
    widget.setup()
    ui = widget.ui
    expect(standins.RECORD["connected"][-1] == ["originalVolume", "pictureSize"], standins.RECORD["connected"][-1])
    expect(ui.sizeSelector.currentText == "512", "picture size 512 by default")
    widget.enter()
    widget.exit()
    widget.enter()
    errors = standins.RECORD["errors"]
    before = len(errors)
    widget.onRenderAndScore()  # no original volume
    expect(len(errors) == before + 1 and "original" in errors[-1], errors[-1:])
    volume = slicer.vtkMRMLScalarVolumeNode()
    widget._parameterNode.originalVolume = volume
    expect(ui.scoreButton.enabled, "Render and score is enabled with an original volume")
    from CTADefaceLib.slicer import installer as dependencies

    available = dependencies.is_available
    try:
        dependencies.is_available = lambda name: name not in ("torch", "torchvision")  # no PyTorch extension
        for handler in (widget.onRenderAndScore, widget.onRunCompare):
            before = len(errors)
            handler()
            expect(len(errors) == before + 1 and "PyTorch" in errors[-1], f"{handler.__name__}: {errors[-1:]}")
    finally:
        dependencies.is_available = available
    expect("VTK_DEFAULT_OPENGL_WINDOW" not in os.environ, "Slicer's process must keep its own render window")
    standins.ANSWERS["getExistingDirectory"] = ""
    rows = ui.methodsTable.rowCount
    widget.onAddMethod()
    expect(ui.methodsTable.rowCount == rows, "a cancelled folder dialog adds no method")
    slicer.mrmlScene.close()
    widget.exit()
    widget.onReload()
    expect(
        not [n for n in standins.RECORD["reloaded"][-1][1] if n.startswith("CTADefaceEvalLib")],
        standins.RECORD["reloaded"][-1],
    )
    widget.cleanup()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--list", required=True)
    args = parser.parse_args(argv)
    slicer_version = re.search(r"slicer-([\w.]+)\.txt$", args.list).group(1)
    # As in a fresh Slicer: no CTADEFACE_HOME (the per-user cache is found the way Slicer's users get it), but a
    # throw-away home so that the user's real cache is never read or written.
    os.environ.pop("CTADEFACE_HOME", None)
    os.environ["HOME"] = os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ctadeface-slicer-env-")
    before = set(sys.modules)
    import standins

    slicer = standins.install(slicer_version)
    sys.path[:0] = [os.path.join(args.repo, "CTADeface"), os.path.join(args.repo, "CTADefaceEval")]
    import CTADeface
    import CTADefaceEval

    for parent in (CTADeface, CTADefaceEval):
        getattr(parent, parent.__name__)(standins.QObject())  # the module class, as Slicer instantiates it
    exercise_deface(CTADeface, standins, slicer, slicer_version)
    exercise_eval(CTADefaceEval, standins, slicer)
    foreign = foreign_modules(set(sys.modules) - before, allowed_third_party(), stdlib_names())
    expect(not foreign, f"the module files imported packages Slicer does not bundle: {foreign}")
    for error in standins.RECORD["errors"]:
        print("  shown:", error)
    print(
        f"OK Slicer {slicer_version} (Python {sys.version.split()[0]}): both modules set up, entered, left, "
        f"closed the scene, reloaded; errors shown: {len(standins.RECORD['errors'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
