"""The geometric residual-face measure (CTADefaceEvalLib.residual) on phantoms defaced with complete and partial
ground-truth masks (CTADefaceLib.synthetic.partial_masks), upright and tilted up to 20 degrees.

The calibration numbers behind residual.THRESHOLDS come from these cases (2 mm phantoms, the project's p10 fill,
measured in the true face frame): complete mask at most 0.3 ml / 2 mm in any region; nose, lips or eyes left at
least 4.7 ml / 8 mm in that region. Run with -s to see the table.
"""

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from CTADefaceEvalLib.residual import REGIONS, THRESHOLDS, flagged_regions, residual_face
from CTADefaceLib.fill import apply_mask, fill_value
from CTADefaceLib.synthetic.partial_masks import PARTS, partial_mask_images, partial_masks
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom, rotation

# (seed, pose (rx, ry, rz) degrees about the L, P, S axes): upright, pitched both ways, rolled, turned, all three.
CASES = [(3, (0.0, 0.0, 0.0)), (5, (20.0, 0.0, 0.0)), (5, (-20.0, 0.0, 0.0)), (6, (0.0, 20.0, 0.0))]
CASES += [(7, (0.0, 0.0, 20.0)), (8, (-15.0, 12.0, -18.0))]

#: What each partial mask must be caught in: the region it leaves (the left half leaves part of every region).
MUST_FLAG = {
    "nose_left": {"nose"},
    "lips_left": {"lips"},
    "eyes_left": {"eyes"},
    "left_half_left": {"nose", "lips", "eyes"},
}
#: Regions a mask removes completely, which must then not be flagged.
MUST_NOT_FLAG = {
    "full": set(REGIONS),
    "nose_left": {"lips", "eyes"},
    "lips_left": {"eyes"},
    "eyes_left": {"nose", "lips"},
    "left_half_left": set(),
}


def _phantom(seed, pose, orientation=None):
    spec = dataclasses.replace(PhantomSpec.random(seed), pose_deg=pose, devices=())
    if orientation:
        spec = dataclasses.replace(spec, orientation=orientation)
    return make_phantom(spec)


def true_frame(phantom) -> dict:
    """The phantom's face frame from its known pose (anatomical anterior is -y, superior +z)."""
    R = rotation(phantom.pose_deg)
    return {"front_lps": R @ [0.0, -1.0, 0.0], "up_lps": R @ [0.0, 0.0, 1.0], "method": "phantom pose"}


def _row(part, result):
    return f"{part:15s} " + "  ".join(
        f"{n} {result[n]['tissue_ml']:5.1f} ml {result[n]['protrusion_mm']:4.1f} mm{'*' if result[n]['flagged'] else ' '}"
        for n in REGIONS
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed,pose", CASES, ids=[f"seed{s}-pose{p[0]:g},{p[1]:g},{p[2]:g}" for s, p in CASES])
def test_complete_mask_passes_and_each_partial_mask_is_flagged_in_its_region(seed, pose):
    phantom = _phantom(seed, pose)
    frame = true_frame(phantom)
    value = fill_value(phantom.image, "p10")
    before = sitk.GetArrayFromImage(phantom.image).copy()
    print(f"\nseed {seed} pose {pose} ({phantom.spec.orientation})")
    for part, mask in partial_mask_images(phantom).items():
        defaced = apply_mask(phantom.image, mask, value)
        result = residual_face(defaced, frame=frame)
        print(_row(part, result))
        assert result["anchor"]["method"] == "front teeth"
        assert result["frame"]["method"] == "phantom pose"
        flagged = set(flagged_regions(result))
        assert MUST_FLAG.get(part, set()) <= flagged, (part, result)
        assert not (MUST_NOT_FLAG[part] & flagged), (part, result)
        if part == "full":
            for name in REGIONS:  # near zero everywhere: well under the thresholds
                assert result[name]["tissue_ml"] < 0.75 * THRESHOLDS[name]["tissue_ml"], (name, result[name])
                assert result[name]["protrusion_mm"] <= 4.0, (name, result[name])
        if part == "nose_left":
            assert result["nose"]["protrusion_mm"] >= 12.0 and result["nose"]["tissue_ml"] >= 5.0
        # relative to the original: what fraction of the region's tissue is left
        relative = residual_face(defaced, phantom.image, frame=frame)
        for name in REGIONS:
            assert relative[name]["original_tissue_ml"] > result[name]["tissue_ml"] - 0.5
        if part == "full":
            assert all(relative[n]["fraction_left"] < 0.1 for n in ("nose", "lips", "eyes"))
        elif part in ("nose_left", "lips_left", "eyes_left"):
            region = part.split("_")[0]
            assert relative[region]["fraction_left"] > 0.4
            assert relative[region]["flagged"]
    assert np.array_equal(sitk.GetArrayFromImage(phantom.image), before)  # inputs untouched


@pytest.mark.slow
def test_the_measure_does_not_depend_on_how_the_image_is_stored():
    lps = _phantom(5, (10.0, -5.0, 8.0), "LPS")
    ras = _phantom(5, (10.0, -5.0, 8.0), "RAS")
    results = []
    for phantom in (lps, ras):
        mask = partial_mask_images(phantom)["nose_left"]
        defaced = apply_mask(phantom.image, mask, fill_value(phantom.image, "p10"))
        results.append(residual_face(defaced, frame=true_frame(phantom)))
    for name in REGIONS:
        assert results[0][name]["flagged"] == results[1][name]["flagged"]
        assert abs(results[0][name]["tissue_ml"] - results[1][name]["tissue_ml"]) < 0.3


@pytest.mark.slow
def test_upright_head_without_a_frame_is_measured_in_the_face_frame_or_the_image_axes():
    """frame=None: pose.py's estimate when that module is there, else the image axes (right for an upright head)."""
    phantom = _phantom(3, (0.0, 0.0, 0.0))
    masks = partial_mask_images(phantom)
    value = fill_value(phantom.image, "p10")
    nose = residual_face(apply_mask(phantom.image, masks["nose_left"], value), phantom.image)
    full = residual_face(apply_mask(phantom.image, masks["full"], value), phantom.image)
    assert nose["frame"]["method"]
    assert flagged_regions(nose) == ["nose"]
    assert flagged_regions(full) == []


@pytest.mark.slow
def test_tilted_head_with_the_estimated_face_frame():
    pytest.importorskip("CTADefaceEvalLib.pose")  # built by another part of issue 13
    phantom = _phantom(5, (-15.0, 12.0, -18.0))
    masks = partial_mask_images(phantom)
    value = fill_value(phantom.image, "p10")
    for part in ("full", "nose_left", "lips_left", "eyes_left"):
        result = residual_face(apply_mask(phantom.image, masks[part], value), phantom.image)
        assert result["frame"]["method"] != "image axes"
        assert set(flagged_regions(result)) == MUST_FLAG.get(part, set()), (part, result)


def test_without_teeth_the_regions_cannot_be_placed_and_it_says_so():
    array = np.full((40, 60, 60), -1000, np.int16)
    zz, yy, xx = np.mgrid[:40, :60, :60]
    array[(yy - 30) ** 2 + (xx - 30) ** 2 < 20**2] = 40  # a water cylinder: body, no bone, no teeth
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.0))
    result = residual_face(image)
    assert result["anchor"]["method"] == "none" and "teeth" in result["anchor"]["reason"]
    assert all(result[name] is None for name in REGIONS)
    assert flagged_regions(result) == []


def test_original_on_another_grid_is_refused():
    a = sitk.Image(10, 10, 10, sitk.sitkInt16)
    b = sitk.Image(10, 10, 12, sitk.sitkInt16)
    with pytest.raises(ValueError, match="same grid|one grid"):
        residual_face(a, b)


def test_partial_masks_leave_out_only_their_part():
    phantom = _phantom(3, (0.0, 0.0, 0.0))
    masks = partial_masks(phantom)
    assert tuple(masks) == PARTS
    full = masks["full"].astype(bool)
    assert np.array_equal(full, sitk.GetArrayFromImage(phantom.face) > 0)
    voxel_ml = float(np.prod(phantom.spec.spacing)) / 1000.0

    def left_ml(part):
        mask = masks[part].astype(bool)
        assert not (mask & ~full).any()  # a partial mask is inside the complete one
        return float((full & ~mask).sum()) * voxel_ml

    for part in ("nose_left", "lips_left", "eyes_left"):
        assert 5.0 < left_ml(part) < 60.0, part  # a part of the face, not nothing and not half of it
    assert 0.35 < left_ml("left_half_left") / (full.sum() * voxel_ml) < 0.65

    # the voxel at the nose tip (just inside the skin) is kept by nose_left and removed by the others
    tip = np.array(phantom.landmarks["nose_tip"])
    inward = tip + (np.array(phantom.landmarks["nasion"]) - tip) * 0.1
    index = phantom.face.TransformPhysicalPointToIndex(tuple(float(v) for v in inward))[::-1]
    assert full[index]
    assert not masks["nose_left"][index] and masks["eyes_left"][index] and masks["lips_left"][index]
