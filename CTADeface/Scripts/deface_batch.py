"""Deface a folder of CT volumes with 3D Slicer, headless, through the same logic as the CTADeface module.

Usage:
    Slicer --no-splash --no-main-window --python-script deface_batch.py -- INPUT_FOLDER -o OUTDIR \\
        [--model NAME] [--engine nnunet] [--fill p10] [--device auto|cpu|cuda] [--format .nii.gz] [--overwrite]
        [--check [THRESHOLDS]]

Each input (file, folder of files, or DICOM series folder) is loaded as a volume node, its face is
segmented, and <name>_defaced, <name>_facemask and <name>_deface.json are written to OUTDIR, under the
same rules as `ctadeface deface` (the batch loop is the pipeline's: name clashes are refused before anything
runs, and another input's outputs are never replaced).
One bad case is reported and the others still run; the exit status is 1 if any failed, 2 on a
usage or model error, 3 when none failed but --check gave REVIEW for a case (as `ctadeface deface --check`). Without Slicer, `ctadeface deface` does the same.
"""

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the path to CTADefaceLib is set up below, at run time
    from CTADefaceLib.records import ReportRecord

_HERE = os.path.dirname(os.path.abspath(globals().get("__file__", sys.argv[0] if sys.argv else ".")))
_MODULE_FOLDER = os.path.dirname(_HERE)  # CTADeface/, which holds CTADefaceLib
if _MODULE_FOLDER not in sys.path:
    sys.path.insert(0, _MODULE_FOLDER)


def build_parser() -> argparse.ArgumentParser:
    from CTADefaceLib.commands.deface import add_settings_arguments

    parser = argparse.ArgumentParser(prog="deface_batch.py", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the outputs")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    parser.add_argument("--check", nargs="?", const="", metavar="THRESHOLDS", help="as `ctadeface deface --check`")
    add_settings_arguments(parser)
    return parser


def run_batch(inputs, outdir, settings, *, logic=None, engine=None, overwrite=False, echo=print, check=None) -> list:
    """Deface every input via DefaceLogic; returns one record per case (status done/skipped/failed).

    The batch itself is the pipeline's (`pipeline.deface_batch`), so the rules are those of `ctadeface deface`:
    two inputs whose outputs would share a name are refused before anything runs, the output folder is checked
    and locked before the model loads, another input's outputs are never replaced (not even with --overwrite),
    a case is "skipped" only when its own complete outputs are there, and any error in one case is recorded in
    one sentence while the others still run. Only the per-case step differs: it goes through MRML.
    `check(defaced, original) -> verdict dict` (the evaluation plug-in's, see `ctadeface deface --check`): its
    verdict and reasons are added to each defaced case's line of the report.
    """
    from CTADefaceLib.io.volume import read_image, split_suffix
    from CTADefaceLib.pipeline import case_name, deface_batch
    from CTADefaceLib.slicer import bridge as slicerbridge
    from CTADefaceLib.slicer.logic import DefaceLogic

    logic = logic or DefaceLogic()

    def deface_in_slicer(path, paths, engine):
        # Export names the files after the input and this suffix, as the batch planned and claimed them.
        fileFormat = split_suffix(paths["defaced"])[1]
        volumeNode = segmentationNode = None
        try:
            volumeNode = slicerbridge.volume_from_image(read_image(path), case_name(path))
            segmentationNode = logic.deface(volumeNode, settings, engine=engine)
            # Export records the node's name; a unique-name suffix must not rename the case.
            volumeNode.SetName(case_name(path))
            sidecar = logic.export(
                volumeNode, segmentationNode, outdir, fileFormat, settings, overwrite=overwrite, inputPath=path
            )
        finally:
            slicerbridge.remove_node(segmentationNode)
            slicerbridge.remove_node(volumeNode)
        return sidecar

    inputs = list(inputs)
    records: list[ReportRecord] = []
    if settings.output_format is None:  # DICOM in -> defaced, de-identified DICOM out, through the same core
        from CTADefaceLib.dicom.batch import deface_dicom, is_dicom_input

        dicom = [i for i in inputs if is_dicom_input(i)]
        inputs = [i for i in inputs if i not in dicom]
        if dicom:
            records += deface_dicom(dicom, outdir, settings, engine=engine, overwrite=overwrite, check=check)
    if inputs:
        records += deface_batch(inputs, outdir, settings, overwrite=overwrite, engine=engine, run_case=deface_in_slicer)
    for record in records:
        echo(f"{record['status']:8s} {record['input']}" + (f": {record['message']}" if record["message"] else ""))
        if "check" in record:  # a DICOM study: checked on each mask's volume as it was defaced
            echo("         check " + "\n           ".join([record["check"], *record.get("check_reasons", [])]))
        elif check is not None and record["status"] == "done":
            verdict = check(read_image(record["outputs"]["defaced"]), read_image(record["input"]))
            record.update({"check": verdict["check"], "check_reasons": verdict["reasons"]})  # mypy checks the keys
            echo("         check " + "\n           ".join([verdict["check"]] + verdict["reasons"]))
    return records


def running_inside_slicer() -> bool:
    """True where MRML is available: in 3D Slicer (or slicer-core with a scene, as the tests set up)."""
    try:
        import slicer
    except ImportError:
        return False
    return getattr(slicer, "mrmlScene", None) is not None


def main(argv=None, *, engine=None) -> int:
    """Exit status: 0 all done or skipped, 1 a case or the run failed, 2 a usage or model error, 3 none failed but
    the check gave REVIEW for a case (a face may remain: a script must not share the outputs).

    Never raises: `Slicer --no-main-window --python-script` does not exit after an uncaught exception (only in
    testing mode), so any failure here (a missing package, an OSError, MemoryError) would leave Slicer running
    forever. Every failure becomes one sentence on stderr and an exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]  # Slicer passes the arguments after "--" through
    try:
        from CTADefaceLib.commands.deface import exit_status, settings_from_args, summary_line
        from CTADefaceLib.errors import DefaceError

        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2), already printed
        return stop.code if isinstance(stop.code, int) else 2
    except BaseException as err:  # noqa: BLE001 - the script must end Slicer whatever happened
        return _failed(err)
    if not running_inside_slicer():
        print(
            "deface_batch: error: this script runs inside 3D Slicer (Slicer --no-main-window --python-script "
            "deface_batch.py -- INPUTS -o OUTDIR); `ctadeface deface INPUTS -o OUTDIR` does the same without "
            "Slicer.",
            file=sys.stderr,
        )
        return 2
    try:
        from CTADefaceLib.commands import reidentification_checker

        check = reidentification_checker(args.check or None) if args.check is not None else None
        records = run_batch(
            args.inputs, args.output, settings_from_args(args), engine=engine, overwrite=args.overwrite, check=check
        )
    except DefaceError as err:
        print(f"deface_batch: error: {err}", file=sys.stderr)
        return 2
    except BaseException as err:  # noqa: BLE001
        return _failed(err)
    print(summary_line(records))  # the counts and the exit status are the CLI's (one copy, in commands/deface.py)
    return exit_status(records)


def _failed(err: BaseException) -> int:
    """One sentence for an unexpected failure (the traceback would be lost in Slicer's log anyway)."""
    if isinstance(err, ModuleNotFoundError):
        sentence = (
            f"the Python package '{err.name}' is missing; open the CTA Deface module once in Slicer to "
            "install what the model needs, or install it with pip."
        )
    elif isinstance(err, MemoryError):
        sentence = "out of memory; close other programs or use a machine with more memory."
    elif isinstance(err, KeyboardInterrupt):
        sentence = str(err) or "interrupted."  # pipeline.BatchInterrupted says what of the current case remains
    else:
        sentence = f"{type(err).__name__}: {err}".rstrip(".") + "."
    print(f"deface_batch: error: {sentence}", file=sys.stderr)
    return 1


def _exit(code: int) -> None:
    """Inside Slicer, sys.exit would only end this script; slicer.util.exit quits the application."""
    try:
        import slicer

        inside_slicer = (
            getattr(slicer, "app", None) is not None and hasattr(slicer, "util") and hasattr(slicer.util, "exit")
        )
    except ImportError:
        inside_slicer = False
    if inside_slicer:
        slicer.util.exit(code)
    else:
        sys.exit(code)


if __name__ == "__main__":
    _exit(main())
