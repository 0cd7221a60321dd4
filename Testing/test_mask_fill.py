"""Filling the mask: outside voxels bit-identical, pixel type kept, each fill policy."""

import numpy as np
import pytest
import SimpleITK as sitk

from builders import OBLIQUE, RAS, anterior_box_mask, make_ct
from CTADefaceLib.errors import DefaceError, EmptyMaskError
from CTADefaceLib.fill import AIR_HU, apply_mask, fill_value, parse_fill
from CTADefaceLib.mask import mask_volume_ml, postprocess, require_face
from CTADefaceLib.pipeline import DefaceSettings, deface_image


@pytest.mark.parametrize("pixel", [sitk.sitkInt16, sitk.sitkFloat32, sitk.sitkInt32])
def test_outside_mask_bit_identical_and_type_kept(pixel):
    image = make_ct(pixel=pixel, direction=RAS)
    mask = anterior_box_mask(image)
    out = apply_mask(image, mask, fill_value(image, "p10"))
    a, b, m = (sitk.GetArrayViewFromImage(x) for x in (image, out, mask))
    assert out.GetPixelID() == image.GetPixelID()
    assert np.array_equal(a[m == 0], b[m == 0])
    assert a.tobytes() != b.tobytes()


def test_fill_policies():
    image = make_ct()
    array = sitk.GetArrayViewFromImage(image)
    assert fill_value(image, "p10") == pytest.approx(np.percentile(array, 10))
    assert fill_value(image, "air") == AIR_HU
    assert fill_value(image, "-500") == -500.0
    mask = anterior_box_mask(image)
    for policy, expected in (("p10", round(np.percentile(array, 10))), ("air", -1024), ("-500", -500)):
        out = sitk.GetArrayFromImage(apply_mask(image, mask, fill_value(image, policy)))
        assert np.all(out[sitk.GetArrayViewFromImage(mask) > 0] == expected)
    with pytest.raises(DefaceError, match="--fill must be"):
        parse_fill("purple")


def test_deface_image_with_given_mask_on_oblique_image():
    image = make_ct(direction=OBLIQUE)
    mask = anterior_box_mask(image)
    result = deface_image(image, DefaceSettings(fill="air"), mask=mask)
    changed = sitk.GetArrayViewFromImage(result.defaced) != sitk.GetArrayViewFromImage(image)
    assert not np.any(changed & (sitk.GetArrayViewFromImage(mask) == 0))
    assert result.provenance["fill_value"] == AIR_HU
    assert result.provenance["mask_volume_ml"] == pytest.approx(mask_volume_ml(mask), rel=1e-3)


def test_mask_on_another_grid_is_refused():
    image = make_ct()
    other = make_ct(size=(20, 20, 20))
    with pytest.raises(DefaceError, match="grid"):
        deface_image(image, DefaceSettings(), mask=anterior_box_mask(other))


def test_empty_mask_is_refused():
    image = make_ct()
    empty = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(image)
    with pytest.raises(EmptyMaskError, match="No face was found"):
        require_face(empty)
    with pytest.raises(EmptyMaskError):
        deface_image(image, DefaceSettings(), mask=empty)


def test_postprocess_components_holes_margin():
    array = np.zeros((20, 20, 20), np.uint8)
    array[5:15, 5:15, 5:15] = 1
    array[9:11, 9:11, 9:11] = 0  # a hole
    array[0:2, 0:2, 0:2] = 1  # a speck
    mask = sitk.GetImageFromArray(array)
    mask.SetSpacing((2.0, 2.0, 2.0))
    largest = sitk.GetArrayFromImage(postprocess(mask, largest_component=True))
    assert largest[0, 0, 0] == 0 and largest[6, 6, 6] == 1
    filled = sitk.GetArrayFromImage(postprocess(mask, fill_holes=True))
    assert filled[10, 10, 10] == 1
    grown = sitk.GetArrayFromImage(postprocess(mask, margin_mm=4.0))
    assert grown[5 - 2, 10, 10] == 1 and grown[5 - 3, 10, 10] == 0  # 4 mm = 2 voxels of 2 mm
    untouched = sitk.GetArrayFromImage(postprocess(mask))
    assert np.array_equal(untouched, array)
