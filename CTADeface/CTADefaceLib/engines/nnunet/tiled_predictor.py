"""nnU-Net's own predictor, told which tiles to run.

`TiledPredictor` is `nnUNetPredictor` with one change: it runs the network only on the tiles it is given
(start indices and tile size in the array given, axes z, y, x), through nnU-Net's own preprocessing,
Gaussian-weighted aggregation and export.
Voxels that no tile covers are background.

    prepared = predictor.prepare(data, properties)       # nnU-Net preprocessing, once
    labels = predictor.predict_prepared(prepared, starts, tile)
    labels = predictor.predict_prepared(prepared, starts + more, tile)   # runs only the new tiles

A prepared case remembers each tile's network output, so a later call with more tiles (the face
region growing round by round, see region.next_tiles) costs only the new tiles plus nnU-Net's cheap
aggregation and export. `predict_tiles` does both steps at once. `last_tile_count` says how many tiles
the last prediction used (either way).

This module imports torch and nnunetv2 at the top: only the engine's first prediction imports it, so the
Slicer module still loads without them. It overrides private methods of nnU-Net's predictor; the import
checks that they still exist with the arguments used here and names the nnunetv2 version otherwise.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import ModelError
from . import PROGRESS_ENV

if TYPE_CHECKING:
    import numpy as np

    from .region import Start

    #: (fold pass, tile start in the preprocessed array): a cached network output's key.
    TileKey = tuple[int, tuple[int, ...]]
    #: nnU-Net's sliding-window slicer: (all channels, z, y, x).
    Slicer = tuple[slice, ...]

try:
    import torch
    from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
except ImportError as err:
    if isinstance(err, ModuleNotFoundError) and err.name in ("torch", "nnunetv2"):
        raise  # not installed at all: the callers (installer, CLI) say how to install it
    from importlib.metadata import version

    raise ModelError(
        f"This nnunetv2 ({version('nnunetv2')}) lacks what the tiled predictor imports ({err}); "
        "install a supported version: pip install 'nnunetv2>=2.5,<2.9'."
    ) from None

#: nnU-Net's methods that TiledPredictor overrides or calls, with the parameters it passes (after self).
NNUNET_INTERNALS = {
    "_internal_get_sliding_window_slicers": ("image_size",),
    "predict_sliding_window_return_logits": ("input_image",),
    "_internal_maybe_mirror_and_predict": ("x",),
    "_internal_predict_sliding_window_return_logits": ("data", "slicers", "do_on_device"),
    "predict_logits_from_preprocessed_data": ("data",),
    "predict_single_npy_array": ("input_image", "image_properties"),
}


def check_nnunet_internals(predictor_class: type = nnUNetPredictor) -> None:
    """ModelError naming the nnunetv2 version when a method TiledPredictor relies on is gone or changed."""
    changed = []
    for name, wanted in NNUNET_INTERNALS.items():
        method = getattr(predictor_class, name, None)
        if not callable(method):
            changed.append(f"{name} is missing")
            continue
        params = list(inspect.signature(method).parameters)[1:]
        if tuple(params[: len(wanted)]) != wanted:
            changed.append(f"{name}({', '.join(params)}) no longer takes ({', '.join(wanted)})")
    if changed:
        from importlib.metadata import version

        raise ModelError(
            f"This nnunetv2 ({version('nnunetv2')}) changed the predictor internals the tiled "
            f"predictor overrides: {'; '.join(changed)}. Install a supported version: "
            "pip install 'nnunetv2>=2.5,<2.9'."
        )


check_nnunet_internals()


class TiledPredictor(nnUNetPredictor):
    _planned: list[Start] | None = None  # tile starts in preprocessed coordinates (before nnU-Net's padding)
    _pre_shape: tuple[int, ...] | None = None
    _cache: dict[TileKey, torch.Tensor] | None = None  # {key: network output} of the prepared case in progress
    _key_list: list[TileKey] | None = None  # cache keys of the tiles, in the order nnU-Net runs them
    _keys: Iterator[TileKey] | None = None  # an iterator over _key_list, fresh for every sliding-window run
    _pass = 0
    _progress: list[int] | None = None  # [tiles done, tiles] of the running sliding window, when progress is wanted
    last_tile_count = 0

    def _internal_get_sliding_window_slicers(self, image_size: tuple[int, ...]) -> list[Slicer]:
        if self._planned is None:
            slicers: list[Slicer] = super()._internal_get_sliding_window_slicers(image_size)
            self._key_list = None
        else:
            assert self._pre_shape is not None  # predict_prepared sets both
            patch = tuple(self.configuration_manager.patch_size)
            pad = [max(0, (n - s) // 2) for n, s in zip(image_size, self._pre_shape)]
            seen: set[tuple[int, ...]] = set()
            slicers = []
            for start in self._planned:
                st = tuple(min(max(a + p, 0), n - t) for a, p, n, t in zip(start, pad, image_size, patch))
                if st not in seen:
                    seen.add(st)
                    slicers.append((slice(None), *[slice(a, a + t) for a, t in zip(st, patch)]))
            self._key_list = [(self._pass, tuple(sl[i].start for i in range(1, 4))) for sl in slicers]
        self.last_tile_count = len(slicers)
        return slicers

    def predict_sliding_window_return_logits(self, input_image: torch.Tensor) -> torch.Tensor:
        self._pass += 1  # one pass per fold: its tiles are cached apart from the other folds'
        return super().predict_sliding_window_return_logits(input_image)

    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        # nnU-Net runs the tiles one after another in slicer order (a FIFO queue, one consumer),
        # so the next key belongs to this tile.
        cache = self._cache
        key = next(self._keys) if self._keys is not None and cache is not None else None
        if key is not None and cache is not None and key in cache:
            self._report_tile()
            return cache[key].clone()  # nnU-Net scales its copy in place
        out = super()._internal_maybe_mirror_and_predict(x)
        if key is not None and cache is not None:
            cache[key] = out.clone()
        self._report_tile()
        return out

    def _report_tile(self) -> None:
        """One tqdm-style "NN%|" line on stderr per tile when the Slicer module's child process asks for it
        (slicer/child_process.py sets PROGRESS_ENV): its progress bar moves while the model runs."""
        if self._progress is None:
            return
        self._progress[0] += 1
        done, total = self._progress
        folds = max(1, len(getattr(self, "list_of_parameters", None) or [None]))
        fold = min(max(self._pass, 1), folds)
        fraction = ((fold - 1) * total + done) / (total * folds)
        sys.stderr.write(f"{int(100 * fraction):3d}%| tile {done}/{total}, fold pass {fold}/{folds}\n")
        sys.stderr.flush()

    def _internal_predict_sliding_window_return_logits(
        self, data: torch.Tensor, slicers: list[Slicer], do_on_device: bool = True
    ) -> torch.Tensor:
        # fresh keys each run: nnU-Net runs the same slicers again on the CPU after a GPU out-of-memory
        self._keys = iter(self._key_list) if self._key_list is not None else None
        self._progress = [0, len(slicers)] if os.environ.get(PROGRESS_ENV) == "1" and slicers else None
        logits = super()._internal_predict_sliding_window_return_logits(data, slicers, do_on_device)
        if self._planned is not None:
            torch.nan_to_num_(logits, nan=0.0)  # 0/0 where no tile ran: equal logits -> background
        return logits

    def prepare(self, data: np.ndarray, properties: dict[str, Any]) -> dict[str, Any]:
        """nnU-Net's preprocessing of `data` (c, z, y, x), kept for predict_prepared."""
        ppa = PreprocessAdapterFromNpy(
            [data],
            [None],
            [properties],
            [None],
            self.plans_manager,
            self.dataset_json,
            self.configuration_manager,
            num_threads_in_multithreaded=1,
            verbose=False,
        )
        dct = next(ppa)
        return {"data": dct["data"], "properties": dct["data_properties"], "cache": {}}

    def _to_preprocessed(self, prepared: dict[str, Any], starts: Iterable[Sequence[int]]) -> list[Start]:
        """Tile starts in the input array -> in the preprocessed (cropped, resampled, transposed) array."""
        props = prepared["properties"]
        forward = list(self.plans_manager.transpose_forward)
        bbox = props["bbox_used_for_cropping"]
        cropped = props["shape_after_cropping_and_before_resampling"]
        pre_shape = tuple(prepared["data"].shape[1:])
        planned: list[Start] = []
        for start in starts:
            st = [start[forward[i]] for i in range(3)]
            planned.append(tuple(int(round((a - bbox[i][0]) * pre_shape[i] / cropped[i])) for i, a in enumerate(st)))
        return planned

    def predict_prepared(
        self, prepared: dict[str, Any], starts: Iterable[Sequence[int]], tile: Sequence[int]
    ) -> np.ndarray:
        """Labels (z, y, x) of a prepared case, running the network on the given tiles only (new ones only)."""
        self._planned = self._to_preprocessed(prepared, starts)
        self._pre_shape = tuple(prepared["data"].shape[1:])
        self._cache, self._pass = prepared["cache"], 0
        try:
            logits = self.predict_logits_from_preprocessed_data(prepared["data"]).cpu()
        finally:
            self._planned = self._cache = self._keys = self._key_list = None
        return convert_predicted_logits_to_segmentation_with_correct_shape(
            logits,
            self.plans_manager,
            self.configuration_manager,
            self.label_manager,
            prepared["properties"],
            return_probabilities=False,
        )

    def predict_tiles(
        self, data: np.ndarray, properties: dict[str, Any], starts: Iterable[Sequence[int]], tile: Sequence[int]
    ) -> np.ndarray:
        """Labels (z, y, x) for `data` (c, z, y, x), running the network on the given tiles only."""
        return self.predict_prepared(self.prepare(data, properties), starts, tile)

    def tile_size_in_input(self, spacing_zyx: Sequence[float]) -> tuple[int, ...]:
        """The patch, in voxels of an input array with `spacing_zyx` (axes z, y, x), rounded down."""
        forward = list(self.plans_manager.transpose_forward)
        patch = self.configuration_manager.patch_size
        model_spacing = self.configuration_manager.spacing
        tile = [0, 0, 0]
        for i in range(3):
            axis = forward[i]
            tile[axis] = max(1, int(patch[i] * model_spacing[i] / spacing_zyx[axis] + 1e-6))
        return tuple(tile)
