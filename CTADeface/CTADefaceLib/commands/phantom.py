"""`ctadeface phantom`: write synthetic head-and-neck CTA phantoms with ground-truth masks."""

from __future__ import annotations

import argparse
import logging
import time

log = logging.getLogger(__name__)

HELP = "write synthetic head-and-neck CTA phantoms with face/intracranial/artery ground truth"
DESCRIPTION = """\
Generate synthetic head-and-neck CT angiography volumes (Hounsfield units, NIfTI) with
ground truth, for tests, demos and training small models. For each case (named
phantom_sSEED, e.g. phantom_s0007) it writes to DIR:
  CASE.nii.gz                   the CT (Int16 HU, Gaussian noise)
  CASE_face_gt.nii.gz           face mask (CTA-DEFACE definition: facial soft tissue and skin
                                from above the frontal sinus to the hyoid level, bone and ears
                                excluded, glasses / tube in front of the face included)
  CASE_intracranial_gt.nii.gz   brain, CSF, ventricles and intracranial arteries
  CASE_arteries_gt.nii.gz       contrast-filled arteries
Seeds SEED, SEED+1, ..., SEED+N-1 are used. Each seed draws a face identity, head pose,
field of view, stored orientation and devices (per --size); options below override them.
The same seed and options always give the same files."""
EPILOG = """\
examples:
  ctadeface phantom -o phantoms --n 20 --seed 100              # 20 small (2 mm) cases
  ctadeface phantom -o cta --size cta --n 1 --orientation RAS   # one 512x512x300 0.45/0.6 mm case
  ctadeface phantom -o x --pose 0 0 15 --devices glasses tube --no-neck"""


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "phantom",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the phantom files (created)")
    p.add_argument("--n", type=int, default=1, metavar="N", help="number of phantoms (default 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="first seed (default 0)")
    p.add_argument(
        "--size",
        choices=("small", "medium", "cta"),
        default="small",
        help="small: ~2 mm, ~128^3 (fast); medium: ~1 mm, 256^2 x 250-280; "
        "cta: 512x512x300 at 0.45x0.45x0.6 mm (default small)",
    )
    p.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"), help="voxel spacing in mm")
    p.add_argument("--shape", type=int, nargs=3, metavar=("NX", "NY", "NZ"), help="grid size in voxels")
    p.add_argument(
        "--orientation",
        choices=("LPS", "RAS", "random"),
        default="random",
        help="stored direction: LPS (identity) or RAS (diag(-1,-1,1)); default: drawn from the seed",
    )
    p.add_argument(
        "--pose",
        type=float,
        nargs=3,
        metavar=("RX", "RY", "RZ"),
        help="head rotation in degrees about the L, P, S axes (default: drawn from the seed, within +-20)",
    )
    neck = p.add_mutually_exclusive_group()
    neck.add_argument(
        "--neck",
        dest="neck",
        action="store_true",
        default=None,
        help="field of view starts at the vertex and reaches down into the neck",
    )
    neck.add_argument("--no-neck", dest="neck", action="store_false", help="field of view ends just below the chin")
    vertex = p.add_mutually_exclusive_group()
    vertex.add_argument("--vertex", dest="vertex", action="store_true", default=None, help="include the skull vertex")
    vertex.add_argument("--no-vertex", dest="vertex", action="store_false", help="cut the top of the skull")
    p.add_argument(
        "--devices",
        nargs="*",
        choices=("glasses", "tube"),
        metavar="DEVICE",
        help="external devices: glasses and/or tube (intubation); none if given empty; default: from the seed",
    )
    p.add_argument("--noise", type=float, metavar="HU", help="Gaussian noise sd in HU (default: drawn, 10-20)")
    p.add_argument("--preview", action="store_true", help="also write CASE_preview.png (three mid-slices)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.set_defaults(func=run)
    return p


def spec_for(args, seed: int):
    from ..synthetic.phantom import PhantomSpec

    spec = PhantomSpec.random(seed, args.size)
    changes = {}
    if args.spacing:
        changes["spacing"] = tuple(args.spacing)
    if args.shape:
        changes["shape"] = tuple(args.shape)
    if args.orientation != "random":
        changes["orientation"] = args.orientation
    if args.pose is not None:
        changes["pose_deg"] = tuple(args.pose)
    if args.neck is not None:
        changes["neck"] = args.neck
    if args.vertex is not None:
        changes["vertex"] = args.vertex
    if args.devices is not None:
        changes["devices"] = tuple(dict.fromkeys(args.devices))
    if args.noise is not None:
        changes["noise_hu"] = args.noise
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def run(args) -> int:
    import os

    from ..errors import DefaceError
    from ..synthetic.phantom import make_phantom, save_preview, write_phantom

    if args.n < 1:
        raise DefaceError("--n must be at least 1.")
    if (args.spacing and min(args.spacing) <= 0) or (args.shape and min(args.shape) < 2):
        raise DefaceError("--spacing must be positive and --shape at least 2 voxels per axis.")
    for seed in range(args.seed, args.seed + args.n):
        case = f"phantom_s{seed:04d}"
        spec = spec_for(args, seed)
        t0 = time.time()
        ph = make_phantom(spec)
        paths = write_phantom(ph, args.output, case, overwrite=args.overwrite)
        if args.preview:
            save_preview(ph, os.path.join(args.output, f"{case}_preview.png"))
        log.info(
            "%s: %s %s mm %s pose %s devices %s face %.0f ml (%.1f s) -> %s",
            case,
            "x".join(map(str, spec.shape)),
            "x".join(f"{v:g}" for v in spec.spacing),
            spec.orientation,
            "/".join(f"{v:.1f}" for v in ph.pose_deg),
            ",".join(spec.devices) or "none",
            ph.info["face_ml"],
            time.time() - t0,
            paths["image"],
        )
    return 0
