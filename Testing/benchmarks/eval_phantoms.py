"""Reproduce the paper's evaluation table and figures on N synthetic heads.

    python Testing/benchmarks/eval_phantoms.py -n 10 -o eval_phantoms [--size 512] [--methods M ...] [--model NAME]

For each case: a phantom (CTADefaceLib.synthetic.phantom: `PhantomSpec.random(seed, size)`, `make_phantom(spec)`),
or, where that module is not installed yet, the test suite's synthetic head; then each method's mask:
  truth   the phantom's own face mask (an ideal anatomical defacer: the upper bound of what nnU-Net can do)
  box     CTADefaceLib.engines.box (ICHSEG-style nose-mouth prism)
  nnunet  the nnU-Net engine (only if a model is installed; otherwise skipped with a note)
Each defaced image goes through the same pipeline (`deface_image`), then render -> MTCNN -> FaceNet,
Dice/surface distance against the phantom's face mask, preservation of intracranial and artery voxels,
runtime. Output: the report folder of CTADefaceEvalLib.report (CSV, JSON, Fig. 3/4-style PNGs, HTML).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for sub in ("CTADeface", "CTADefaceEval", "Testing"):
    sys.path.insert(0, os.path.join(REPO, sub))

log = logging.getLogger("eval_phantoms")


def make_case(seed: int, size: str):
    """A phantom with .image, .face, .intracranial, .arteries (SimpleITK images on one grid)."""
    try:
        from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom
    except ImportError:
        from builders import make_synthetic_head

        rng_shift = ((seed * 7) % 11 - 5.0, (seed * 3) % 7 - 3.0, (seed * 5) % 9 - 4.0)
        return make_synthetic_head(
            spacing=2.0, seed=seed, shift_mm=rng_shift
        ), "make_synthetic_head (Testing/builders.py)"
    return make_phantom(PhantomSpec.random(seed, size=size)), "CTADefaceLib.synthetic.phantom"


MODEL = {"name": "synthetic-test"}  # set from --model in main()


def method_mask(method: str, phantom, engines: dict):
    """(mask or None, engine or None) for one method; truth uses the phantom's own face mask."""
    if method == "truth":
        return phantom.face, None
    if method not in engines:
        from CTADefaceLib.engines import create_engine

        options = {}
        if method == "nnunet":
            from CTADefaceLib.models.bundled import SYNTHETIC_NAME
            from CTADefaceLib.models.install import install, is_installed

            if MODEL["name"] == SYNTHETIC_NAME and not is_installed(SYNTHETIC_NAME):
                install(SYNTHETIC_NAME, progress=False)  # the bundled model: no network
            options["model"] = MODEL["name"]
        engines[method] = create_engine(method, **options)
    return None, engines[method]


def run(n: int, outdir: str, methods: list[str], size: int, phantom_size: str) -> dict:
    from CTADefaceEvalLib import (
        metrics,
        render,  # noqa: F401  (imports torch/torchvision before VTK: see render.py)
    )
    from CTADefaceEvalLib.cohort import score_image
    from CTADefaceEvalLib.report import write_report
    from CTADefaceLib.errors import DefaceError
    from CTADefaceLib.pipeline import DefaceSettings, deface_image

    rows, engines, skipped = [], {}, {}
    renders = os.path.join(outdir, "renders")
    source = None
    for seed in range(n):
        phantom, source = make_case(seed, phantom_size)
        case = f"case{seed:03d}"
        ref = score_image(phantom.image, size=size, save_to=os.path.join(renders, f"{case}_original.png"))
        rows.append(
            {
                "case": case,
                "method": "original",
                "face_probability": ref["face_probability"],
                "embedding_distance": None,
                "render": ref["render"],
                "render_s": ref["render_s"],
            }
        )
        regions = {"intracranial": phantom.intracranial, "arteries": phantom.arteries}
        for method in methods:
            if method in skipped:
                continue
            start = time.perf_counter()
            try:
                mask, engine = method_mask(method, phantom, engines)
                result = deface_image(
                    phantom.image, DefaceSettings(engine=method if engine else "nnunet"), engine=engine, mask=mask
                )
            except DefaceError as err:  # e.g. no nnU-Net model installed: say so and go on without it
                skipped[method] = str(err)
                log.warning("skipping %s: %s", method, err)
                continue
            seconds = time.perf_counter() - start
            scored = score_image(
                result.defaced, ref["embedding"], size=size, save_to=os.path.join(renders, f"{case}_{method}.png")
            )
            row = {
                "case": case,
                "method": method,
                "face_probability": scored["face_probability"],
                "embedding_distance": scored["embedding_distance"] if scored["embedding"] is not None else None,
                "render": scored["render"],
                "render_s": scored["render_s"],
                "runtime_s": round(seconds, 3),
            }
            row.update(metrics.mask_report(result.mask, phantom.face))
            row.update(metrics.preservation(phantom.image, result.defaced, result.mask, regions))
            rows.append(row)
        log.info(
            "%s done (%s)",
            case,
            ", ".join(f"{r['method']} p={r['face_probability']:.3f}" for r in rows if r["case"] == case),
        )
    names = ["original"] + [m for m in methods if m not in skipped]
    files = write_report(rows, names, outdir, title=f"CTA-DEFACE evaluation on {n} phantoms ({source})")
    files["skipped"] = skipped
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--cases", type=int, default=10)
    parser.add_argument("-o", "--output", default="eval_phantoms")
    parser.add_argument("--methods", nargs="+", default=["truth", "box", "nnunet"])
    parser.add_argument("--size", type=int, default=512, help="render size in pixels")
    parser.add_argument("--phantom-size", default="medium", choices=("small", "medium", "cta"))
    parser.add_argument(
        "--model",
        default="synthetic-test",
        help="model for the nnunet method (default: the bundled synthetic test model)",
    )
    args = parser.parse_args(argv)
    MODEL["name"] = args.model
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    files = run(args.cases, args.output, args.methods, args.size, args.phantom_size)
    summary = files["summary"]
    print(f"{'method':10s} {'detected':>9s} {'95% CI':>12s} {'Dice':>6s} {'distance':>9s}")
    for method, det in summary["detections"].items():
        ci = f"{100 * det['ci_low']:.0f}-{100 * det['ci_high']:.0f}%" if det["ci_low"] is not None else "-"
        dice = (summary.get("dice") or {}).get(method, {}).get("mean")
        dist = summary["distance"].get(method, {}).get("mean")
        print(
            f"{method:10s} {det['detected']:>4d}/{det['n']:<4d} {ci:>12s} "
            f"{'-' if dice is None else f'{dice:.3f}':>6s} {'-' if dist is None else f'{dist:.3f}':>9s}"
        )
    print(f"Friedman p = {summary['friedman']['p']}; report: {files['html']} ({time.perf_counter() - start:.0f} s)")
    for method, why in files["skipped"].items():
        print(f"skipped {method}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
