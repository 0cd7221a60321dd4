"""Loading a checkpoint that is not one of the registry's verified files without running code it holds.

nnU-Net loads checkpoints with `torch.load(weights_only=False)`: plain pickle, so a checkpoint can
run any code when it is loaded. The registry's models are loaded only after their sha256 matched
the registered one; any other model (`--model PATH`, `models install NAME --from ...`) is loaded
with `weights_only=True`, PyTorch's restricted unpickler, which builds tensors and plain containers
and refuses everything else. A checkpoint nnU-Net writes holds dicts, tensors, strings, numbers,
tuples, a torch.device and, in its training log, numpy float scalars; those numpy types are the
only ones allowed beyond PyTorch's defaults.

plans.json (and the checkpoint's trainer_name, and dataset.json's reader) name code nnU-Net imports
and calls by name; for a model from outside the registry each must be a dynamic_network_architectures
network, a torch.nn layer or one of nnU-Net's own classes and functions, resolved here without walking
module attributes (which is how pydoc.locate, nnU-Net's resolver, reaches any function).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading

from ..errors import ModelError

_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
_LOCK = threading.Lock()


def _allowed_globals() -> list:
    import numpy as np

    try:
        # numpy's stubs list neither private module that holds the function pickles name
        scalar = np._core.multiarray.scalar  # type: ignore[attr-defined]  # numpy >= 2
    except AttributeError:
        scalar = np.core.multiarray.scalar  # type: ignore[attr-defined]  # numpy 1.x
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
    """What was refused, in a few true words: torch's own message is a page of advice meant for the file's author
    (and its wording differs with TORCH_FORCE_WEIGHTS_ONLY_LOAD and between versions), so only the name of the
    refused global is taken from it, where it gives one."""
    text = str(err)
    found = re.search(r"GLOBAL ([A-Za-z_][\w.]*)", text)
    if found:
        name = found.group(1).rstrip(".")
        return f"it holds Python objects besides data ({name if '.' in name else 'builtins.' + name})"
    if "weights only load failed" in text.lower() or "WeightsUnpickler" in text:
        return "it holds something besides the data a checkpoint holds"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return (
        f"it cannot be read ({first.rstrip('.')})" if 0 < len(first) <= 120 else "it cannot be read as a PyTorch file"
    )


def check_checkpoint(path: str, label: str | None = None) -> None:
    """Load the checkpoint with the restricted unpickler; one sentence if it holds anything but data."""
    import importlib.util

    import torch

    label = label or path
    try:
        with weights_only_loading():
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever a hostile or broken file raises, it is not loaded
        raise ModelError(
            f"The checkpoint {label} is not a plain nnU-Net checkpoint: {_reason(err)}; a model from "
            "outside the registry is only loaded when its checkpoints hold nothing but data, so it was "
            "not loaded."
        ) from None
    if not (isinstance(checkpoint, dict) and "network_weights" in checkpoint and "init_args" in checkpoint):
        raise ModelError(f"The checkpoint {label} is not an nnU-Net v2 checkpoint (no network_weights).")
    # nnU-Net's predictor resolves checkpoint['trainer_name'] by name (recursive_find_trainer_class_by_name) and
    # calls the class's build_network_architecture: only nnU-Net's own trainers are accepted.
    trainer = checkpoint.get("trainer_name", "nnUNetTrainer")
    if importlib.util.find_spec("nnunetv2") is not None and not _nnunet_object("trainer", trainer):
        raise ModelError(
            f"The checkpoint {label} names the trainer '{str(trainer)[:80]}', which is not one of "
            "nnU-Net's own; it was not loaded."
        )


_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")


def _class_in(name, package: str, defined_under: str):
    """The class `name` ("pkg.module.Class") names, or None unless: its module part is a real submodule of
    `package`, imported as exactly that path (importlib, no attribute walking through other modules: nnU-Net
    uses pydoc.locate, which follows module attributes, so "...unet.torch.hub.load" would reach torch.hub.load),
    the class is that module's own attribute, defined under `defined_under`, and a torch.nn.Module."""
    import importlib
    import inspect

    import torch

    if not isinstance(name, str) or not _DOTTED.match(name):
        return None
    module_path, attribute = name.rsplit(".", 1)
    if module_path != package and not module_path.startswith(package + "."):
        return None
    try:
        module = importlib.import_module(module_path)
        cls = vars(module).get(attribute) if module.__name__ == module_path else None  # no __getattr__, no walking
    except ModuleNotFoundError:
        cls = _moved_network(name, package, attribute)
    except Exception:  # noqa: BLE001 - a module that does not import: nothing by that name
        return None
    if not (inspect.isclass(cls) and cls.__module__.startswith(defined_under) and issubclass(cls, torch.nn.Module)):
        return None
    return cls


def _moved_network(name: str, package: str, attribute: str):
    """get_network_from_plans: when pydoc.locate finds nothing (a class that moved, e.g. older plans'
    "...architectures.residual_unet.ResidualEncoderUNet"), nnU-Net looks the last part up with
    recursive_find_python_class in dynamic_network_architectures.architectures; that is only followed when
    pydoc.locate really finds nothing (its walk imports only prefixes of the name, all inside the package)."""
    import pydoc
    from os.path import join

    if package != "dynamic_network_architectures":
        return None
    try:
        if pydoc.locate(name) is not None:
            return None  # nnU-Net would use whatever that walk reached, which is not a class of the module named
        import dynamic_network_architectures
        from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

        return recursive_find_python_class(
            join(dynamic_network_architectures.__path__[0], "architectures"),
            attribute,
            "dynamic_network_architectures.architectures",
        )
    except Exception:  # noqa: BLE001 - nothing found (or nnU-Net missing): nothing by that name
        return None


def _nnunet_object(kind: str, name) -> bool:
    """Whether `name` resolves, through the very nnunetv2 function that resolves it when the model loads, to one
    of nnU-Net's own objects of that kind. Those functions (recursive_find_python_class and its wrappers) import
    only nnunetv2's own modules and return any attribute of them by that name, so the type is checked here."""
    import inspect
    from os.path import join

    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    if not isinstance(name, str) or not re.match(r"[A-Za-z_][A-Za-z0-9_]*\Z", name):
        return False
    root = nnunetv2.__path__[0]
    try:
        if (
            kind == "trainer"
        ):  # checkpoint['trainer_name']: predict_from_raw_data -> recursive_find_trainer_class_by_name
            from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
            from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

            found, base = recursive_find_trainer_class_by_name(name), nnUNetTrainer
        elif kind == "preprocessor":  # ConfigurationManager.preprocessor_class -> recursive_find_python_class
            from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

            found = recursive_find_python_class(join(root, "preprocessing"), name, "nnunetv2.preprocessing")
            base = DefaultPreprocessor
        elif kind == "normalization":  # DefaultPreprocessor._normalize -> recursive_find_python_class
            from nnunetv2.preprocessing.normalization.default_normalization_schemes import ImageNormalization

            found = recursive_find_python_class(
                join(root, "preprocessing", "normalization"), name, "nnunetv2.preprocessing.normalization"
            )
            base = ImageNormalization
        elif kind == "resampling":  # ConfigurationManager.resampling_fn_* -> recursive_find_resampling_fn_by_name
            from nnunetv2.preprocessing.resampling.utils import recursive_find_resampling_fn_by_name

            found = recursive_find_resampling_fn_by_name(name)
            return inspect.isfunction(found) and found.__module__.startswith("nnunetv2.preprocessing.resampling.")
        elif kind == "reader_writer":  # PlansManager.image_reader_writer_class and dataset.json's
            # overwrite_image_reader_writer -> recursive_find_reader_writer_by_name
            from nnunetv2.imageio.base_reader_writer import BaseReaderWriter
            from nnunetv2.imageio.reader_writer_registry import recursive_find_reader_writer_by_name

            found, base = recursive_find_reader_writer_by_name(name), BaseReaderWriter
        elif kind == "label_manager":  # get_labelmanager_class_from_plans -> recursive_find_python_class
            from nnunetv2.utilities.label_handling.label_handling import LabelManager

            found = recursive_find_python_class(
                join(root, "utilities", "label_handling"), name, "nnunetv2.utilities.label_handling"
            )
            base = LabelManager
        else:
            raise ValueError(kind)
    except (ImportError, RuntimeError, AttributeError, TypeError, KeyError):
        return False  # nnU-Net does not know the name (its resolvers raise when nothing is found)
    return inspect.isclass(found) and found.__module__.startswith("nnunetv2.") and issubclass(found, base)


def _named_code(plans: dict, dataset: dict) -> list[str]:
    """Every name in plans.json (and dataset.json) that nnU-Net would resolve to code and that is not one of
    the dynamic_network_architectures networks, torch.nn layers or nnU-Net's own classes and functions."""
    import importlib.util

    bad = []
    have_nnunet = importlib.util.find_spec("nnunetv2") is not None  # without it nothing loads the model here

    def nnunet(kind, name):
        if have_nnunet and name is not None and not _nnunet_object(kind, name):
            bad.append(str(name))

    nnunet("reader_writer", plans.get("image_reader_writer"))
    nnunet("label_manager", plans.get("label_manager"))
    overwrite = dataset.get("overwrite_image_reader_writer") if isinstance(dataset, dict) else None
    if overwrite != "None":
        nnunet("reader_writer", overwrite)
    for config in plans["configurations"].values():
        if not isinstance(config, dict):
            bad.append(str(config))
            continue
        arch = config.get("architecture")
        if arch is not None:
            if not isinstance(arch, dict):
                bad.append(str(arch))
                continue
            # get_network_from_plans: pydoc.locate(network_class_name) and of each arch_kwargs[_kw_requires_import]
            network = arch.get("network_class_name")
            if _class_in(network, "dynamic_network_architectures", "dynamic_network_architectures.") is None:
                bad.append(str(network))
            kwargs = arch.get("arch_kwargs") or {}
            required = arch.get("_kw_requires_import") or ()
            if not isinstance(kwargs, dict) or not isinstance(required, (list, tuple)):
                bad.append("arch_kwargs")
                continue
            for key in required:
                value = kwargs.get(key) if isinstance(key, str) else key
                if value is not None and _class_in(value, "torch.nn", "torch.nn.modules.") is None:
                    bad.append(str(value))
        nnunet("preprocessor", config.get("preprocessor_name"))
        for scheme in config.get("normalization_schemes") or ():
            nnunet("normalization", scheme)
        for key in ("resampling_fn_data", "resampling_fn_seg", "resampling_fn_probabilities"):
            nnunet("resampling", config.get(key))
    return bad


def check_plans(results_folder: str, label: str | None = None) -> None:
    """Every name plans.json gives nnU-Net to import and call is a dynamic_network_architectures network, a
    torch.nn layer or one of nnU-Net's own classes and functions, nothing else."""
    name = f"plans.json of {label}" if label else os.path.join(results_folder, "plans.json")
    try:
        with open(os.path.join(results_folder, "plans.json"), encoding="utf-8") as handle:
            plans = json.load(handle)
        if not isinstance(plans["configurations"], dict):
            raise TypeError
        dataset = {}
        if os.path.isfile(os.path.join(results_folder, "dataset.json")):
            with open(os.path.join(results_folder, "dataset.json"), encoding="utf-8") as handle:
                dataset = json.load(handle)
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        raise ModelError(f"The {name} is not a readable nnU-Net v2 plans file.") from None
    bad = _named_code(plans, dataset)
    if bad:
        shown = ", ".join(dict.fromkeys(b[:120] for b in bad))
        raise ModelError(
            f"The {name} names code that is not an nnU-Net network, layer or function ({shown}); it was not loaded."
        )


def check_untrusted_model(results_folder: str, checkpoints: list[str], label: str | None = None) -> None:
    """label: how to name the files to the user (the staging folder of an install means nothing to them)."""
    check_plans(results_folder, label)
    for path in checkpoints:
        check_checkpoint(path, f"{os.path.relpath(path, results_folder)} of {label}" if label else None)
