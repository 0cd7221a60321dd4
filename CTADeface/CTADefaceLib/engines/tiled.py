"""nnU-Net's own predictor, told which tiles to run.

`TiledPredictor` (built lazily: nnunetv2 is imported on first use) is `nnUNetPredictor` with one
change: `predict_tiles(data, properties, starts, tile)` runs the network only on the given tiles
(start indices and tile size in the array given, axes z, y, x), through nnU-Net's own
preprocessing, Gaussian-weighted aggregation and export. Voxels that no tile covers are background.
`last_tile_count` says how many tiles the last prediction ran (either way).
"""

from __future__ import annotations

_CLASS = None


def tiled_predictor_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import torch
    from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    class TiledPredictor(nnUNetPredictor):
        _planned = None      # tile starts in preprocessed coordinates (before nnU-Net's padding)
        _pre_shape = None
        last_tile_count = 0

        def _internal_get_sliding_window_slicers(self, image_size):
            if self._planned is None:
                slicers = super()._internal_get_sliding_window_slicers(image_size)
            else:
                patch = tuple(self.configuration_manager.patch_size)
                pad = [max(0, (n - s) // 2) for n, s in zip(image_size, self._pre_shape)]
                seen, slicers = set(), []
                for start in self._planned:
                    st = tuple(min(max(a + p, 0), n - t) for a, p, n, t in zip(start, pad, image_size, patch))
                    if st not in seen:
                        seen.add(st)
                        slicers.append((slice(None), *[slice(a, a + t) for a, t in zip(st, patch)]))
            self.last_tile_count = len(slicers)
            return slicers

        def _internal_predict_sliding_window_return_logits(self, data, slicers, do_on_device: bool = True):
            logits = super()._internal_predict_sliding_window_return_logits(data, slicers, do_on_device)
            if self._planned is not None:
                torch.nan_to_num_(logits, nan=0.0)  # 0/0 where no tile ran: equal logits -> background
            return logits

        def predict_tiles(self, data, properties: dict, starts, tile):
            """Labels (z, y, x) for `data` (c, z, y, x), running the network on the given tiles only."""
            ppa = PreprocessAdapterFromNpy([data], [None], [properties], [None], self.plans_manager, self.dataset_json,
                                           self.configuration_manager, num_threads_in_multithreaded=1, verbose=False)
            dct = next(ppa)
            pre, props = dct["data"], dct["data_properties"]
            forward = list(self.plans_manager.transpose_forward)
            bbox = props["bbox_used_for_cropping"]
            cropped = props["shape_after_cropping_and_before_resampling"]
            pre_shape = tuple(pre.shape[1:])
            planned = []
            for start in starts:
                st = [start[forward[i]] for i in range(3)]
                planned.append(tuple(int(round((a - bbox[i][0]) * pre_shape[i] / cropped[i])) for i, a in enumerate(st)))
            self._planned, self._pre_shape = planned, pre_shape
            try:
                logits = self.predict_logits_from_preprocessed_data(pre).cpu()
            finally:
                self._planned = None
            return convert_predicted_logits_to_segmentation_with_correct_shape(
                logits, self.plans_manager, self.configuration_manager, self.label_manager, props,
                return_probabilities=False)

        def tile_size_in_input(self, spacing_zyx):
            """The patch, in voxels of an input array with `spacing_zyx` (axes z, y, x), rounded down."""
            forward = list(self.plans_manager.transpose_forward)
            patch = self.configuration_manager.patch_size
            model_spacing = self.configuration_manager.spacing
            tile = [0, 0, 0]
            for i in range(3):
                axis = forward[i]
                tile[axis] = max(1, int(patch[i] * model_spacing[i] / spacing_zyx[axis] + 1e-6))
            return tuple(tile)

    _CLASS = TiledPredictor
    return _CLASS
