"""`ctadeface deface`: deface files and folders into an output folder."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..records import ReportRecord


def add_settings_arguments(parser) -> None:
    """Options shared by every command that runs the pipeline (deface, demo, Slicer's batch script and child process):
    one per DefaceSettings field, generated from settings.py."""
    from ..settings import add_arguments

    add_arguments(parser)


def settings_from_args(args):
    from ..settings import from_args

    return from_args(args)


#: The exit status when no case failed but the check gave REVIEW for at least one: not 0, so that a data steward's
#: script that shares the outputs on success does not share a face; not 1, so that "failed" keeps its meaning.
REVIEW_STATUS = 3


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "deface",
        help="remove the face from CT images",
        description=(
            "Deface each INPUT (a .nii.gz/.nii/.nrrd/.mha/.mhd file, a folder of such files, or a folder holding "
            "one DICOM series) into OUTDIR as <name>_defaced.<ext>, <name>_facemask.<ext> and the provenance "
            "sidecar <name>_deface.json. Inputs are never modified; cases whose outputs exist are skipped "
            "unless --overwrite. One bad case is reported and the others still run. Exit status: 0 every case done "
            "or skipped (and, with --check, every check PASS); 1 a case failed; 2 a usage error; 3 no case failed but "
            "the check gave REVIEW for at least one (a face may still be recognisable: do not share those cases)."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUTDIR", help="folder for the outputs (created if needed)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    parser.add_argument("--json", action="store_true", help="print the batch summary as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--check",
        nargs="?",
        const="",
        default=None,
        metavar="THRESHOLDS",
        help="after defacing, check each result for a face that remains: the original is rendered first from "
        "views around the face's own front (no face found there: REVIEW, cannot verify), then the result, searched "
        "by several face detectors and measured for soft tissue left in front of the facial bones; PASS or REVIEW "
        "with the reasons, stored in the sidecar and the summary. THRESHOLDS: a thresholds file from 'ctadeface eval "
        "calibrate' (default: the calibrated one). Needs the eval extra",
    )
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..fill import parse_fill
    from ..mask import check_margin
    from ..pipeline import deface_batch
    from . import reidentification_checker

    parse_fill(args.fill)  # a bad --fill or --margin-mm is reported before any model loads
    check_margin(args.margin_mm)
    settings = settings_from_args(args)
    # The check comes from the evaluation plug-in: the pipeline only calls what it is given.
    check = reidentification_checker(args.check or None) if args.check is not None else None
    inputs = list(args.inputs)
    report: list[ReportRecord] = []
    if settings.output_format is None:  # DICOM in -> defaced, de-identified DICOM out
        from ..dicom.batch import deface_dicom, is_dicom_input

        dicom = [i for i in inputs if is_dicom_input(i)]
        inputs = [i for i in inputs if i not in dicom]
        if dicom:
            report += deface_dicom(dicom, args.output, settings, overwrite=args.overwrite, check=check)
    if inputs:
        report += deface_batch(
            inputs, args.output, settings, overwrite=args.overwrite, progress=not args.no_progress, check=check
        )
    return print_summary(report, as_json=args.json)


def print_summary(report: list[ReportRecord], as_json: bool = False) -> int:
    """One line per input (done / skipped / FAILED, with the reason) and the counts. The exit status: 1 if any case
    failed, else 3 if the check gave REVIEW for any case (so that a script sharing the results stops), else 0."""
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for record in report:
            if record["status"] == "done" and "study" in record:
                verdict = f", check {record['check']}" if "check" in record else ""
                print(
                    f"done     {record['input']} -> {os.path.dirname(record['report'])}{os.sep}{record['study']} "
                    f"({record['series_defaced']} series defaced, {record['series_left_out']} left out{verdict}: "
                    f"see {os.path.basename(record['report'])})"
                )
                for reason in record.get("check_reasons", []):
                    print(f"           REVIEW: {reason}")
            elif record["status"] == "done":
                verdict = f", check {record['check']}" if "check" in record else ""
                print(
                    f"done     {record['input']} -> {record['outputs']['defaced']} "
                    f"(face mask {record['mask_volume_ml']:.1f} ml, {record['seconds']:.1f} s{verdict})"
                )
                for reason in record.get("check_reasons", []):
                    print(f"           REVIEW: {reason}")
            elif record["status"] == "skipped":
                print(f"skipped  {record['input']}: {record['message']}")
            else:
                print(f"FAILED   {record['input']}: {record['message']}")
        print(summary_line(report))
    return exit_status(report)


def summary_line(report: list[ReportRecord]) -> str:
    """The counts that end a run's report, for `ctadeface deface` and the Slicer batch script alike."""
    counts = {status: sum(r["status"] == status for r in report) for status in ("done", "skipped", "failed")}
    review = sum(r.get("check") == "REVIEW" for r in report)
    return f"{counts['done']} defaced, {counts['skipped']} skipped, {counts['failed']} failed" + (
        f", {review} to REVIEW (a face may still be recognisable)" if review else ""
    )


def exit_status(report: list[ReportRecord]) -> int:
    """1 if any case failed, else REVIEW_STATUS if the check gave REVIEW for any case, else 0."""
    if any(r["status"] == "failed" for r in report):
        return 1
    return REVIEW_STATUS if any(r.get("check") == "REVIEW" for r in report) else 0
