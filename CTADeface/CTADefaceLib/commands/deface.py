"""`ctadeface deface`: deface files and folders into an output folder."""

from __future__ import annotations

import json
import sys

ENGINE_HELP = "face-mask engine: nnunet (the CTA-DEFACE model, default) or box (ICHSEG-style prism, no model)"


def add_settings_arguments(parser) -> None:
    """Options shared by every command that runs the pipeline (deface, demo, Slicer's subprocess)."""
    parser.add_argument("--engine", default="nnunet", help=ENGINE_HELP)
    parser.add_argument("--model", default="cta-deface",
                        help="registered model name (see 'ctadeface models list') or an nnU-Net v2 results folder "
                             "(default: cta-deface, the paper's model)")
    parser.add_argument("--fill", default="p10",
                        help="value for face voxels: p10 = the image's 10th percentile (the paper's choice), "
                             "air = -1024 HU, or a number in HU (default: p10)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="where the model runs: auto = CUDA GPU, then Apple GPU, then CPU (default: auto)")
    parser.add_argument("--mirroring", action="store_true",
                        help="test-time mirroring (8x slower; off as in the upstream CTA-DEFACE command)")
    parser.add_argument("--tile-step", type=float, default=0.5,
                        help="sliding-window step as a fraction of the patch (0.5 = nnU-Net default; 1.0 = faster)")
    parser.add_argument("--no-roi", dest="roi", action="store_false",
                        help="run the model on the whole volume (upstream behaviour; default: only on tiles that "
                             "cover where the face can be, found from the head's outline)")
    parser.add_argument("--largest-component", action="store_true", help="keep only the largest connected part of the mask")
    parser.add_argument("--fill-holes", action="store_true", help="fill enclosed holes in the mask")
    parser.add_argument("--margin-mm", type=float, default=0.0, help="grow the mask by this many millimetres (default: 0)")
    parser.add_argument("--min-face-ml", type=float, default=20.0,
                        help="a model mask smaller than this many ml counts as 'no face found' and the case fails "
                             "(default: 20; an adult face mask is about 150-450 ml)")
    parser.add_argument("--format", dest="output_format", default=None,
                        choices=(".nii.gz", ".nii", ".nrrd", ".mha"),
                        help="output file format (default: the input's; .nii.gz for DICOM folders)")


def settings_from_args(args):
    from ..pipeline import DefaceSettings

    return DefaceSettings(engine=args.engine, model=args.model, fill=args.fill, device=args.device,
                          mirroring=args.mirroring, tile_step=args.tile_step, roi=getattr(args, "roi", True),
                          largest_component=args.largest_component, fill_holes=args.fill_holes,
                          margin_mm=args.margin_mm, min_face_ml=args.min_face_ml,
                          output_format=args.output_format)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "deface", help="remove the face from CT images",
        description=(
            "Deface each INPUT (a .nii.gz/.nii/.nrrd/.mha/.mhd file, a folder of such files, or a folder holding "
            "one DICOM series) into OUTDIR as <name>_defaced.<ext>, <name>_facemask.<ext> and the provenance "
            "sidecar <name>_deface.json. Inputs are never modified; cases whose outputs exist are skipped "
            "unless --overwrite. One bad case is reported and the others still run; the exit status is 1 if any failed."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the outputs (created if needed)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    parser.add_argument("--json", action="store_true", help="print the batch summary as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--check", nargs="?", const=0.9, type=float, default=None, metavar="THRESHOLD",
                        help="after defacing, render each result from the front (CT-Muscle) and run MTCNN face "
                             "detection: PASS if no face above THRESHOLD (default 0.9), else REVIEW; stored in the "
                             "sidecar and the summary (needs the eval extra)")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..deface import parse_fill
    from ..mask import check_margin
    from ..pipeline import deface_batch

    parse_fill(args.fill)  # a bad --fill or --margin-mm is reported before any model loads
    check_margin(args.margin_mm)
    settings = settings_from_args(args)
    report = deface_batch(args.inputs, args.output, settings, overwrite=args.overwrite,
                          progress=not args.no_progress, check=args.check)
    return print_summary(report, as_json=args.json)


def print_summary(report: list[dict], as_json: bool = False) -> int:
    """One line per input (done / skipped / FAILED, with the reason) and the counts; 1 if any case failed."""
    failed = [r for r in report if r["status"] == "failed"]
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for record in report:
            if record["status"] == "done":
                verdict = (f", check {record['check']} (face p={record['face_probability']:.2f})"
                           if "check" in record else "")
                print(f"done     {record['input']} -> {record['outputs']['defaced']} "
                      f"(face mask {record['mask_volume_ml']:.1f} ml, {record['seconds']:.1f} s{verdict})")
            elif record["status"] == "skipped":
                print(f"skipped  {record['input']}: {record['message']}")
            else:
                print(f"FAILED   {record['input']}: {record['message']}")
        done = sum(r["status"] == "done" for r in report)
        skipped = sum(r["status"] == "skipped" for r in report)
        review = sum(r.get("check") == "REVIEW" for r in report)
        print(f"{done} defaced, {skipped} skipped, {len(failed)} failed"
              + (f", {review} to REVIEW (a face may still be recognisable)" if review else ""))
    return 1 if failed else 0
