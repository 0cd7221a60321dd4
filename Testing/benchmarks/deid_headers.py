"""How long the header de-identification takes per 512x512 CT slice (prints ms/slice; not a test).

    PYTHONPATH=CTADeface python Testing/benchmarks/deid_headers.py [--slices 300] [--options all]

Each slice is a real CT header (pydicom's CT_small.dcm: a GE scanner's 258 elements, private ones included)
with 512x512 16-bit pixel data and its own SOP Instance UID, written to bytes and read back, so that
deidentify() meets undecoded elements as it does after dcmread(). Reading and writing are timed
separately, for scale; only deidentify() is this module's cost.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "CTADeface"))


def make_slices(count: int) -> list:
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    template.Rows = template.Columns = 512
    template.PixelData = np.random.default_rng(0).integers(-1024, 2000, (512, 512), dtype=np.int16).tobytes()
    blobs = []
    for n in range(count):
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.4.5.{n + 1}"
        template.InstanceNumber = n + 1
        buffer = io.BytesIO()
        if pydicom.__version__.startswith("2."):
            pydicom.dcmwrite(buffer, template, write_like_original=True)
        else:
            pydicom.dcmwrite(buffer, template)
        blobs.append(buffer.getvalue())
    return blobs


def main() -> int:
    import pydicom

    from CTADefaceLib.deid import Deidentifier, DeidOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--options", choices=("basic", "all"), default="basic")
    args = parser.parse_args()
    options = DeidOptions() if args.options == "basic" else DeidOptions(True, True, True, True, True)
    blobs = make_slices(args.slices)

    start = time.perf_counter()
    datasets = [pydicom.dcmread(io.BytesIO(blob)) for blob in blobs]
    read_s = time.perf_counter() - start

    deid = Deidentifier(options, b"benchmark-key-not-secret-32bytes")
    deid.deidentify(datasets[0], defaced=True)  # first-use costs (table, dictionary) are not per slice
    start, cpu_start = time.perf_counter(), time.process_time()
    outputs = [deid.deidentify(ds, defaced=True) for ds in datasets]
    deid_s, deid_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

    start = time.perf_counter()
    for out in outputs:
        buffer = io.BytesIO()
        if pydicom.__version__.startswith("2."):
            pydicom.dcmwrite(buffer, out, write_like_original=False)
        else:
            pydicom.dcmwrite(buffer, out, enforce_file_format=True)
    write_s = time.perf_counter() - start

    n = args.slices
    print(f"pydicom {pydicom.__version__}, {n} slices of 512x512, options: {args.options}")
    # CPU time is printed beside wall time: on a shared machine the wall time also counts other processes' turns.
    print(f"deidentify: {deid_s / n * 1e3:.2f} ms/slice wall, {deid_cpu_s / n * 1e3:.2f} ms/slice CPU")
    print(f"(for scale) dcmread from memory: {read_s / n * 1e3:.2f} ms/slice, dcmwrite to memory: "
          f"{write_s / n * 1e3:.2f} ms/slice")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
