"""Rebuild the synthetic test model from scratch: phantoms -> nnU-Net planning -> training -> export.

The model it makes is for tests and the demo only: it has seen synthetic phantoms, never a
patient, and must never be used clinically. It has the official CTA-DEFACE model's folder layout
(`Dataset900_SyntheticFace/nnUNetTrainer__nnUNetPlans__3d_fullres/{dataset.json, plans.json,
fold_all/checkpoint_final.pth}`) so it exercises the same loading code.

Steps (all nnU-Net v2's own code):
  1. `--cases` phantoms (`PhantomSpec.random(seed, size)`, seeds 1000..) in the canonical orientation
     the engine feeds to models, written as an nnU-Net raw dataset;
  2. fingerprint + `ExperimentPlanner` plans, then the network made small (features divided by
     `--width-divisor`) so the checkpoint stays far below 15 MB and runs fast on a CPU;
  3. `nnUNetTrainer` (3d_fullres, fold all) for as many epochs as fit in `--minutes`, with the
     polynomial learning-rate schedule set to that many epochs;
  4. export: the checkpoint without optimizer state, trainer name `nnUNetTrainer`, zipped into
     CTADefaceLib/data/ with a manifest of sizes and sha256 checksums.

How the committed model was made (see also the manifest's "notes"):
  python Testing/train_synthetic_model.py --workdir /tmp/syn --cases 48 --minutes 7 --device cuda
and the tiling test model (Testing/data/synthetic-tiles-model.zip, a 64^3 patch of 128 mm, so a head
needs several tiles as a CTA does with the official model's patch):
  python Testing/train_synthetic_model.py --workdir /tmp/syn64 --cases 48 --minutes 5 --device cuda \
      --dataset-id 901 --patch 64 --width-divisor 8 --out Testing/data/synthetic-tiles-model
  on one NVIDIA H100 (16 CPU cores for data augmentation), nnunetv2 2.8.1, torch 2.11 (cu130).
On a 2-core CPU the same command works but trains far fewer epochs in the same time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "CTADeface"))

DATASET_ID = 900
DATASET = "Dataset900_SyntheticFace"
CONFIG = "3d_fullres"
RESULTS = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def make_case(args):
    seed, size, images, labels = args
    import SimpleITK as sitk

    from CTADefaceLib.io.volume import to_canonical
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    phantom = make_phantom(PhantomSpec.random(seed, size=size))
    name = f"SYN_{seed:04d}"
    sitk.WriteImage(to_canonical(phantom.image), os.path.join(images, f"{name}_0000.nii.gz"))
    sitk.WriteImage(to_canonical(phantom.face), os.path.join(labels, f"{name}.nii.gz"))
    return name


def write_raw_dataset(raw: str, cases: int, size: str, workers: int) -> None:
    from multiprocessing import Pool

    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    folder = os.path.join(raw, DATASET)
    images, labels = os.path.join(folder, "imagesTr"), os.path.join(folder, "labelsTr")
    os.makedirs(images, exist_ok=True)
    os.makedirs(labels, exist_ok=True)
    jobs = [(1000 + i, size, images, labels) for i in range(cases)]
    with Pool(workers) as pool:
        names = pool.map(make_case, jobs)
    generate_dataset_json(
        folder,
        channel_names={0: "CT"},
        labels={"background": 0, "face": 1},
        num_training_cases=len(names),
        file_ending=".nii.gz",
        dataset_name=DATASET,
        description="Synthetic head CTA phantoms (CTADeface). NOT FOR CLINICAL USE.",
    )


def plan_and_preprocess(preprocessed: str, width_divisor: int, workers: int, patch: int | None = None) -> None:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    extract_fingerprints([DATASET_ID], num_processes=workers, check_dataset_integrity=True)
    plan_experiments([DATASET_ID])
    plans_file = os.path.join(preprocessed, DATASET, "nnUNetPlans.json")
    with open(plans_file) as handle:
        plans = json.load(handle)
    # A small network: same topology as nnU-Net's default, fewer features per stage.
    for name, config in plans["configurations"].items():
        if "architecture" in config:
            kwargs = config["architecture"]["arch_kwargs"]
            kwargs["features_per_stage"] = [max(4, f // width_divisor) for f in kwargs["features_per_stage"]]
            if patch and name == CONFIG:
                # A patch smaller than the head, so that a head needs several tiles, as the official model's
                # 128^3 patch does on a CTA (for tests of tiling); the network is fully convolutional and its
                # pooling (2^5) divides any multiple of 32.
                config["patch_size"] = [patch] * 3
    with open(plans_file, "w") as handle:
        json.dump(plans, handle, indent=2)
    preprocess([DATASET_ID], configurations=(CONFIG,), num_processes=(workers,))


def train(preprocessed: str, results: str, minutes: float, device: str, iterations: int) -> str:
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    with open(os.path.join(preprocessed, DATASET, "nnUNetPlans.json")) as handle:
        plans = json.load(handle)
    with open(os.path.join(preprocessed, DATASET, "dataset.json")) as handle:
        dataset_json = json.load(handle)
    plans["continue_training"] = False  # what nnU-Net's own run_training passes
    trainer = nnUNetTrainer(plans, CONFIG, "all", dataset_json, device=torch.device(device))
    trainer.num_iterations_per_epoch = iterations
    trainer.num_val_iterations_per_epoch = max(1, iterations // 10)
    trainer.num_epochs = 1000  # replaced below once the time per epoch is known
    deadline = time.time() + minutes * 60
    trainer.on_train_start()
    epoch, started = 0, time.time()
    while True:
        trainer.on_epoch_start()
        trainer.on_train_epoch_start()
        outputs = [trainer.train_step(next(trainer.dataloader_train)) for _ in range(trainer.num_iterations_per_epoch)]
        trainer.on_train_epoch_end(outputs)
        with torch.no_grad():
            trainer.on_validation_epoch_start()
            val = [
                trainer.validation_step(next(trainer.dataloader_val))
                for _ in range(trainer.num_val_iterations_per_epoch)
            ]
            trainer.on_validation_epoch_end(val)
        trainer.on_epoch_end()
        epoch += 1
        if epoch == 2:
            per_epoch = (time.time() - started) / 2
            planned = max(3, int((deadline - started) / per_epoch))
            trainer.num_epochs = planned
            trainer.lr_scheduler.max_steps = planned  # the poly schedule reaches 0 at the last epoch
            print(f"{per_epoch:.1f} s per epoch: training {planned} epochs", flush=True)
        if epoch >= trainer.num_epochs and epoch >= 2:
            break
    trainer.on_train_end()
    return trainer.output_folder


def export(output_folder: str, preprocessed: str, destination: str, notes: str) -> None:
    import torch

    checkpoint = torch.load(os.path.join(output_folder, "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    slim = {
        "network_weights": checkpoint["network_weights"],
        "init_args": checkpoint["init_args"],
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": checkpoint.get("inference_allowed_mirroring_axes"),
        "current_epoch": checkpoint.get("current_epoch"),
    }
    staging = os.path.join(os.path.dirname(destination), ".model-staging")
    shutil.rmtree(staging, ignore_errors=True)
    results = os.path.join(staging, DATASET, RESULTS)
    os.makedirs(os.path.join(results, "fold_all"))
    torch.save(slim, os.path.join(results, "fold_all", "checkpoint_final.pth"))
    shutil.copy(os.path.join(output_folder, "..", "plans.json"), os.path.join(results, "plans.json"))
    shutil.copy(os.path.join(output_folder, "..", "dataset.json"), os.path.join(results, "dataset.json"))
    fingerprint = os.path.join(preprocessed, DATASET, "dataset_fingerprint.json")
    shutil.copy(fingerprint, os.path.join(results, "dataset_fingerprint.json"))
    files = []
    with zipfile.ZipFile(destination + ".zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in ("dataset.json", "plans.json", "dataset_fingerprint.json", "fold_all/checkpoint_final.pth"):
            path = os.path.join(results, rel)
            arc = f"{DATASET}/{RESULTS}/{rel}"
            archive.write(path, arc)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            files.append({"path": arc, "size": os.path.getsize(path), "sha256": digest})
    with open(destination + ".json", "w") as handle:
        json.dump({"dataset": DATASET, "files": files, "notes": notes}, handle, indent=2)
    shutil.rmtree(staging)


def main() -> None:
    global DATASET_ID, DATASET
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="scratch folder for nnU-Net raw/preprocessed/results")
    parser.add_argument("--cases", type=int, default=48)
    parser.add_argument("--size", default="small", help="phantom size preset (see PhantomSpec.random)")
    parser.add_argument("--minutes", type=float, default=7.0, help="training time budget")
    parser.add_argument("--width-divisor", type=int, default=4, help="divide nnU-Net's features per stage by this")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iterations", type=int, default=100, help="training iterations per epoch")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument(
        "--dataset-id", type=int, default=DATASET_ID, help="nnU-Net dataset number (name Dataset<id>_SyntheticFace)"
    )
    parser.add_argument(
        "--patch", type=int, default=None, help="patch edge in voxels instead of nnU-Net's plan (a multiple of 32)"
    )
    parser.add_argument(
        "--out",
        default=os.path.join(REPO, "CTADeface", "CTADefaceLib", "data", "synthetic-face-model"),
        help="zip + manifest destination, without extension",
    )
    args = parser.parse_args()
    DATASET_ID, DATASET = args.dataset_id, f"Dataset{args.dataset_id:03d}_SyntheticFace"
    for key, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"), ("nnUNet_results", "results")):
        os.environ[key] = os.path.join(os.path.abspath(args.workdir), sub)
        os.makedirs(os.environ[key], exist_ok=True)
    os.environ.setdefault("nnUNet_compile", "f")  # compile time would eat the short training budget
    os.environ.setdefault("nnUNet_n_proc_DA", str(args.workers))
    t0 = time.time()
    write_raw_dataset(os.environ["nnUNet_raw"], args.cases, args.size, args.workers)
    t1 = time.time()
    plan_and_preprocess(os.environ["nnUNet_preprocessed"], args.width_divisor, args.workers, args.patch)
    t2 = time.time()
    output_folder = train(
        os.environ["nnUNet_preprocessed"], os.environ["nnUNet_results"], args.minutes, args.device, args.iterations
    )
    t3 = time.time()
    import torch

    hardware = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    notes = (
        f"Trained on {args.cases} synthetic phantoms (size '{args.size}', seeds 1000-{999 + args.cases}) "
        f"on {hardware}: "
        f"data {t1 - t0:.0f} s, planning {t2 - t1:.0f} s, training {t3 - t2:.0f} s; features / {args.width_divisor}"
        f"{f'; patch {args.patch}^3' if args.patch else ''}. "
        "Synthetic data only: NOT FOR CLINICAL USE."
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    export(output_folder, os.environ["nnUNet_preprocessed"], args.out, notes)
    print(notes)


if __name__ == "__main__":
    main()
