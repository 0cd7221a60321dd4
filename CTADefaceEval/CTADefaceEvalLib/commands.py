"""`ctadeface eval ...`: render, score, check and compare defaced CTs from the command line.

ctadeface eval render IMAGE -o PNG [--angles all | --angles 0,0 30,0 ...]
ctadeface eval score IMAGE [--reference ORIGINAL] [--json]
ctadeface eval check IMAGE [IMAGE ...] [--original ORIGINAL ...] [--thresholds FILE] [--json]
ctadeface eval calibrate [--quick] [-o THRESHOLDS.json] [--figure PNG]
ctadeface eval compare --originals DIR --method NAME=DIR [--method ...] [--truth DIR] [--no-check] -o OUTDIR
"""

from __future__ import annotations

import json
import os
import sys


def _angles(values):
    from .render import EXTRA_ANGLES

    if not values:
        return [(0, 0)]
    if values == ["all"]:
        return [(0, 0)] + list(EXTRA_ANGLES)
    from CTADefaceLib.errors import DefaceError

    angles = []
    for text in values:
        try:
            yaw, pitch = (int(float(v)) for v in text.split(","))
        except ValueError:
            raise DefaceError(
                f"--angles takes YAW,PITCH pairs in degrees (e.g. 30,0) or 'all', not '{text}'."
            ) from None
        angles.append((yaw, pitch))
    return angles


def reidentification_checker(thresholds: str | None = None):
    """For `ctadeface deface --check`: a function of (defaced, original) images that returns the verdict for the
    sidecar (verdict.check_case: views around the face's front, detectors, residual tissue; REVIEW "cannot
    verify" when no face is found in the original's views). `thresholds`: a thresholds file, None for the
    calibrated one. The core's command layer finds this function here; the core never imports the plug-in."""
    try:
        from .verdict import check_case, load_thresholds  # imports torch before VTK renders (render.py says why)
    except ImportError as err:
        from CTADefaceLib.errors import DefaceError

        raise DefaceError(
            f"--check needs the evaluation extra ({err.name} is missing); install it with "
            "'pip install ctadeface[eval]' or run without --check."
        ) from None
    loaded = load_thresholds(thresholds)  # a bad file is reported before any case runs

    def check(defaced, original=None) -> dict:
        return check_case(defaced, original, thresholds=loaded).to_dict()

    return check


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="render, score and compare defaced CTs (MTCNN, FaceNet, the paper's statistics)",
        description="Evaluate defacing as in the CTA-DEFACE paper: anterior CT-Muscle volume renderings scored "
        "by MTCNN (face detection probability) and FaceNet (embedding distance to the original).",
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")

    p = sub.add_parser("render", help="render a CT from the anterior (CT-Muscle preset) to PNG")
    p.add_argument("image")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PNG",
        help="PNG path; with several angles, _yaw<Y>_pitch<P> is added before .png",
    )
    p.add_argument(
        "--angles",
        nargs="+",
        metavar="YAW,PITCH",
        help="views in degrees (default 0,0); 'all' = 0,0 and +-30, +-60 yaw, 20 pitch",
    )
    p.add_argument("--size", type=int, default=512, help="picture width and height in pixels (default 512)")
    p.set_defaults(eval_func=run_render)

    p = sub.add_parser("score", help="face probability (MTCNN) and, with --reference, FaceNet distance")
    p.add_argument("image")
    p.add_argument("--reference", metavar="ORIGINAL", help="the undefaced image to measure the identity distance to")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(eval_func=run_score)

    p = sub.add_parser(
        "check",
        help="PASS or REVIEW with the reasons: views around the face's front, detectors, residual tissue",
        description="Check defaced images for a face that remains. With --original (one per image, same order) "
        "the original is searched first: no face found there gives REVIEW (cannot verify), never PASS. "
        "Exit status: 0 every image PASS, 3 at least one REVIEW, 1 or 2 an error (one sentence on stderr).",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--original", nargs="+", metavar="ORIGINAL", help="the undefaced images, one per IMAGE")
    p.add_argument("--thresholds", metavar="FILE", help="thresholds file (default: the calibrated one)")
    p.add_argument("--size", type=int, default=None, help="render size (default: the calibration's)")
    p.add_argument("--figure", metavar="PNG", help="also write the views with the detections drawn (one image)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.set_defaults(eval_func=run_check)

    p = sub.add_parser(
        "calibrate",
        help="calibrate the check's thresholds on phantoms (full masks must PASS, partial masks REVIEW)",
        description="Generate seeded phantoms in several poses, deface each with the full ground-truth face mask "
        "and with masks that leave the nose, the lips, the eyes or half the face, measure the check's parts, choose "
        "thresholds that pass every full mask and catch every partial one with a margin, write them, and print "
        "sensitivity and specificity per pose.",
    )
    p.add_argument("--quick", action="store_true", help="one seed, two poses (for tests)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED")
    p.add_argument("--size", type=int, default=256, help="render size in pixels (default 256)")
    p.add_argument("-o", "--output", metavar="JSON", help="thresholds file to write (default: the bundled one)")
    p.add_argument("--figure", metavar="PNG", help="also write the views and reasons of one full and one partial case")
    p.set_defaults(eval_func=run_calibrate)

    p = sub.add_parser(
        "compare",
        help="compare defacing methods over a cohort (detection, FaceNet distance, rank-1 and pair AUC); "
        "writes CSV, JSON, PNG, HTML",
    )
    p.add_argument("--originals", required=True, metavar="DIR", help="folder of undefaced images <name>.<ext>")
    p.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="NAME=DIR",
        help="a method's output folder (<name>_defaced.<ext>, optional _facemask and _deface.json); repeat",
    )
    p.add_argument("--truth", metavar="DIR", help="ground-truth face masks <name>.<ext> or <name>_gt.<ext> (for Dice)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--size", type=int, default=512)
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="count a face when the probability is above this (default 0: any MTCNN detection, as the paper)",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="skip the re-identification check per case and method (views, detectors, residual tissue; "
        "REVIEW 'cannot verify' when no face is found in the original); the paper's measures remain",
    )
    p.add_argument("--thresholds", metavar="FILE", help="the check's thresholds file (default: the calibrated one)")
    p.set_defaults(eval_func=run_compare)
    # One dispatcher on the parent: argparse lets parent and child defaults for the same name clash.
    parser.set_defaults(
        func=lambda args: args.eval_func(args) if getattr(args, "eval_func", None) else (parser.print_help(), 2)[1]
    )


def _read(path):
    from CTADefaceLib.io.volume import read_image

    return read_image(path)


def run_render(args) -> int:
    from . import render

    angles = _angles(args.angles)
    pictures = render.render_volume(_read(args.image), size=args.size, angles=angles)
    base = args.output[:-4] if args.output.lower().endswith(".png") else args.output
    for (yaw, pitch), picture in zip(angles, pictures):
        path = args.output if len(angles) == 1 else f"{base}_yaw{yaw:+d}_pitch{pitch:+d}.png"
        render.save_png(picture, path)
        print(path)
    return 0


def run_score(args) -> int:
    from .cohort import score_image

    reference = None
    if args.reference:
        reference = score_image(_read(args.reference), size=args.size)["embedding"]
    scored = score_image(_read(args.image), reference, size=args.size)
    result = {
        "image": os.path.abspath(args.image),
        "reference": args.reference and os.path.abspath(args.reference),
        "face_probability": scored["face_probability"],
        "box": scored["box"],
        "embedding_distance": scored["embedding_distance"],
        "render_s": scored["render_s"],
    }
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        distance = "n/a" if result["embedding_distance"] is None else f"{result['embedding_distance']:.3f}"
        print(f"face probability {result['face_probability']:.4f}; FaceNet distance to reference {distance}")
    return 0


def run_check(args) -> int:
    from CTADefaceLib.errors import DefaceError

    from .verdict import check_case, load_thresholds

    originals = args.original or []
    if originals and len(originals) != len(args.images):
        raise DefaceError(f"--original takes one image per IMAGE ({len(args.images)}), not {len(originals)}.")
    thresholds = load_thresholds(args.thresholds)
    review = 0
    for i, path in enumerate(args.images):
        original = _read(originals[i]) if originals else None
        result = check_case(_read(path), original, thresholds=thresholds, size=args.size)
        review += result.verdict == "REVIEW"
        if args.figure:
            from .figure import save_check_figure

            save_check_figure([(os.path.basename(path), result)], _numbered(args.figure, i, len(args.images)))
        if args.json:
            json.dump(dict(result.to_dict(), image=os.path.abspath(path)), sys.stdout)
            sys.stdout.write("\n")
        else:
            print(f"{result.verdict:<7}{path}")
            for line in result.reasons or ["no face found in any view, no tissue left above the limits"]:
                print(f"       - {line}")
            for line in result.notes:
                print(f"       ({line})")
    return 3 if review else 0


def _numbered(path: str, i: int, count: int) -> str:
    if count == 1:
        return path
    base = path[:-4] if path.lower().endswith(".png") else path
    return f"{base}_{i + 1}.png"


def run_calibrate(args) -> int:
    from CTADefaceLib.io.case_outputs import write_json_atomic

    from . import calibrate
    from .verdict import THRESHOLDS_FILE

    command = "ctadeface eval calibrate" + (" --quick" if args.quick else "")
    if args.seeds:
        command += " --seeds " + " ".join(map(str, args.seeds))
    command += f" --size {args.size}"
    thresholds, rows, cases = calibrate.calibrate(quick=args.quick, seeds=args.seeds, size=args.size, command=command)
    output = args.output or THRESHOLDS_FILE
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    write_json_atomic(thresholds, output)
    print(calibrate.format_table(rows))
    print(f"thresholds written to {output}")
    if args.figure:
        from .figure import save_calibration_figure

        print(save_calibration_figure(cases, thresholds, args.figure))
    return 0


def run_compare(args) -> int:
    from CTADefaceLib.errors import DefaceError

    from .cohort import evaluate_cohort, find_cases
    from .identity import cohort_identity, identity_lines
    from .report import check_lines, detection_lines, write_report

    methods = {}
    for item in args.method:
        name, sep, folder = item.partition("=")
        if not sep or not name or not os.path.isdir(folder):
            raise DefaceError(f"--method takes NAME=FOLDER with an existing folder, not '{item}'.")
        methods[name] = folder
    if not os.path.isdir(args.originals):
        raise DefaceError(f"--originals {args.originals} is not a folder.")
    cases = find_cases(args.originals, methods, args.truth)
    if not cases:
        raise DefaceError(f"No images found in {args.originals}.")
    check = None
    if not args.no_check:
        from .verdict import load_thresholds

        check = load_thresholds(args.thresholds)  # a bad file is reported before any case runs
    names = ["original"] + list(methods)
    embeddings: dict = {}  # {method: {case: FaceNet embeddings per view}}, filled while scoring
    rows = evaluate_cohort(cases, names, args.output, size=args.size, identity=embeddings, check=check)
    identity = cohort_identity(embeddings, names)
    files = write_report(rows, names, args.output, threshold=args.threshold, identity=identity)
    print("\n".join(detection_lines(files["summary"], names) + check_lines(files["summary"])))
    print("\n".join(identity_lines(identity)))
    for key in ("html", "csv", "json", "identity_txt", "detection_png", "distance_png"):
        print(files[key])
    return 0
