"""Identity figures (rank-1 identification, pair AUC) of `ctadeface eval compare` on a cohort of phantoms.

    python Testing/benchmarks/identity_phantoms.py -n 8 -o identity_phantoms [--phantom-size medium] [--size 512]

Each seed is one identity (CTADefaceLib.synthetic.phantom draws nose, jaw, brows, eye spacing, lips, chin,
head size and pose from it). The cohort is written as files, then the real command runs on it:
  originals/<case>.nii.gz          the phantom
  truth/<case>_defaced.nii.gz      defaced with the phantom's own face mask (an ideal anatomical defacer)
  box/<case>_defaced.nii.gz        defaced by the box engine (ICHSEG-style nose-mouth prism: a partial removal)
and `ctadeface eval compare --originals originals --method truth=truth --method box=box -o OUT` prints the
identity lines (also in OUT/identity.txt).

Phantoms are not faces: FaceNet was trained on photographs of people, and a phantom's "identity" is a
handful of analytic shape parameters plus its pose. What this measures on phantoms is whether the
pipeline separates cases at all, not how recognisable a real person would be.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for sub in ("CTADeface", "CTADefaceEval"):
    sys.path.insert(0, os.path.join(REPO, sub))


def write_cohort(folder: str, n: int, phantom_size: str) -> dict:
    """originals/, truth/ and box/ folders for seeds 0..n-1; returns {method: folder}."""
    import SimpleITK as sitk

    from CTADefaceLib.engines import create_engine
    from CTADefaceLib.fill import apply_mask, fill_value
    from CTADefaceLib.pipeline import DefaceSettings, deface_image
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    folders = {name: os.path.join(folder, name) for name in ("originals", "truth", "box")}
    for path in folders.values():
        os.makedirs(path, exist_ok=True)
    box = create_engine("box")
    for seed in range(n):
        phantom = make_phantom(PhantomSpec.random(seed, size=phantom_size))
        case = f"p{seed:03d}"
        sitk.WriteImage(phantom.image, os.path.join(folders["originals"], f"{case}.nii.gz"))
        truth = apply_mask(phantom.image, phantom.face, fill_value(phantom.image, "p10"))
        sitk.WriteImage(truth, os.path.join(folders["truth"], f"{case}_defaced.nii.gz"))
        boxed = deface_image(phantom.image, DefaceSettings(engine="box"), engine=box).defaced
        sitk.WriteImage(boxed, os.path.join(folders["box"], f"{case}_defaced.nii.gz"))
        print(f"wrote {case} (pose {phantom.pose_deg})", flush=True)
    return folders


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--cases", type=int, default=8, help="number of identities (seeds 0..n-1)")
    parser.add_argument("-o", "--output", default="identity_phantoms")
    parser.add_argument("--phantom-size", default="medium", choices=("small", "medium", "cta"))
    parser.add_argument("--size", type=int, default=512, help="render size in pixels")
    args = parser.parse_args(argv)

    from CTADefaceLib.cli import build_parser

    start = time.perf_counter()
    folders = write_cohort(os.path.join(args.output, "cohort"), args.cases, args.phantom_size)
    written = time.perf_counter()
    compare = build_parser().parse_args(
        [
            "eval",
            "compare",
            "--originals",
            folders["originals"],
            "--method",
            f"truth={folders['truth']}",
            "--method",
            f"box={folders['box']}",
            "-o",
            os.path.join(args.output, "report"),
            "--size",
            str(args.size),
        ]
    )
    status = compare.func(compare)
    end = time.perf_counter()
    print(
        f"{args.cases} {args.phantom_size} phantoms: cohort written in {written - start:.0f} s, compared in {end - written:.0f} s"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
