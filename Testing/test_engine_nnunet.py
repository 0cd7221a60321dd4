"""The nnU-Net engine with the real nnU-Net predictor and the project's synthetic test model."""

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from CTADefaceLib.engines import create_engine, engine_names
from CTADefaceLib.errors import DefaceError, ModelError
from CTADefaceLib.io.volume import same_grid
from CTADefaceLib.pipeline import DefaceSettings, compute_mask, deface_image
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

DICE_FLOOR = 0.85  # mean Dice on phantoms the model was not trained on (well above it when the model was trained)


def dice(a, b):
    a, b = sitk.GetArrayFromImage(a) > 0, sitk.GetArrayFromImage(b) > 0
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="module")
def engine(synthetic_model):
    return create_engine("nnunet", model=synthetic_model, device="cpu")


def test_engines_are_listed_by_name():
    assert {"nnunet", "box"} <= set(engine_names())
    with pytest.raises(DefaceError, match="Unknown engine"):
        create_engine("magic")


def test_engine_describes_model_and_device(engine, synthetic_model):
    info = engine.describe()
    assert info["engine"] == "nnunet" and info["model"] == synthetic_model and info["device"] == "cpu"
    assert len(info["model_sha256"]) == 64 and info["mirroring"] is False and info["folds"] == ["all"]


@pytest.mark.slow
def test_unseen_phantoms_reach_the_dice_floor(engine):
    """Other seeds than training (1000-1047), with other poses, orientations, fields of view and spacings."""
    specs = [PhantomSpec.random(seed, size="small") for seed in (7001, 7002, 7003)]
    specs.append(dataclasses.replace(PhantomSpec.random(7004, size="small"), orientation="RAS", pose_deg=(15, -10, 12)))
    # Another spacing than the 2 mm the model was trained on: nnU-Net resamples in and out.
    specs.append(
        dataclasses.replace(PhantomSpec.random(7005, size="small"), spacing=(1.6, 1.6, 2.5), shape=(150, 160, 112))
    )
    scores = []
    for spec in specs:
        phantom = make_phantom(spec)
        mask, _ = compute_mask(phantom.image, DefaceSettings(), engine)
        assert same_grid(mask, phantom.image)
        scores.append(dice(mask, phantom.face))
    print("Dice per unseen phantom:", [round(s, 3) for s in scores])
    assert np.mean(scores) >= DICE_FLOOR
    assert min(scores) >= 0.75


@pytest.mark.slow  # two nnU-Net runs (15 s); the quick tier keeps one (test_deface_removes_face_and_keeps_...)
def test_lps_and_ras_copies_give_the_same_mask(engine):
    spec = PhantomSpec.random(7010, size="small")
    lps = make_phantom(dataclasses.replace(spec, orientation="LPS"))
    ras = make_phantom(dataclasses.replace(spec, orientation="RAS"))
    mask_lps, _ = compute_mask(lps.image, DefaceSettings(), engine)
    mask_ras, _ = compute_mask(ras.image, DefaceSettings(), engine)
    # Same anatomy stored two ways: the RAS array is the LPS array flipped in x and y.
    assert np.array_equal(sitk.GetArrayFromImage(mask_lps), sitk.GetArrayFromImage(mask_ras)[:, ::-1, ::-1])


def test_deface_removes_face_and_keeps_brain_and_arteries(engine):
    phantom = make_phantom(PhantomSpec.random(7020, size="small"))
    result = deface_image(phantom.image, DefaceSettings(), engine=engine)
    before, after = sitk.GetArrayFromImage(phantom.image), sitk.GetArrayFromImage(result.defaced)
    mask = sitk.GetArrayFromImage(result.mask) > 0
    assert np.array_equal(before[~mask], after[~mask])
    brain = sitk.GetArrayFromImage(phantom.intracranial) > 0
    arteries = sitk.GetArrayFromImage(phantom.arteries) > 0
    # A learned mask is not perfect at its border: allow a sliver, never a real bite out of brain or arteries.
    # (Measured on this case: 23 of 163116 brain voxels, 43 of 2456 artery voxels, where the 2-3 voxel wide
    # external carotid runs next to the masseter at 2 mm.)
    print("overlap with brain / arteries (voxels):", np.count_nonzero(mask & brain), np.count_nonzero(mask & arteries))
    assert np.count_nonzero(mask & brain) <= 0.001 * np.count_nonzero(brain)
    assert np.count_nonzero(mask & arteries) <= 0.05 * np.count_nonzero(arteries)
    face = sitk.GetArrayFromImage(phantom.face) > 0
    assert np.count_nonzero(after[face] == before[face]) < 0.15 * np.count_nonzero(face)
    assert result.provenance["fill_value"] == pytest.approx(np.percentile(before, 10))
    assert result.provenance["engine"] == "nnunet" and result.provenance["device"] == "cpu"


def test_mirroring_and_tile_step_options_are_used(synthetic_model):
    engine = create_engine("nnunet", model=synthetic_model, device="cpu", mirroring=True, tile_step=1.0)
    assert engine.describe()["mirroring"] is True and engine.describe()["tile_step"] == 1.0
    with pytest.raises(DefaceError, match="tile step"):
        create_engine("nnunet", model=synthetic_model, device="cpu", tile_step=0)


def test_gpu_out_of_memory_falls_back_to_cpu(synthetic_model, caplog):
    """No GPU exists here: a labelled stand-in predictor raises CUDA's OOM error once, as a full GPU would."""
    import torch

    engine = create_engine("nnunet", model=synthetic_model, device="cpu", roi=False)

    class OutOfMemoryStandIn:  # stand-in for a predictor on a full GPU
        def predict_single_npy_array(self, *args, **kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (stand-in)")

    engine._predictor = OutOfMemoryStandIn()
    engine.device = "cuda"
    engine.grow = engine._grows_on("cuda")  # grow=None: by device, off on a GPU
    assert engine.grow is False
    phantom = make_phantom(PhantomSpec.random(7030, size="small"))
    mask = engine.predict(phantom.image)
    assert engine.device == "cpu" and engine.describe()["device"] == "cpu"
    assert engine.grow is True and engine.describe()["roi_grow"] is True  # growth recomputed for the CPU
    assert np.count_nonzero(sitk.GetArrayFromImage(mask)) > 0
    assert "ran out of memory" in caplog.text


def test_missing_cuda_and_unknown_device_are_clear(synthetic_model):
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DefaceError, match="no CUDA GPU"):
            create_engine("nnunet", model=synthetic_model, device="cuda")
    with pytest.raises(DefaceError, match="--device must be"):
        create_engine("nnunet", model=synthetic_model, device="tpu")


def test_model_folder_path_is_accepted_and_bad_folder_refused(synthetic_model, tmp_path):
    from CTADefaceLib.models.install import installed_results_folder

    folder, _ = installed_results_folder(synthetic_model)
    engine = create_engine("nnunet", model=folder, device="cpu")
    assert engine.describe()["model"] == folder and len(engine.model_sha256) == 64
    with pytest.raises(ModelError, match="not an nnU-Net v2 results folder"):
        create_engine("nnunet", model=str(tmp_path), device="cpu")
