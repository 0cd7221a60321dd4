"""The box engine (ICHSEG-style prism) puts a non-empty mask in front of the head, on the input grid."""

import numpy as np
import SimpleITK as sitk

from builders import as_ras_stored, make_synthetic_head
from CTADefaceEvalLib import metrics
from CTADefaceLib.engines import create_engine
from CTADefaceLib.pipeline import DefaceSettings, deface_image


def test_box_mask_covers_nose_and_mouth_in_front():
    head = make_synthetic_head(spacing=2.0)
    mask = create_engine("box").predict(head.image)
    array = sitk.GetArrayViewFromImage(mask)
    assert mask.GetSize() == head.image.GetSize() and mask.GetSpacing() == head.image.GetSpacing()
    assert array.dtype == np.uint8 and array.sum() > 0
    z, y, x = np.nonzero(array)
    face = sitk.GetArrayViewFromImage(head.face)
    fz, fy, fx = np.nonzero(face)
    assert y.min() == 0 and y.max() < array.shape[1] // 3  # from the front of the image into the face only
    assert fz.min() <= z.mean() <= fz.max() and abs(x.mean() - fx.mean()) < 3  # face height, midline
    assert metrics.dice(mask, head.face) > 0.1  # it covers part of the face, not all of it


def test_box_through_the_pipeline_on_a_ras_stored_copy_keeps_everything_else():
    head = make_synthetic_head(spacing=3.0)
    ras = as_ras_stored(head.image)
    result = deface_image(ras, DefaceSettings(engine="box"))
    assert result.mask.GetDirection() == ras.GetDirection()
    kept = metrics.preservation(ras, result.defaced, result.mask, {"intracranial": as_ras_stored(head.intracranial)})
    assert kept["changed_outside_mask"] == 0 and kept["changed_in_intracranial"] == 0
    assert kept["changed_inside_mask"] > 0
    assert result.provenance["engine"] == "box"
