"""Dice of a face model against phantom ground truth on cases it was not trained on.

    python Testing/benchmarks/model_dice.py [--model synthetic-test] [--seeds 5000 5001 ...] [--size small]

Training used seeds 1000-1999 (Testing/train_synthetic_model.py); the default seeds here are
other ones, and each case has its own pose, field of view, stored orientation and devices.
Prints one line per case and the mean Dice.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(REPO, "CTADeface"), os.path.join(REPO, "CTADefaceEval")]

DEFAULT_SEEDS = (5000, 5001, 5002, 5003, 5004, 5005)


def evaluate(model: str, seeds, size: str, device: str, tile_step: float = 0.5):
    from CTADefaceEvalLib.metrics import dice
    from CTADefaceLib.engines import engine_for
    from CTADefaceLib.pipeline import DefaceSettings, compute_mask
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    settings = DefaceSettings(model=model, device=device, tile_step=tile_step)
    engine = engine_for(settings)
    rows = []
    for seed in seeds:
        phantom = make_phantom(PhantomSpec.random(seed, size=size))
        start = time.perf_counter()
        mask, _ = compute_mask(phantom.image, settings, engine)
        seconds = time.perf_counter() - start
        spec = phantom.spec
        rows.append(
            {
                "seed": seed,
                "dice": dice(mask, phantom.face),
                "seconds": seconds,
                "orientation": spec.orientation,
                "spacing": tuple(round(s, 2) for s in spec.spacing),
                "pose": tuple(round(p, 1) for p in phantom.pose_deg),
                "neck": spec.neck,
                "devices": spec.devices,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="synthetic-test")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--size", default="small", help="phantom size preset: small, medium or cta")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    rows = evaluate(args.model, args.seeds, args.size, args.device)
    for r in rows:
        print(
            f"seed {r['seed']}: Dice {r['dice']:.3f}  {r['seconds']:.1f} s  {r['orientation']} {r['spacing']} "
            f"pose {r['pose']} neck={r['neck']} devices={','.join(r['devices']) or '-'}"
        )
    mean = sum(r["dice"] for r in rows) / len(rows)
    print(f"mean Dice {mean:.3f} over {len(rows)} unseen '{args.size}' phantoms (model {args.model})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
