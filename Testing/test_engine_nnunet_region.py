"""The fast path: the face ROI never cuts the face, its masks match whole-volume inference, and the
random official-shape model folder (the timing model of Testing/benchmarks/speed.py) loads in nnU-Net."""

import dataclasses
import os
import time

import numpy as np
import pytest
import SimpleITK as sitk

from CTADefaceLib.engines.nnunet import region as roi
from CTADefaceLib.io.volume import to_canonical
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

OFFICIAL_TILE_MM = (128 * 0.6, 128 * 0.45, 128 * 0.45)  # the official patch at the CTA's own spacing (z, y, x)
# Seeds 1-12 of PhantomSpec.random cover RAS and LPS, with and without neck, vertex cut, glasses,
# and poses up to 20 degrees about each axis.
ROI_SEEDS = tuple(range(1, 13))


def official_tile(image):
    spacing = image.GetSpacing()[::-1]
    return tuple(int(t // s) for t, s in zip(OFFICIAL_TILE_MM, spacing))


def grow_with_true_face(plan, face):
    """Run the growth rounds as the engine does, with the phantom's true face standing in for a perfect
    model's prediction: each round 'predicts' the true face inside the tiles run so far, nothing outside."""
    while roi.next_tiles(plan, face & roi.covered_mask(plan, face.shape)):
        assert plan.rounds < 20, "the growth does not stop"
    return plan


def assert_face_covered(phantom):
    """The whole candidate region holds the face, and so do the tiles that growth ends with."""
    image = to_canonical(phantom.image)
    face = sitk.GetArrayFromImage(to_canonical(phantom.face)).astype(bool)
    reach = roi.plan_face_tiles(image, official_tile(image), grow=False)
    assert not reach.whole_volume, reach.reason
    missed = int(np.count_nonzero(face & ~roi.covered_mask(reach, face.shape)))
    assert missed == 0, f"seed {phantom.spec.seed}: {missed} face voxels outside the candidate region's tiles"
    plan = grow_with_true_face(roi.plan_face_tiles(image, official_tile(image)), face)
    covered = roi.covered_mask(plan, face.shape)
    missed = int(np.count_nonzero(face & ~covered))
    assert missed == 0, f"seed {phantom.spec.seed}: {missed} face voxels outside the tiles after growth"
    assert plan.n_tiles <= reach.n_tiles == plan.reach_tiles
    return plan, covered


def test_growth_stops_short_of_the_whole_region_on_an_upright_head():
    """An upright head's face ends inside the core: no growth round, far fewer tiles than the region."""
    phantom = make_phantom(PhantomSpec(seed=40, pose_deg=(0, 0, 0)))
    image = to_canonical(phantom.image)
    face = sitk.GetArrayFromImage(to_canonical(phantom.face)).astype(bool)
    plan = grow_with_true_face(roi.plan_face_tiles(image, official_tile(image)), face)
    assert plan.n_tiles < 0.8 * plan.reach_tiles, (plan.n_tiles, plan.reach_tiles)
    assert not np.any(face & ~roi.covered_mask(plan, face.shape))


def test_growth_follows_the_face_past_a_misplaced_core():
    """A core that holds only the top of the face: the rounds follow the face down until it ends."""
    phantom = make_phantom(PhantomSpec(seed=41, pose_deg=(0, 0, 0)))
    image = to_canonical(phantom.image)
    face = sitk.GetArrayFromImage(to_canonical(phantom.face)).astype(bool)
    plan = roi.plan_face_tiles(image, official_tile(image), core_below_mm=-20.0, core_above_mm=60.0)
    assert np.any(face & ~roi.covered_mask(plan, face.shape))  # the core alone misses the lower face
    grow_with_true_face(plan, face)
    assert plan.rounds >= 2 and not np.any(face & ~roi.covered_mask(plan, face.shape))


def test_growth_with_no_face_in_the_core_runs_the_whole_region():
    phantom = make_phantom(PhantomSpec(seed=42))
    image = to_canonical(phantom.image)
    plan = roi.plan_face_tiles(image, official_tile(image))
    added = roi.next_tiles(plan, np.zeros(image.GetSize()[::-1], bool))
    assert added and plan.rounds == 2
    assert not np.any(plan.candidate & ~roi.low_res_cover(plan, plan.starts))  # every candidate voxel now runs


POSE_CASES = [
    ((20, 20, 20), True, True, ("glasses",)),
    ((-20, -20, -20), False, True, ("tube",)),
    ((20, -20, 0), True, False, ()),
    ((-20, 20, 10), False, False, ("glasses", "tube")),
]


@pytest.mark.parametrize("pose, neck, vertex, devices", POSE_CASES)
def test_roi_poses_and_fields_of_view(pose, neck, vertex, devices):
    """Extreme tilts (20 degrees on each axis), with and without the neck, a cut vertex, glasses and a tube."""
    i = POSE_CASES.index((pose, neck, vertex, devices))
    spec = PhantomSpec(
        seed=300 + i,
        shape=(120, 128, 144 if neck else 128),
        spacing=(2.0, 2.0, 2.0),
        orientation="RAS" if i % 2 else "LPS",
        neck=neck,
        vertex=vertex,
        pose_deg=pose,
        devices=devices,
    )
    phantom = make_phantom(spec)
    image = to_canonical(phantom.image)
    face = sitk.GetArrayFromImage(to_canonical(phantom.face)).astype(bool)
    plan = grow_with_true_face(roi.plan_face_tiles(image, official_tile(image)), face)
    seen = face & roi.covered_mask(plan, face.shape)
    if roi.reaches_tile_border(plan, seen, image.GetSpacing()[::-1]):
        # The engine's safety net: the face runs into the region's edge, so growth follows it beyond the slab.
        # (Measured: a tube out of the mouth with a 20-degree tilt is taken for the nose tip in the last
        # case; the other three are covered by the slab.)
        plan = grow_with_true_face(roi.widen(plan), face)
    missed = int(np.count_nonzero(face & ~roi.covered_mask(plan, face.shape)))
    assert missed == 0, f"{missed} face voxels lost"


@pytest.mark.slow
def test_roi_covers_face_medium():
    plan, _ = assert_face_covered(make_phantom(PhantomSpec.random(21, "medium")))
    assert plan.n_tiles > 0


def test_roi_falls_back_to_whole_volume_without_head():
    air = sitk.Image(64, 64, 64, sitk.sitkInt16) - 1000
    air.SetSpacing((2.0, 2.0, 2.0))
    plan = roi.plan_face_tiles(air, (32, 32, 32))
    assert plan.whole_volume and plan.reason


# ----------------------------------------------------------------------------- model agreement
# synthetic_model: conftest.py's fixture (the bundled model, installed once into the run's model cache).


def _dice(x, y):
    return 2 * np.count_nonzero(x & y) / max(1, np.count_nonzero(x) + np.count_nonzero(y))


@pytest.mark.slow
def test_fast_path_matches_whole_volume(synthetic_model):
    """The bundled model (a 256 mm patch: one or two tiles per phantom): the fast path's mask is the
    whole-volume mask, tilted heads, with and without the neck."""
    from CTADefaceLib.engines import engine_for
    from CTADefaceLib.pipeline import DefaceSettings, compute_mask

    whole = DefaceSettings(model=synthetic_model, device="cpu", tile_step=0.5, roi=False)
    fast = DefaceSettings(model=synthetic_model, device="cpu")
    e_whole, e_fast = engine_for(whole), engine_for(fast)
    cases = [
        PhantomSpec.random(5000, "small"),  # the model never saw these seeds
        PhantomSpec(seed=5001, shape=(120, 128, 144), neck=True, pose_deg=(15, -12, 8), orientation="RAS"),
        PhantomSpec(seed=5002, shape=(128, 128, 128), neck=False, pose_deg=(-14, 10, -15), devices=("glasses",)),
    ]
    for spec in cases:
        phantom = make_phantom(spec)
        a = sitk.GetArrayFromImage(compute_mask(phantom.image, whole, e_whole)[0]).astype(bool)
        b = sitk.GetArrayFromImage(compute_mask(phantom.image, fast, e_fast)[0]).astype(bool)
        assert _dice(a, b) >= 0.99, (
            f"seed {spec.seed}: Dice {_dice(a, b):.4f} between the fast path and whole-volume inference"
        )
        assert e_fast.describe()["roi"] and e_fast.last_tiles >= 1


def _shifted_whole_volume(engine, image, shift: int = 16):
    """Whole-volume inference with nnU-Net's tile grid moved by `shift` voxels (air added before the image)."""
    from tiles_model import pad_before

    return sitk.GetArrayFromImage(engine.predict(pad_before(image, shift))).astype(bool)[shift:, shift:, shift:]


@pytest.mark.parametrize(
    "spec",
    [
        PhantomSpec.random(5000, "small"),  # unseen seeds: tilted, no neck
        PhantomSpec(seed=5002, shape=(120, 128, 144), neck=True, pose_deg=(-8, 10, -12)),
        PhantomSpec(
            seed=5003, shape=(128, 128, 128), neck=False, pose_deg=(12, -10, 6), orientation="RAS", devices=("tube",)
        ),
    ],
    ids=["tilted", "neck", "no-neck-tube"],
)
@pytest.mark.slow  # over 14 s on 2 shared cores
def test_fast_path_with_several_tiles_agrees_as_well_as_upstream_agrees_with_itself(tiles_model, spec):
    """The tiling test model (a 128 mm patch: several tiles and growth rounds per head). A small model's mask
    depends on where the tiles fall: upstream's own whole-volume mask changes by several percent when its tile
    grid moves by 16 voxels (measured Dice 0.93-0.94). The fast path must stay at least that close to upstream,
    and at least as close to the ground truth."""
    from CTADefaceLib.engines import create_engine

    phantom = make_phantom(spec)
    image = to_canonical(phantom.image)
    truth = sitk.GetArrayFromImage(to_canonical(phantom.face)).astype(bool)
    whole = create_engine("nnunet", model=tiles_model, device="cpu", roi=False, tile_step=0.5)
    fast = create_engine("nnunet", model=tiles_model, device="cpu")
    a = sitk.GetArrayFromImage(whole.predict(image)).astype(bool)
    b = sitk.GetArrayFromImage(fast.predict(image)).astype(bool)
    self_agreement = _dice(a, _shifted_whole_volume(whole, image))
    assert not fast.last_plan.whole_volume and fast.last_tiles < whole.last_tiles
    assert _dice(a, b) >= min(0.95, self_agreement), (_dice(a, b), self_agreement)
    assert _dice(b, truth) >= _dice(a, truth) - 0.01, (_dice(b, truth), _dice(a, truth))


# ----------------------------------------------------------------------------- random model
def test_random_model_loads_in_nnunet(tmp_path):
    torch = pytest.importorskip("torch")
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from CTADefaceLib.synthetic.random_model import parameter_count, write_random_model

    results = write_random_model(
        str(tmp_path), features=(4, 8, 16, 32), patch=(32, 32, 32), spacing_zyx=(2.0, 2.0, 2.0)
    )
    for name in ("plans.json", "dataset.json", os.path.join("fold_all", "checkpoint_final.pth")):
        assert os.path.isfile(os.path.join(results, name))
    predictor = nnUNetPredictor(
        tile_step_size=1.0,
        use_mirroring=False,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(results, use_folds=("all",))
    data = np.random.default_rng(0).normal(0, 300, (1, 40, 36, 33)).astype(np.float32)
    start = time.perf_counter()
    labels = predictor.predict_single_npy_array(data, {"spacing": [2.0, 2.0, 2.0]})
    assert labels.shape == data.shape[1:]
    assert time.perf_counter() - start < 120  # generous ceiling, not a benchmark
    assert parameter_count(results) > 0


def test_official_shape_has_31m_parameters():
    from CTADefaceLib.synthetic.random_model import OFFICIAL_SHAPE, architecture

    kwargs = architecture(OFFICIAL_SHAPE["features"])["arch_kwargs"]
    assert kwargs["features_per_stage"] == [32, 64, 128, 256, 320, 320] and kwargs["n_stages"] == 6


# ----------------------------------------------------------------------------- allocator settings
def test_malloc_environment_for_cpu_children():
    from CTADefaceLib.launcher import MALLOC_SETTINGS, malloc_environment, wanted
    from CTADefaceLib.slicer.child_process import child_environment

    env = child_environment({"PATH": "/bin"})
    if wanted({}, []):
        for key, value in MALLOC_SETTINGS.items():
            assert env[key] == value
    assert not wanted({}, ["deface", "x", "--device", "cuda"])
    assert not wanted({"CTADEFACE_MALLOC_TUNING": "0"}, [])
    assert malloc_environment({"MALLOC_TOP_PAD_": "5"}, []).get("MALLOC_TOP_PAD_") == "5"  # the user's own wins


def test_no_roi_flag_reaches_the_subprocess():
    from CTADefaceLib.pipeline import DefaceSettings
    from CTADefaceLib.slicer.child_process import build_deface_command

    assert "--no-roi" in build_deface_command("in.nii.gz", "out", DefaceSettings(roi=False))
    assert "--no-roi" not in build_deface_command("in.nii.gz", "out", DefaceSettings())


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_safety_net_reruns_whole_volume_when_the_face_reaches_the_region_edge(synthetic_model):
    """Without growth (a GPU's default): a region too small for the face (a stand-in for a misplaced slab):
    the engine sees its prediction touch the region's edge and predicts again on the whole volume, so the
    mask equals whole-volume inference."""
    import dataclasses

    from CTADefaceLib.engines import create_engine

    phantom = make_phantom(PhantomSpec.random(5002, "small"))
    image = to_canonical(phantom.image)
    whole = create_engine("nnunet", model=synthetic_model, device="cpu", roi=False).predict(image)
    engine = create_engine("nnunet", model=synthetic_model, device="cpu", grow=False)
    real_plan = roi.plan_face_tiles

    def cut_plan(img, tile, **kwargs):  # the real planner, then the top half of the head taken away
        plan = real_plan(img, tile, **kwargs)
        shape = img.GetSize()[::-1]
        half = shape[0] // 2
        tile = (min(plan.tile[0], half), plan.tile[1], plan.tile[2])
        return dataclasses.replace(plan, tile=tile, starts=[(0, 0, 0)], box=(0, half, 0, tile[1], 0, tile[2]))

    try:
        roi.plan_face_tiles = cut_plan
        mask = engine.predict(image)
    finally:
        roi.plan_face_tiles = real_plan
    assert engine.last_plan.whole_volume and "edge" in engine.last_plan.reason
    assert np.array_equal(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(whole))


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_growing_safety_net_follows_the_face_beyond_a_misplaced_slab(tiles_model):
    """With growth (a CPU's default): a slab that stops 10 mm above the nose tip (a stand-in for a tube taken
    for the nose tip) cuts the forehead off. The engine sees the face reach the slab's edge and follows it
    beyond, through the skin shell of the whole image, instead of predicting the whole volume again."""
    from CTADefaceLib.engines import create_engine

    phantom = make_phantom(PhantomSpec(seed=5006, pose_deg=(5, -5, 0)))
    image = to_canonical(phantom.image)
    truth = sitk.GetArrayFromImage(to_canonical(phantom.face)).astype(bool)
    engine = create_engine("nnunet", model=tiles_model, device="cpu")
    normal = sitk.GetArrayFromImage(engine.predict(image)).astype(bool)
    real_plan = roi.plan_face_tiles

    def low_slab(img, tile, **kwargs):
        return real_plan(img, tile, above_mm=10.0, core_above_mm=10.0, **kwargs)

    try:
        roi.plan_face_tiles = low_slab
        cut = low_slab(image, official_tile(image))
        assert np.any(truth & ~roi.covered_mask(cut, truth.shape)), "the low slab must cut the face"
        mask = sitk.GetArrayFromImage(engine.predict(image)).astype(bool)
    finally:
        roi.plan_face_tiles = real_plan
    plan = engine.last_plan
    assert plan.widened and not plan.whole_volume
    assert not np.any(truth & ~roi.covered_mask(plan, truth.shape)), "face left outside the tiles run"
    assert _dice(mask, normal) >= 0.95 and _dice(mask, truth) >= _dice(normal, truth) - 0.02


def test_safety_net_ignores_a_box_side_with_only_air_beyond():
    """A cheek that ends at the side of the region's box, with air beyond it, hides no face: no rerun.
    (Seed 5005: the face comes within 6 mm of the box's left side, where the head ends too; the tiling
    test model's safety net reran the whole volume there before the net looked beyond the side.)"""
    phantom = make_phantom(PhantomSpec.random(5005, "small"))
    image = to_canonical(phantom.image)
    face = sitk.GetArrayFromImage(to_canonical(phantom.face)).astype(bool)
    spacing = image.GetSpacing()[::-1]
    plan = roi.plan_face_tiles(image, official_tile(image), grow=False)
    x1 = plan.box[5]
    near_side = face[..., x1 - int(np.ceil(6.0 / spacing[2])) : x1]
    assert near_side.any() and x1 < face.shape[2], "the face must come near the box's side, inside the image"
    assert not plan.body[..., -(-x1 // plan.factors[2]) :].any(), "the head ends before that side (glasses arms aside)"
    assert not roi.reaches_tile_border(plan, face, spacing)
    cut = dataclasses.replace(plan, box=plan.box[:5] + (x1 - 10,))  # a side through the cheek: the face goes on
    assert roi.reaches_tile_border(cut, face, spacing)


@pytest.mark.slow
def test_speed_benchmark_runs_end_to_end(tmp_path):
    """The benchmark command itself, in its --smoke size (a small phantom, a tiny random network): every
    variant runs in its own process, growth is steered by the true face, and the summary line is printed."""
    import re
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks", "speed.py")
    out = subprocess.run(
        [
            sys.executable,
            script,
            "--smoke",
            "--upstream-tiles",
            "1",
            "--compare",
            "--agreement-seeds",
            "5000",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = re.search(r"SUMMARY: default ([\d.]+) s vs upstream ([\d.]+) s .* tiles (\d+) vs (\d+)", out.stdout)
    assert summary, out.stdout
    assert int(summary.group(3)) < int(summary.group(4))
    assert "(b') default without malloc settings" in out.stdout and "(c) face ROI all at once" in out.stdout
    dice = [float(d) for d in re.findall(r"Dice\(a, b\) ([\d.]+);", out.stdout)]
    assert len(dice) == 2 and dice[0] >= 0.99 and dice[1] >= 0.9, dice  # bundled model, then the tiling model
