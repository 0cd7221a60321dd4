"""Face model speed: the upstream way against this project's default path, same machine, same run.

    python Testing/benchmarks/speed.py [--device cpu|cuda] [--upstream-tiles N | --upstream-full]
                                       [--compare-malloc] [--agreement-seeds 1 2 3] [--workdir DIR]
    (also: ctadeface bench ...)

1. Builds a CTA-sized phantom (512x512x300 voxels, 0.45x0.45x0.6 mm, with neck and vertex) and a
   randomly initialised nnU-Net with the official CTA-DEFACE network's shape (6 stages 32..320,
   patch 128^3, ~31 M parameters; target spacing = the input's, so nothing is resampled). Time does
   not depend on weight values.
2. Times, each variant in its own child process (peak memory = that child's ru_maxrss):
   (a) upstream: plain nnUNetPredictor on the whole volume, tile step 0.5, no mirroring, default malloc;
   (b) default: this project's engine as `ctadeface deface` runs it (face ROI tiles, allocator settings;
       the ROI safety net is off because a random model's noise would always trigger it).
   With --upstream-tiles N (the default, N=3) (a) preprocesses the whole volume, counts its tiles,
   runs N of them and extrapolates: network time = tile count x mean time per tile, plus the measured
   preprocessing and export. --upstream-full runs all of them (about 30 min on 2 CPU cores).
3. Agreement: the masks of (a) and (b) cannot be compared with a random model, so they are compared
   with the small trained test model ("synthetic-test") on small phantoms (Dice).
Prints a table and one summary line with the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(REPO, "CTADeface")
if LIB not in sys.path:
    sys.path.insert(0, LIB)

CTA_SHAPE, CTA_SPACING = (512, 512, 300), (0.45, 0.45, 0.6)


# ----------------------------------------------------------------------------- children
def _rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB


def child_upstream(args) -> dict:
    import numpy as np
    import SimpleITK as sitk
    import torch
    from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    t0 = time.perf_counter()
    image = sitk.ReadImage(args.image)
    data = sitk.GetArrayFromImage(image).astype(np.float32)[None]
    props = {"spacing": list(image.GetSpacing())[::-1]}
    if args.device == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=args.device != "cpu", device=torch.device(args.device),
                                verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(args.model, use_folds=("all",))
    t_load = time.perf_counter() - t0
    if args.tiles <= 0:  # the whole upstream run
        t = time.perf_counter()
        with torch.inference_mode():
            predictor.predict_single_npy_array(data, props)
        total = time.perf_counter() - t
        n = len(predictor._internal_get_sliding_window_slicers(_pre_shape(predictor, data, props)))
        return {"load_s": t_load, "predict_s": total, "tiles": n, "extrapolated": False, "peak_gb": _rss_gb()}
    t = time.perf_counter()
    dct = next(PreprocessAdapterFromNpy([data], [None], [props], [None], predictor.plans_manager, predictor.dataset_json,
                                        predictor.configuration_manager, num_threads_in_multithreaded=1))
    t_pre = time.perf_counter() - t
    pre = dct["data"]
    slicers = predictor._internal_get_sliding_window_slicers(pre.shape[1:])
    picks = [slicers[int(i)] for i in np.linspace(0, len(slicers) - 1, args.tiles).round()]
    network = predictor.network.to(predictor.device).eval()
    per_tile = []
    with torch.inference_mode():
        for sl in picks:
            x = pre[sl][None].to(predictor.device)
            t = time.perf_counter()
            network(x)
            if args.device == "cuda":
                torch.cuda.synchronize()
            per_tile.append(time.perf_counter() - t)
        t = time.perf_counter()
        logits = torch.zeros((2, *pre.shape[1:]), dtype=torch.half)
        convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager,
            dct["data_properties"])
        t_export = time.perf_counter() - t
    mean = sum(per_tile) / len(per_tile)
    return {"load_s": t_load, "preprocess_s": t_pre, "per_tile_s": per_tile, "mean_tile_s": mean, "export_s": t_export,
            "tiles": len(slicers), "tiles_run": len(picks), "extrapolated": True,
            "predict_s": t_pre + len(slicers) * mean + t_export, "peak_gb": _rss_gb()}


def _pre_shape(predictor, data, props):
    from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy

    dct = next(PreprocessAdapterFromNpy([data], [None], [props], [None], predictor.plans_manager,
                                        predictor.dataset_json, predictor.configuration_manager,
                                        num_threads_in_multithreaded=1))
    return dct["data"].shape[1:]


def child_default(args) -> dict:
    import SimpleITK as sitk

    from CTADefaceLib.pipeline import DefaceSettings, compute_mask

    t0 = time.perf_counter()
    image = sitk.ReadImage(args.image)
    # The random model's mask is noise that touches every edge, so the ROI safety net (which reruns the
    # whole volume when a real face reaches the region's edge) is off here: this times the ROI path itself.
    settings = DefaceSettings(model=args.model, device=args.device, roi=True,
                              engine_options={"safety_net": False})
    engine = settings.create_engine()
    if args.threads:
        engine.threads = args.threads
    engine._load()
    t_load = time.perf_counter() - t0
    timings: dict = {}
    t = time.perf_counter()
    compute_mask(image, settings, engine, timings)
    total = time.perf_counter() - t
    plan = engine.last_plan
    return {"load_s": t_load, "predict_s": total, "tiles": engine.last_tiles, "extrapolated": False,
            "roi_box": plan.box if plan else None, "peak_gb": _rss_gb(),
            "malloc": os.environ.get("MALLOC_MMAP_MAX_") is not None}


def child_agreement(args) -> dict:
    import numpy as np
    import SimpleITK as sitk

    from CTADefaceLib.models.install import install, is_installed
    from CTADefaceLib.phantom import PhantomSpec, make_phantom
    from CTADefaceLib.pipeline import DefaceSettings, compute_mask

    if not is_installed("synthetic-test"):
        install("synthetic-test", progress=False)
    upstream = DefaceSettings(model="synthetic-test", device=args.device, tile_step=0.5, roi=False)
    default = DefaceSettings(model="synthetic-test", device=args.device)
    e_up, e_fast = upstream.create_engine(), default.create_engine()
    rows = []
    for seed in args.seeds:
        ph = make_phantom(PhantomSpec.random(seed, "small"))
        a = sitk.GetArrayFromImage(compute_mask(ph.image, upstream, e_up)[0]).astype(bool)
        b = sitk.GetArrayFromImage(compute_mask(ph.image, default, e_fast)[0]).astype(bool)
        g = sitk.GetArrayFromImage(ph.face).astype(bool)
        d = lambda x, y: float(2 * np.count_nonzero(x & y) / max(1, np.count_nonzero(x) + np.count_nonzero(y)))
        rows.append({"seed": seed, "dice_a_b": d(a, b), "dice_a_gt": d(a, g), "dice_b_gt": d(b, g),
                     "tiles_a": e_up.last_tiles, "tiles_b": e_fast.last_tiles})
    return {"rows": rows}


CHILDREN = {"upstream": child_upstream, "default": child_default, "agreement": child_agreement}


# ----------------------------------------------------------------------------- parent
def run_child(kind: str, args, extra: list[str], malloc: bool) -> dict:
    from CTADefaceLib.launcher import MALLOC_SETTINGS

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_SETTINGS}
    env["PYTHONPATH"] = os.pathsep.join([LIB, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if malloc:
        env.update(MALLOC_SETTINGS)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--device", args.device, *extra]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


def make_inputs(workdir: str, seed: int) -> tuple[str, str]:
    import SimpleITK as sitk

    from CTADefaceLib.models.random_model import write_random_model
    from CTADefaceLib.phantom import PhantomSpec, make_phantom

    image_path = os.path.join(workdir, f"cta_phantom_{seed}.nii.gz")
    if not os.path.isfile(image_path):
        spec = PhantomSpec(seed=seed, shape=CTA_SHAPE, spacing=CTA_SPACING, neck=True, vertex=True, orientation="LPS")
        sitk.WriteImage(make_phantom(spec).image, image_path)
    model = os.path.join(workdir, "random_official")
    results = os.path.join(model, "Dataset990_RandomFace", "nnUNetTrainer__nnUNetPlans__3d_fullres")
    if not os.path.isfile(os.path.join(results, "fold_all", "checkpoint_final.pth")):
        results = write_random_model(model, spacing_zyx=CTA_SPACING[::-1])
    return image_path, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def add_arguments(parser) -> None:
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where both variants run (default: cpu)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--upstream-tiles", type=int, default=3, metavar="N",
                       help="time N of the upstream tiles and extrapolate from its tile count (default: 3)")
    group.add_argument("--upstream-full", action="store_true", help="run the upstream way completely (~30 min on 2 cores)")
    parser.add_argument("--compare-malloc", action="store_true",
                        help="also run the default path without the allocator settings")
    parser.add_argument("--agreement-seeds", type=int, nargs="*", default=[5000, 5001, 5002, 5003],
                        help="small phantoms for the Dice between (a) and (b) with the synthetic test model; none to skip")
    parser.add_argument("--seed", type=int, default=7, help="CTA phantom seed")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--workdir", default=None, help="where the phantom and the model are written (default: temp)")
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--tiles", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help=argparse.SUPPRESS)


def run(args) -> int:
    if args.child:
        print(json.dumps(CHILDREN[args.child](args), default=str))
        return 0
    os.environ.setdefault("CTADEFACE_HOME", tempfile.mkdtemp(prefix="ctadeface-bench-home-"))
    workdir = args.workdir or tempfile.mkdtemp(prefix="ctadeface-bench-")
    os.makedirs(workdir, exist_ok=True)
    t = time.perf_counter()
    image, model = make_inputs(workdir, args.seed)
    print(f"inputs: CTA phantom {CTA_SHAPE} at {CTA_SPACING} mm (neck and vertex), random official-shape model; "
          f"{time.perf_counter() - t:.0f} s; device {args.device}, {args.threads or os.cpu_count()} threads", flush=True)
    common = ["--image", image, "--model", model]
    tiles = 0 if args.upstream_full else args.upstream_tiles
    a = run_child("upstream", args, common + ["--tiles", str(tiles)], malloc=False)
    b = run_child("default", args, common, malloc=args.device == "cpu")
    rows = [("(a) upstream: whole volume, step 0.5", a), ("(b) default: face ROI tiles" + (", malloc" if b.get("malloc") else ""), b)]
    if args.compare_malloc and args.device == "cpu":
        rows.append(("(b') default without malloc settings", run_child("default", args, common, malloc=False)))
    print(f"{'variant':44s} {'tiles':>6s} {'load s':>7s} {'predict s':>10s} {'peak GB':>8s}")
    for name, r in rows:
        print(f"{name:44s} {r['tiles']:>6d} {r['load_s']:7.1f} {r['predict_s']:10.1f} {r['peak_gb']:8.2f}"
              + ("  (extrapolated)" if r.get("extrapolated") else ""))
    if a.get("extrapolated"):
        print(f"(a) is extrapolated: preprocessing {a['preprocess_s']:.1f} s + {a['tiles']} tiles x {a['mean_tile_s']:.2f} s "
              f"(mean of {a['tiles_run']} timed tiles: {', '.join(f'{x:.2f}' for x in a['per_tile_s'])}) "
              f"+ export {a['export_s']:.1f} s; its peak memory covers preprocessing and {a['tiles_run']} tiles only")
    if b.get("roi_box"):
        print(f"(b) ROI box (z0, z1, y0, y1, x0, x1) = {b['roi_box']}")
    agreement = ""
    if args.agreement_seeds:
        ag = run_child("agreement", args, ["--seeds", *map(str, args.agreement_seeds)], malloc=False)
        for r in ag["rows"]:
            print(f"agreement seed {r['seed']}: Dice(a, b) {r['dice_a_b']:.4f}; vs ground truth a {r['dice_a_gt']:.3f}, "
                  f"b {r['dice_b_gt']:.3f}; tiles a {r['tiles_a']}, b {r['tiles_b']}")
        mean = sum(r["dice_a_b"] for r in ag["rows"]) / len(ag["rows"])
        agreement = f", mask agreement Dice(a, b) mean {mean:.4f} (synthetic-test model, {len(ag['rows'])} small phantoms)"
    ratio = a["predict_s"] / b["predict_s"]
    print(f"SUMMARY: default {b['predict_s']:.1f} s vs upstream {a['predict_s']:.1f} s"
          f"{' (extrapolated)' if a.get('extrapolated') else ''} -> {ratio:.1f}x faster; "
          f"peak {b['peak_gb']:.2f} GB vs {a['peak_gb']:.2f} GB; tiles {b['tiles']} vs {a['tiles']}{agreement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
