"""How fast DICOM slices go through: read, deface the stored values, de-identify the header, write.

    python Testing/benchmarks/dicom_speed.py [--slices 300] [--size 512] [--encoding plain|rle] [--profile]

Builds a 300-slice 512 x 512 CT series with pydicom (in a temporary folder), gives it a face mask (a box, so no
nnU-Net runs), and times `study.write_series` over it: per slice, dcmread, the stored values replaced under the
mask, CTADefaceLib.deid's Deidentifier (the test stand-in where that package is not installed: the figure then
says so), PixelData set, the file written and fsynced. Prints slices per second; the project's target is at least
100 on 2 cores. --encoding rle stores the input as RLE Lossless (pydicom's own encoder), so the figure includes
pydicom's RLE decoder. --profile prints where the time goes (cProfile, top 25 by cumulative time).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for sub in ("CTADeface", "Testing"):
    sys.path.insert(0, os.path.join(REPO, sub))


def main(argv=None) -> int:
    import numpy as np
    import SimpleITK as sitk

    from CTADefaceLib.dicom.discover import discover
    from CTADefaceLib.dicom.geometry import mask_on_series, series_geometry
    from CTADefaceLib.dicom.study import write_series
    from dicom_study import write_series as write_input_series

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--encoding", choices=("plain", "rle"), default="plain", help="how the input is stored")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="dicom-speed-") as tmp:
        rng = np.random.default_rng(0)
        array = rng.normal(40, 20, (args.slices, args.size, args.size)).astype(np.int16)
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.5, 0.5, 0.625))
        start = time.perf_counter()
        paths = write_input_series(image, os.path.join(tmp, "in"), "1.2.826.0.1.3680043.10.543.77", 1)
        if args.encoding == "rle":
            import pydicom
            from pydicom.uid import RLELossless

            for path in paths:
                ds = pydicom.dcmread(path)
                ds.compress(RLELossless)
                ds.save_as(path, enforce_file_format=True)
        print(f"built {args.slices} input slices ({args.encoding}) in {time.perf_counter() - start:.1f} s")
        phases = {}
        start = time.perf_counter()
        found = discover([os.path.join(tmp, "in")])
        phases["discover (headers, grouping)"] = time.perf_counter() - start
        start = time.perf_counter()
        (series,) = next(iter(found.studies.values())).series.values()
        geometry = series_geometry(series)
        phases["geometry checks"] = time.perf_counter() - start
        mask_image = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        mask_image.CopyInformation(image)
        mask_image[:, : args.size // 4, args.slices // 4 : args.slices // 2] = 1  # an anterior slab
        start = time.perf_counter()
        mask = mask_on_series(mask_image, geometry)
        phases["mask resampled onto the series"] = time.perf_counter() - start
        key_dir = os.path.join(tmp, "key")
        os.makedirs(key_dir)
        from CTADefaceLib.deid import Deidentifier, DeidOptions, load_or_create_key

        deid = Deidentifier(DeidOptions(), load_or_create_key(os.path.join(key_dir, "deid.key")))
        which = "CTADefaceLib.deid"

        steps: dict = {}

        def run():
            return write_series(
                geometry,
                mask,
                -1000.0,
                lambda ds: deid.deidentify(ds, defaced=True),
                os.path.join(tmp, "out"),
                timings=steps,
            )

        start = time.perf_counter()
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(run)
            elapsed = time.perf_counter() - start
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        else:
            run()
            elapsed = time.perf_counter() - start
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        phases["read + deface + de-identify + write (write_series)"] = elapsed
        for name, seconds in phases.items():
            print(f"  {name:52s} {seconds:6.2f} s  {1000 * seconds / args.slices:6.2f} ms/slice")
        for name, seconds in steps.items():
            print(f"    of which {name:43s} {seconds:6.2f} s  {1000 * seconds / args.slices:6.2f} ms/slice")
        total = sum(phases.values())
        print(f"whole series: {args.slices / total:.0f} slices/s")
        print(
            f"{args.slices} slices of {args.size}x{args.size} ({args.encoding}) read, defaced, de-identified ({which}) "
            "and written in "
            f"{elapsed:.2f} s: {args.slices / elapsed:.0f} slices/s on {cores} core(s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
