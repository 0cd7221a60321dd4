"""`ctadeface eval ...`: render, score, check and compare defaced CTs from the command line.

ctadeface eval render IMAGE -o PNG [--angles all | --angles 0,0 30,0 ...]
ctadeface eval score IMAGE [--reference ORIGINAL] [--json]
ctadeface eval check IMAGE [--threshold 0.9]
ctadeface eval compare --originals DIR --method NAME=DIR [--method ...] [--truth DIR] -o OUTDIR
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


def reidentification_checker(threshold: float):
    """For `ctadeface deface --check`: a function of the defaced image that renders it from the front and runs
    MTCNN, returning PASS (no face above threshold) or REVIEW. The core's command layer finds it here."""

    def check(defaced) -> dict:
        try:
            from .cohort import check_defaced  # imports torch before VTK renders (render.py says why)
        except ImportError as err:
            from CTADefaceLib.errors import DefaceError

            raise DefaceError(
                f"--check needs the evaluation extra ({err.name} is missing); install it with "
                "'pip install ctadeface[eval]' or run without --check."
            ) from None
        return check_defaced(defaced, threshold=threshold)

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

    p = sub.add_parser("check", help="PASS when no face is detected above the threshold, else REVIEW")
    p.add_argument("image")
    p.add_argument("--threshold", type=float, default=None, help="MTCNN probability for REVIEW (default 0.9)")
    p.add_argument("--angles", nargs="+", metavar="YAW,PITCH")
    p.set_defaults(eval_func=run_check)

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
    from .cohort import CHECK_THRESHOLD, check_defaced

    threshold = CHECK_THRESHOLD if args.threshold is None else args.threshold
    result = check_defaced(_read(args.image), threshold, angles=_angles(args.angles))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0 if result["check"] == "PASS" else 3


def run_compare(args) -> int:
    from CTADefaceLib.errors import DefaceError

    from .cohort import evaluate_cohort, find_cases
    from .identity import cohort_identity, identity_lines
    from .report import write_report

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
    names = ["original"] + list(methods)
    embeddings: dict = {}  # {method: {case: FaceNet embeddings per view}}, filled while scoring
    rows = evaluate_cohort(cases, names, args.output, size=args.size, identity=embeddings)
    identity = cohort_identity(embeddings, names)
    files = write_report(rows, names, args.output, threshold=args.threshold, identity=identity)
    print("\n".join(identity_lines(identity)))
    for key in ("html", "csv", "json", "identity_txt", "detection_png", "distance_png"):
        print(files[key])
    return 0
