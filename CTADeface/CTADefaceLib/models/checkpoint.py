"""Loading a checkpoint that is not one of the registry's verified files without running code it holds.

nnU-Net loads checkpoints with `torch.load(weights_only=False)`: plain pickle, so a checkpoint can
run any code when it is loaded. The registry's models are loaded only after their sha256 matched
the registered one; any other model (`--model PATH`, `models install NAME --from ...`) is loaded
with `weights_only=True`, PyTorch's restricted unpickler, which builds tensors and plain containers
and refuses everything else. A checkpoint nnU-Net writes holds dicts, tensors, strings, numbers,
tuples, a torch.device and, in its training log, numpy float scalars; those numpy types are the
only ones allowed beyond PyTorch's defaults.

plans.json names the network class and the layer types nnU-Net imports and calls by name; for a
model from outside the registry they must be dynamic_network_architectures networks and torch.nn
layers, not any importable function.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading

from ..errors import ModelError

_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
_LOCK = threading.Lock()


def _allowed_globals() -> list:
    import numpy as np

    try:
        scalar = np._core.multiarray.scalar  # numpy >= 2
    except AttributeError:
        scalar = np.core.multiarray.scalar
    allowed = [scalar, np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles a scalar's dtype through its class
    if dtypes is not None:
        allowed += [dtypes.Float64DType, dtypes.Float32DType, dtypes.Int64DType]
    return allowed


@contextlib.contextmanager
def weights_only_loading():
    """Every torch.load inside (nnU-Net's own included) uses the restricted unpickler."""
    import torch

    with _LOCK, torch.serialization.safe_globals(_allowed_globals()):
        before = os.environ.get(_ENV)
        os.environ[_ENV] = "1"  # read by torch.load on each call: it overrides weights_only=False
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(_ENV, None)
            else:
                os.environ[_ENV] = before


def _reason(err: Exception) -> str:
    """The line of torch's long weights_only message that names what was refused."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(". ")[0].strip().rstrip(".")[:160]
    return (lines[0][:160] if lines else type(err).__name__).rstrip(".")


def check_checkpoint(path: str, label: str | None = None) -> None:
    """Load the checkpoint with the restricted unpickler; one sentence if it holds anything but data."""
    import torch

    label = label or path
    try:
        with weights_only_loading():
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever a hostile or broken file raises, it is not loaded
        raise ModelError(f"The checkpoint {label} is not a plain nnU-Net checkpoint ({_reason(err)}): loading it "
                         "could run code it holds, and a model from outside the registry is only loaded when its "
                         "checkpoints hold nothing but data, so it was not loaded.") from None
    if not (isinstance(checkpoint, dict) and "network_weights" in checkpoint and "init_args" in checkpoint):
        raise ModelError(f"The checkpoint {label} is not an nnU-Net v2 checkpoint (no network_weights).")


def check_plans(results_folder: str, label: str | None = None) -> None:
    """The network class and the layers plans.json names are ones nnU-Net models use, nothing else."""
    name = f"plans.json of {label}" if label else os.path.join(results_folder, "plans.json")
    try:
        with open(os.path.join(results_folder, "plans.json"), encoding="utf-8") as handle:
            plans = json.load(handle)
        configurations = plans["configurations"].values()
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        raise ModelError(f"The {name} is not a readable nnU-Net v2 plans file.") from None
    for config in configurations:
        arch = config.get("architecture") if isinstance(config, dict) else None
        if not isinstance(arch, dict):
            continue  # old-style or inherited configuration: nnU-Net resolves it from another one
        network = str(arch.get("network_class_name", ""))
        kwargs = arch.get("arch_kwargs") or {}
        named = [kwargs.get(k) for k in arch.get("_kw_requires_import") or ()]
        bad = [n for n in named if n is not None and not str(n).startswith("torch.nn.")]
        if not network.startswith("dynamic_network_architectures.") or bad:
            raise ModelError(f"The {name} names code that is not an nnU-Net network or layer "
                             f"({', '.join([network] + [str(b) for b in bad])}); it was not loaded.")


def check_untrusted_model(results_folder: str, checkpoints: list[str], label: str | None = None) -> None:
    """label: how to name the files to the user (the staging folder of an install means nothing to them)."""
    check_plans(results_folder, label)
    for path in checkpoints:
        check_checkpoint(path, f"{os.path.relpath(path, results_folder)} of {label}" if label else None)
