"""TiledPredictor: nnU-Net's predictor on chosen tiles, each tile's network output kept for later rounds."""

import numpy as np
import pytest
import SimpleITK as sitk

from CTADefaceLib.io.volume import to_canonical
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom


@pytest.fixture(scope="module")
def prepared_case(tiles_model):
    from CTADefaceLib.engines import create_engine

    engine = create_engine("nnunet", model=tiles_model, device="cpu")
    predictor = engine._load()
    image = to_canonical(make_phantom(PhantomSpec(seed=77)).image)
    data = sitk.GetArrayFromImage(image).astype(np.float32)[None]
    properties = {"spacing": list(image.GetSpacing())[::-1]}
    tile = predictor.tile_size_in_input(properties["spacing"])
    calls = []
    predictor.network.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    return predictor, data, properties, tile, calls


def test_a_second_round_runs_only_the_new_tiles_and_matches_a_fresh_run(prepared_case):
    predictor, data, properties, tile, calls = prepared_case
    first, second = (0, 0, 0), tuple(max(0, n - t) for n, t in zip(data.shape[1:], tile))
    prepared = predictor.prepare(data, properties)
    calls.clear()
    predictor.predict_prepared(prepared, [first], tile)
    assert len(calls) == 1
    grown = predictor.predict_prepared(prepared, [first, second], tile)
    assert len(calls) == 2, "the first tile ran again"
    fresh = predictor.predict_tiles(data, properties, [first, second], tile)
    assert len(calls) == 4
    assert np.array_equal(grown, fresh)
    assert predictor.last_tile_count == 2


def test_voxels_no_tile_covers_are_background(prepared_case):
    predictor, data, properties, tile, _ = prepared_case
    labels = predictor.predict_tiles(data, properties, [(0, 0, 0)], tile)
    outside = np.ones(labels.shape, bool)
    outside[tuple(slice(0, t) for t in tile)] = False
    assert labels.shape == data.shape[1:] and not labels[outside].any()


def test_the_import_check_names_a_missing_or_changed_nnunet_internal():
    """TiledPredictor overrides private nnU-Net methods: a release that renames one or changes its parameters must
    stop the engine with one sentence naming the method and the nnunetv2 version, not fail deep inside a tile."""
    from importlib.metadata import version

    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from CTADefaceLib.engines.nnunet.tiled_predictor import check_nnunet_internals
    from CTADefaceLib.errors import ModelError

    check_nnunet_internals(nnUNetPredictor)  # the installed nnU-Net has them all

    class ChangedRelease(nnUNetPredictor):  # what a future nnunetv2 could look like
        predict_logits_from_preprocessed_data = None  # gone

        def _internal_maybe_mirror_and_predict(self, tensor):  # parameter renamed
            return tensor

    with pytest.raises(ModelError) as raised:
        check_nnunet_internals(ChangedRelease)
    message = str(raised.value)
    assert f"nnunetv2 ({version('nnunetv2')})" in message
    assert "predict_logits_from_preprocessed_data is missing" in message
    assert "_internal_maybe_mirror_and_predict(tensor) no longer takes (x)" in message
    assert "predict_single_npy_array" not in message  # unchanged methods are not named
