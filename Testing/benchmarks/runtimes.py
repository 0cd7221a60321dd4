"""One 128^3 tile of the official-shape network: eager PyTorch against ONNX Runtime and OpenVINO.

    python Testing/benchmarks/runtimes.py [--threads N] [--repeats 3] [--no-malloc]

A faster CPU runtime is worth adopting only if it is faster *and* gives the same masks up to
rounding. This exports the randomly initialised official-shape network (Testing/benchmarks/speed.py
builds the same one) to ONNX, runs one CT-like tile through each runtime that is installed, and
prints the mean time per tile and how far its logits and labels are from eager PyTorch's. ONNX
Runtime and OpenVINO are not project dependencies: `pip install onnx onnxruntime openvino` first; a
runtime that is missing is reported and skipped. Each runtime gets the same thread count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "CTADeface"))


def official_network(folder: str):
    """The official-shape random network, built by nnU-Net from the model folder speed.py also uses."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from CTADefaceLib.synthetic.random_model import write_random_model

    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(write_random_model(folder), use_folds=("all",))
    predictor.network.load_state_dict(predictor.list_of_parameters[0])
    return predictor.network.eval()


def timed(run, x, repeats: int):
    run(x)  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = run(x)
        times.append(time.perf_counter() - start)
    return out, sum(times) / len(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-malloc", action="store_true", help="keep glibc's default allocator settings")
    args = parser.parse_args(argv)
    from CTADefaceLib.launcher import MARKER, malloc_environment, wanted

    if not args.no_malloc and wanted() and os.environ.get(MARKER) != "1":
        # the allocator settings `ctadeface` runs with on a CPU (launcher.py); glibc reads them at start-up only
        os.execve(
            sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], malloc_environment(os.environ)
        )
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    folder = tempfile.mkdtemp(prefix="ctadeface-runtimes-")
    network = official_network(folder)
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (1, 1, 128, 128, 128)).astype(np.float32)  # CT-normalised intensities
    with torch.inference_mode():
        reference, t_eager = timed(lambda a: network(torch.from_numpy(a)).numpy(), x, args.repeats)
    rows = [("eager PyTorch", t_eager, 0.0, 0.0)]
    onnx_path = os.path.join(folder, "network.onnx")
    try:
        torch.onnx.export(
            network,
            torch.from_numpy(x),
            onnx_path,
            input_names=["x"],
            output_names=["y"],
            opset_version=17,
            dynamo=False,
        )
    except Exception as error:  # onnx missing or export failed: say so, time nothing else
        print(f"ONNX export failed ({type(error).__name__}: {error}); only eager PyTorch was timed")
        onnx_path = None

    def compare(name, run):
        out, seconds = timed(run, x, args.repeats)
        rows.append(
            (name, seconds, float(np.abs(out - reference).max()), float(np.mean(out.argmax(1) != reference.argmax(1))))
        )

    if onnx_path:
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
            compare("ONNX Runtime", lambda a: session.run(None, {"x": a})[0])
        except ImportError:
            print("ONNX Runtime is not installed: skipped")
        try:
            import openvino as ov

            core = ov.Core()
            compiled = core.compile_model(
                ov.convert_model(onnx_path),
                "CPU",
                {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32"},
            )
            compare("OpenVINO (f32)", lambda a: compiled(a)[0])
        except ImportError:
            print("OpenVINO is not installed: skipped")
    allocator = "glibc defaults" if os.environ.get(MARKER) != "1" else "ctadeface's allocator settings"
    print(
        f"one 128^3 tile, official-shape network, {args.threads} threads, {allocator}, "
        f"mean of {args.repeats} after a warm-up"
    )
    print(f"{'runtime':16s} {'s per tile':>10s} {'max |logit diff|':>17s} {'labels differing':>17s}")
    for name, seconds, diff, labels in rows:
        print(f"{name:16s} {seconds:10.2f} {diff:17.2e} {labels:17.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
