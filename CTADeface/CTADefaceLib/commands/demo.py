"""`ctadeface demo`: deface the bundled synthetic sample with the bundled synthetic model."""

from __future__ import annotations

import os


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="deface the bundled synthetic sample (installs the synthetic test model first)",
        description=(
            "Installs the project's synthetic test model (trained on phantoms only, not for clinical use) into "
            "the model cache if needed, then defaces the bundled synthetic head CTA into OUTDIR."
        ),
    )
    parser.add_argument(
        "-o", "--output", default="ctadeface_demo", metavar="OUTDIR", help="output folder (default: ./ctadeface_demo)"
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..models.bundled import SAMPLE_IMAGE, SYNTHETIC_NAME
    from ..models.install import install, is_installed
    from ..pipeline import DefaceSettings, deface_file, output_paths

    if not is_installed(SYNTHETIC_NAME):
        install(SYNTHETIC_NAME)
    settings = DefaceSettings(model=SYNTHETIC_NAME, device=args.device)
    sidecar = deface_file(SAMPLE_IMAGE, args.output, settings, overwrite=True)
    for key, path in output_paths(SAMPLE_IMAGE, args.output).items():
        print(f"{key:8s} {os.path.abspath(path)}")
    print(
        f"face mask {sidecar['mask_volume_ml']:.1f} ml, filled with {sidecar['fill_value']:.0f} HU, "
        f"{sidecar['timings_s']['total']:.1f} s on {sidecar['device']}"
    )
    return 0
