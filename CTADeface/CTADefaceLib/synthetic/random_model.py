"""A randomly initialised nnU-Net v2 model folder, for timing (inference time does not depend on weights).

`write_random_model(folder, ...)` writes `<folder>/<Dataset>/nnUNetTrainer__nnUNetPlans__3d_fullres/`
with `dataset.json`, `plans.json` and `fold_all/checkpoint_final.pth` for nnU-Net's default 3d_fullres
PlainConvUNet of the given features, patch size and target spacing; `nnUNetPredictor` loads it like
any trained model. `OFFICIAL_SHAPE` is the CTA-DEFACE network as docs/facts.md describes it (6 stages
32-64-128-256-320-320, patch 128^3, about 31.2 M parameters). Its target spacing is unknown: pass the
input's spacing so that nothing is resampled (the setting of Testing/benchmarks/speed.py).

Never use such a model to deface anything: its masks are noise.
"""

from __future__ import annotations

import json
import os

DATASET = "Dataset990_RandomFace"
RESULTS = "nnUNetTrainer__nnUNetPlans__3d_fullres"
OFFICIAL_SHAPE = {"features": (32, 64, 128, 256, 320, 320), "patch": (128, 128, 128)}
# Plausible CT intensity statistics of facial soft tissue (HU); CTNormalization clips and scales with them.
CT_INTENSITIES = {
    "max": 1500.0,
    "mean": 20.0,
    "median": 30.0,
    "min": -1024.0,
    "percentile_00_5": -800.0,
    "percentile_99_5": 900.0,
    "std": 180.0,
}


def architecture(features, n_dims: int = 3) -> dict:
    n = len(features)
    conv = "torch.nn.modules.conv.Conv3d" if n_dims == 3 else "torch.nn.modules.conv.Conv2d"
    norm = (
        "torch.nn.modules.instancenorm.InstanceNorm3d"
        if n_dims == 3
        else "torch.nn.modules.instancenorm.InstanceNorm2d"
    )
    return {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": [int(f) for f in features],
            "conv_op": conv,
            "kernel_sizes": [[3] * n_dims] * n,
            "strides": [[1] * n_dims] + [[2] * n_dims] * (n - 1),
            "n_conv_per_stage": [2] * n,
            "n_conv_per_stage_decoder": [2] * (n - 1),
            "conv_bias": True,
            "norm_op": norm,
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def make_plans(features, patch, spacing_zyx, intensities: dict | None = None) -> dict:
    resample = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    config = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": [int(p) for p in patch],
        "median_image_size_in_voxels": [float(p) for p in patch],
        "spacing": [float(s) for s in spacing_zyx],
        "normalization_schemes": ["CTNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": resample,
        "resampling_fn_seg_kwargs": dict(resample, is_seg=True, order=1),
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": dict(resample, order=1),
        "architecture": architecture(features),
        "batch_dice": False,
    }
    return {
        "dataset_name": DATASET,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [float(s) for s in spacing_zyx],
        "original_median_shape_after_transp": [int(p) for p in patch],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": config},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": dict(intensities or CT_INTENSITIES)},
    }


def write_random_model(
    folder: str,
    features=OFFICIAL_SHAPE["features"],
    patch=OFFICIAL_SHAPE["patch"],
    spacing_zyx=(0.6, 0.45, 0.45),
    seed: int = 0,
    intensities: dict | None = None,
) -> str:
    """Write the model folder; returns the results folder (the one to give nnUNetPredictor or --model)."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    plans = make_plans(features, patch, spacing_zyx, intensities)
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "face": 1},
        "numTraining": 0,
        "file_ending": ".nii.gz",
        "name": DATASET,
        "description": "Randomly initialised network for timing only. Its masks are noise.",
    }
    kwargs = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    torch.manual_seed(seed)
    network = PlainConvUNet(
        input_channels=1,
        n_stages=kwargs["n_stages"],
        features_per_stage=kwargs["features_per_stage"],
        conv_op=torch.nn.Conv3d,
        kernel_sizes=kwargs["kernel_sizes"],
        strides=kwargs["strides"],
        n_conv_per_stage=kwargs["n_conv_per_stage"],
        num_classes=2,
        n_conv_per_stage_decoder=kwargs["n_conv_per_stage_decoder"],
        conv_bias=True,
        norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs=kwargs["norm_op_kwargs"],
        nonlin=torch.nn.LeakyReLU,
        nonlin_kwargs={"inplace": True},
        deep_supervision=False,
    )
    results = os.path.join(folder, DATASET, RESULTS)
    os.makedirs(os.path.join(results, "fold_all"), exist_ok=True)
    for name, data in (("plans.json", plans), ("dataset.json", dataset)):
        with open(os.path.join(results, name), "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
    checkpoint = {
        "network_weights": network.state_dict(),
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": "all", "dataset_json": dataset},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": 0,
    }
    torch.save(checkpoint, os.path.join(results, "fold_all", "checkpoint_final.pth"))
    return results


def parameter_count(results_folder: str) -> int:
    import torch

    weights = torch.load(
        os.path.join(results_folder, "fold_all", "checkpoint_final.pth"), map_location="cpu", weights_only=False
    )["network_weights"]
    # nnU-Net's state dict names some tensors twice (e.g. `conv.weight` and `all_modules.0.weight`): count each once
    unique = {v.data_ptr(): v.numel() for v in weights.values()}
    return int(sum(unique.values()))
