"""Seconds to render every default view with both presets of a 512x512x300 CTA (the check's rendering cost).

    python Testing/benchmarks/render_views.py [--threads 2] [--size 512] [--seed 0] [--grid views.png]

The CT is the phantom generator's "cta" case (512x512x300 voxels, 0.45x0.45x0.6 mm, random pose, devices and
storage orientation from the seed). Prints the total and the stages: prepare (crop + resample to 1 mm), pose
(face frame), table (holder removal), pipeline (VTK set-up, including the torch import that must precede it),
and each view/preset. `--grid` saves the pictures as one PNG (presets in rows, views in columns).
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for ITK and VTK (default 2)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", help="save the views as one PNG here")
    args = parser.parse_args(argv)

    import numpy as np
    import SimpleITK as sitk

    from CTADefaceEvalLib import render, views
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    render.import_torch_before_vtk()  # not part of the measured time: a cohort run pays it once
    vtk = render._vtk()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    vtk.vtkMultiThreader.SetGlobalMaximumNumberOfThreads(args.threads)
    spec = PhantomSpec.random(args.seed, "cta")
    phantom = make_phantom(spec)
    print(f"CT {phantom.image.GetSize()} voxels, spacing {phantom.image.GetSpacing()} mm, pose {spec.pose_deg}")
    timings: dict = {}
    start = time.perf_counter()
    out = views.render_views(phantom.image, size=args.size, timings=timings)
    total = time.perf_counter() - start
    print(f"{len(out)} pictures ({len(views.DEFAULT_VIEWS)} views x 2 presets, {args.size} px, {args.threads} threads)")
    for key, value in timings.items():
        print(f"  {key:24s} {value:7.2f} s")
    print(f"total {total:.1f} s")
    if args.grid:
        rows = [np.concatenate([v.rgb for v in out if v.preset == p], axis=1) for p in ("ct-muscle", "skin")]
        render.save_png(np.concatenate(rows, axis=0), args.grid)
        print(f"grid: {args.grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
