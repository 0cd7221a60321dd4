"""Face model speed: the upstream way against this project's default path, same machine, same run.

    python Testing/benchmarks/speed.py [--device cpu|cuda] [--upstream-tiles N | --upstream-full]
                                       [--compare] [--agreement-seeds 1 2 3] [--workdir DIR]

1. Builds a CTA-sized phantom (512x512x300 voxels, 0.45x0.45x0.6 mm, with neck and vertex) and a
   randomly initialised nnU-Net with the official CTA-DEFACE network's shape (6 stages 32..320,
   patch 128^3, ~31 M parameters; target spacing = the input's, so nothing is resampled). Time does
   not depend on weight values.
2. Times, each variant in its own child process (peak memory = that child's ru_maxrss):
   (a) upstream: plain nnUNetPredictor on the whole volume, tile step 0.5, no mirroring, default malloc;
   (b) default: this project's engine as `ctadeface deface` runs it (face ROI tiles that grow round by
       round where the face goes on, allocator settings). A random model finds no face, so the growth
       rounds are steered by the phantom's true face (the tiles a model that finds the face exactly
       costs), and the ROI safety net is off (a random model's noise would always trigger it);
   with --compare also (b') without the allocator settings and (c) the other growth choice: on a CPU
   the whole candidate face region at once (the most the ROI path costs), on a GPU growing.
   With --upstream-tiles N (the default, N=3) (a) preprocesses the whole volume, counts its tiles,
   runs N of them and extrapolates: network time = tile count x mean time per tile, plus the measured
   preprocessing and export. --upstream-full runs all of them (about 30 min on 2 CPU cores).
3. Agreement: the masks of (a) and (b) cannot be compared with a random model, so they are compared
   on small phantoms (Dice) with two small models trained on phantoms: the bundled "synthetic-test"
   (its 256 mm patch holds a whole phantom: one tile) and the tiling test model (Testing/tiles_model.py,
   a 128 mm patch: several tiles and growth rounds per head, as the official model on a CTA).
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
TESTING = os.path.join(REPO, "Testing")  # tiles_model: the tiling test model
for path in (LIB, TESTING):
    if path not in sys.path:
        sys.path.insert(0, path)

CTA_SHAPE, CTA_SPACING = (512, 512, 300), (0.45, 0.45, 0.6)
# --smoke: the same steps on a small phantom and a tiny random network, for the test that the benchmark runs
SMOKE_SHAPE, SMOKE_SPACING = (128, 128, 112), (2.0, 2.0, 2.0)


# ----------------------------------------------------------------------------- children
def _rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB


def child_upstream(args) -> dict:
    import numpy as np
    import SimpleITK as sitk
    import torch
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    t0 = time.perf_counter()
    image = sitk.ReadImage(args.image)
    data = sitk.GetArrayFromImage(image).astype(np.float32)[None]
    props = {"spacing": list(image.GetSpacing())[::-1]}
    if args.device == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=False,
        perform_everything_on_device=args.device != "cpu",
        device=torch.device(args.device),
        verbose=False,
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(args.model, use_folds=("all",))
    t_load = time.perf_counter() - t0
    if args.tiles <= 0:  # the whole upstream run
        t = time.perf_counter()
        with torch.inference_mode():
            predictor.predict_single_npy_array(data, props)
        total = time.perf_counter() - t
        n = len(predictor._internal_get_sliding_window_slicers(_preprocessed(predictor, data, props)["data"].shape[1:]))
        return {"load_s": t_load, "predict_s": total, "tiles": n, "extrapolated": False, "peak_gb": _rss_gb()}
    t = time.perf_counter()
    dct = _preprocessed(predictor, data, props)
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
            logits,
            predictor.plans_manager,
            predictor.configuration_manager,
            predictor.label_manager,
            dct["data_properties"],
        )
        t_export = time.perf_counter() - t
    mean = sum(per_tile) / len(per_tile)
    return {
        "load_s": t_load,
        "preprocess_s": t_pre,
        "per_tile_s": per_tile,
        "mean_tile_s": mean,
        "export_s": t_export,
        "tiles": len(slicers),
        "tiles_run": len(picks),
        "extrapolated": True,
        "predict_s": t_pre + len(slicers) * mean + t_export,
        "peak_gb": _rss_gb(),
    }


def _preprocessed(predictor, data, props):
    """nnU-Net's preprocessing of one image, as its predictor does it: {"data": tensor, "data_properties": ...}."""
    from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy

    return next(
        PreprocessAdapterFromNpy(
            [data],
            [None],
            [props],
            [None],
            predictor.plans_manager,
            predictor.dataset_json,
            predictor.configuration_manager,
            num_threads_in_multithreaded=1,
        )
    )


def benchmark_engine(args):
    """The engine as `ctadeface deface` runs it, with two benchmark-only changes for the random model.

    Its mask is noise that touches every edge, so the ROI safety net (which reruns the whole volume when a real
    face reaches the region's edge) is off: this times the ROI path itself. With --truth, the growth rounds
    see the phantom's true face, cut to the tiles run so far, instead of the noise, which would grow into every
    candidate tile; the network still runs, and is timed, on every tile the rounds choose: this counts the
    tiles a model that finds the face exactly would cost."""
    import SimpleITK as sitk

    from CTADefaceLib.engines.nnunet import region
    from CTADefaceLib.engines.nnunet.engine import NnUNetEngine
    from CTADefaceLib.io.volume import to_canonical

    truth = sitk.GetArrayFromImage(to_canonical(sitk.ReadImage(args.truth))).astype(bool) if args.truth else None

    class BenchmarkEngine(NnUNetEngine):
        def next_tiles(self, plan, face):
            if truth is None:
                return super().next_tiles(plan, face)
            return super().next_tiles(plan, truth & region.covered_mask(plan, truth.shape))

        def wider_plan(self, plan, face, spacing):
            return None

    return BenchmarkEngine(
        model=args.model, device=args.device, roi=True, grow={"auto": None, "on": True, "off": False}[args.grow]
    )


def child_default(args) -> dict:
    import SimpleITK as sitk
    import torch  # noqa: F401  imported before the clock starts, as in the upstream child
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor  # noqa: F401

    from CTADefaceLib.pipeline import DefaceSettings, compute_mask

    t0 = time.perf_counter()
    image = sitk.ReadImage(args.image)
    settings = DefaceSettings(model=args.model, device=args.device, roi=True)
    engine = benchmark_engine(args)
    if args.threads:
        engine.threads = args.threads
    engine._load()
    t_load = time.perf_counter() - t0
    timings: dict = {}
    t = time.perf_counter()
    compute_mask(image, settings, engine, timings)
    total = time.perf_counter() - t
    plan = engine.last_plan
    return {
        "load_s": t_load,
        "predict_s": total,
        "tiles": engine.last_tiles,
        "extrapolated": False,
        "roi_box": plan.box if plan else None,
        "reach_tiles": plan.reach_tiles if plan else None,
        "rounds": plan.rounds if plan else None,
        "peak_gb": _rss_gb(),
        "malloc": os.environ.get("MALLOC_MMAP_MAX_") is not None,
        "timings": timings,
    }


def child_agreement(args) -> dict:
    import numpy as np
    import SimpleITK as sitk

    from CTADefaceLib.engines import engine_for
    from CTADefaceLib.models.install import install, is_installed
    from CTADefaceLib.pipeline import DefaceSettings, compute_mask
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom
    from tiles_model import pad_before

    if args.model == "synthetic-test" and not is_installed("synthetic-test"):
        install("synthetic-test", progress=False)
    upstream = DefaceSettings(model=args.model, device=args.device, tile_step=0.5, roi=False)
    default = DefaceSettings(model=args.model, device=args.device)
    e_up, e_fast = engine_for(upstream), engine_for(default)
    rows = []
    for seed in args.seeds:
        ph = make_phantom(PhantomSpec.random(seed, "small"))
        a = sitk.GetArrayFromImage(compute_mask(ph.image, upstream, e_up)[0]).astype(bool)
        tiles_a = e_up.last_tiles
        b = sitk.GetArrayFromImage(compute_mask(ph.image, default, e_fast)[0]).astype(bool)
        g = sitk.GetArrayFromImage(ph.face).astype(bool)

        def d(x, y):
            return float(2 * np.count_nonzero(x & y) / max(1, np.count_nonzero(x) + np.count_nonzero(y)))

        plan = e_fast.last_plan
        # the reference: upstream against itself with its tile grid moved by 16 voxels (air added before the image)
        shift = 16
        moved = pad_before(ph.image, shift)
        a_moved = sitk.GetArrayFromImage(compute_mask(moved, upstream, e_up)[0]).astype(bool)[shift:, shift:, shift:]
        rows.append(
            {
                "seed": seed,
                "pose": ph.spec.pose_deg,
                "neck": ph.spec.neck,
                "dice_a_b": d(a, b),
                "dice_a_moved": d(a, a_moved),
                "dice_a_gt": d(a, g),
                "dice_b_gt": d(b, g),
                "tiles_a": tiles_a,
                "tiles_b": e_fast.last_tiles,
                "rounds": None if plan is None or plan.whole_volume else plan.rounds,
                "whole_volume": bool(plan is not None and plan.whole_volume),
            }
        )
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


def make_inputs(workdir: str, seed: int, smoke: bool = False) -> tuple[str, str, str]:
    import SimpleITK as sitk

    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom
    from CTADefaceLib.synthetic.random_model import write_random_model

    shape, spacing = (SMOKE_SHAPE, SMOKE_SPACING) if smoke else (CTA_SHAPE, CTA_SPACING)
    name = f"{'smoke' if smoke else 'cta'}_phantom_{seed}"
    image_path = os.path.join(workdir, f"{name}.nii.gz")
    face_path = os.path.join(workdir, f"{name}_face.nii.gz")
    if not (os.path.isfile(image_path) and os.path.isfile(face_path)):
        spec = PhantomSpec(seed=seed, shape=shape, spacing=spacing, neck=True, vertex=True, orientation="LPS")
        phantom = make_phantom(spec)
        sitk.WriteImage(phantom.face, face_path)
        sitk.WriteImage(phantom.image, image_path)
    model = os.path.join(workdir, "random_smoke" if smoke else "random_official")
    results = os.path.join(model, "Dataset990_RandomFace", "nnUNetTrainer__nnUNetPlans__3d_fullres")
    if not os.path.isfile(os.path.join(results, "fold_all", "checkpoint_final.pth")):
        shape_kwargs = {"features": (4, 8, 16, 32), "patch": (32, 32, 32)} if smoke else {}
        results = write_random_model(model, spacing_zyx=spacing[::-1], **shape_kwargs)
    return image_path, face_path, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--device", default="cpu", choices=("cpu", "cuda"), help="where both variants run (default: cpu)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--upstream-tiles",
        type=int,
        default=3,
        metavar="N",
        help="time N of the upstream tiles and extrapolate from its tile count (default: 3)",
    )
    group.add_argument(
        "--upstream-full", action="store_true", help="run the upstream way completely (~30 min on 2 cores)"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run (b') without the allocator settings and (c) the other growth choice",
    )
    parser.add_argument(
        "--agreement-seeds",
        type=int,
        nargs="*",
        default=[5000, 5001, 5002, 5003, 5004, 5005],
        help="small phantoms for the Dice between (a) and (b) with the two trained test models; none to skip",
    )
    parser.add_argument("--seed", type=int, default=7, help="CTA phantom seed")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--workdir", default=None, help="where the phantom and the model are written (default: temp)")
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--tiles", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--truth", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--grow", choices=("auto", "on", "off"), default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)


def run(args) -> int:
    if args.child:
        print(json.dumps(CHILDREN[args.child](args), default=str))
        return 0
    os.environ.setdefault("CTADEFACE_HOME", tempfile.mkdtemp(prefix="ctadeface-bench-home-"))
    workdir = args.workdir or tempfile.mkdtemp(prefix="ctadeface-bench-")
    os.makedirs(workdir, exist_ok=True)
    t = time.perf_counter()
    image, face, model = make_inputs(workdir, args.seed, args.smoke)
    shape, spacing = (SMOKE_SHAPE, SMOKE_SPACING) if args.smoke else (CTA_SHAPE, CTA_SPACING)
    print(
        f"inputs: {'SMOKE TEST ' if args.smoke else ''}CTA phantom {shape} at {spacing} mm (neck and vertex, "
        f"seed {args.seed}), random {'tiny' if args.smoke else 'official-shape'} model; "
        f"{time.perf_counter() - t:.0f} s; device {args.device}, "
        f"{args.threads or os.cpu_count()} threads",
        flush=True,
    )
    common = ["--image", image, "--model", model]
    tiles = 0 if args.upstream_full else args.upstream_tiles
    a = run_child("upstream", args, common + ["--tiles", str(tiles)], malloc=False)
    b = run_child("default", args, common + ["--truth", face], malloc=args.device == "cpu")
    grows = args.device == "cpu"  # the engine's default: grow on a CPU, the whole region at once on a GPU
    rows = [
        ("(a) upstream: whole volume, step 0.5", a),
        (
            "(b) default: face ROI"
            + (", growing" if grows else ", all at once")
            + (", malloc" if b.get("malloc") else ""),
            b,
        ),
    ]
    if args.compare:
        if args.device == "cpu":
            rows.append(
                (
                    "(b') default without malloc settings",
                    run_child("default", args, common + ["--truth", face], malloc=False),
                )
            )
        other = "off" if grows else "on"
        rows.append(
            (
                "(c) face ROI " + ("all at once (no growth)" if grows else "growing"),
                run_child("default", args, common + ["--truth", face, "--grow", other], malloc=args.device == "cpu"),
            )
        )
    print(f"{'variant':44s} {'tiles':>6s} {'load s':>7s} {'predict s':>10s} {'peak GB':>8s}")
    for name, r in rows:
        print(
            f"{name:44s} {r['tiles']:>6d} {r['load_s']:7.1f} {r['predict_s']:10.1f} {r['peak_gb']:8.2f}"
            + ("  (extrapolated)" if r.get("extrapolated") else "")
        )
    if a.get("extrapolated"):
        print(
            f"(a) is extrapolated: preprocessing {a['preprocess_s']:.1f} s + "
            f"{a['tiles']} tiles x {a['mean_tile_s']:.2f} s "
            f"(mean of {a['tiles_run']} timed tiles: {', '.join(f'{x:.2f}' for x in a['per_tile_s'])}) "
            f"+ export {a['export_s']:.1f} s; its peak memory covers preprocessing and {a['tiles_run']} tiles only"
        )
    if b.get("roi_box"):
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in b["timings"].items())
        if b["rounds"] > 1 or grows:
            print(
                f"(b) face region box (z0, z1, y0, y1, x0, x1) = {b['roi_box']}; {b['tiles']} of its "
                f"{b['reach_tiles']} tiles ran, in {b['rounds']} rounds, growth steered by the phantom's true face "
                f"(a random model finds no face); stages: {stages}"
            )
            per_tile = b["predict_s"] / max(1, b["tiles"])
            print(
                f"(b) if the face had reached every edge: {b['reach_tiles']} tiles x {per_tile:.2f} s = "
                f"{b['reach_tiles'] * per_tile:.0f} s (estimate; the safety net's whole-volume rerun is (a))"
            )
        else:
            print(
                f"(b) face region box (z0, z1, y0, y1, x0, x1) = {b['roi_box']}; all its {b['tiles']} tiles in one "
                f"round; stages: {stages}"
            )
    agreement = ""
    if args.agreement_seeds:
        from tiles_model import extract_tiles_model

        models = (
            ("bundled synthetic-test model, 256 mm patch", "synthetic-test"),
            ("tiling test model, 128 mm patch", extract_tiles_model(os.path.join(workdir, "tiles-model"))),
        )
        means = []
        for title, model in models:
            ag = run_child(
                "agreement", args, ["--model", model, "--seeds", *map(str, args.agreement_seeds)], malloc=False
            )
            for r in ag["rows"]:
                how = (
                    "whole volume (safety net)" if r["whole_volume"] else f"{r['tiles_b']} tiles, {r['rounds']} rounds"
                )
                print(
                    f"agreement, {title}, seed {r['seed']} (pose {tuple(round(v) for v in r['pose'])}, "
                    f"{'neck' if r['neck'] else 'no neck'}): Dice(a, b) {r['dice_a_b']:.4f}; (a) vs (a) with its "
                    f"grid moved 16 voxels {r['dice_a_moved']:.4f}; vs ground truth "
                    f"a {r['dice_a_gt']:.3f}, b {r['dice_b_gt']:.3f}; (a) {r['tiles_a']} tiles, (b) {how}"
                )
            n = len(ag["rows"])
            means.append(
                (title, sum(r["dice_a_b"] for r in ag["rows"]) / n, sum(r["dice_a_moved"] for r in ag["rows"]) / n, n)
            )
        agreement = "; mask agreement Dice(a, b) mean " + ", ".join(
            f"{m:.4f} ({t}, {n} phantoms; (a) with its grid moved: {r:.4f})" for t, m, r, n in means
        )
    ratio = a["predict_s"] / b["predict_s"]
    print(
        f"SUMMARY: default {b['predict_s']:.1f} s vs upstream {a['predict_s']:.1f} s"
        f"{' (extrapolated)' if a.get('extrapolated') else ''} -> {ratio:.1f}x faster; "
        f"peak {b['peak_gb']:.2f} GB vs {a['peak_gb']:.2f} GB; tiles {b['tiles']} vs {a['tiles']}{agreement}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
