"""Volume node <-> SimpleITK geometry and face mask <-> segmentation node, with slicer-core's MRML."""

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
from builders import LPS, RAS, box_ct, face_mask_for  # noqa: E402
from slicer_bootstrap import bootstrap  # noqa: E402

bootstrap()
from CTADefaceLib.slicer import bridge as slicerbridge  # noqa: E402


@pytest.mark.parametrize("direction", [LPS, RAS], ids=["LPS-stored", "RAS-stored"])
def test_volume_round_trip_keeps_exact_geometry_and_voxels(direction):
    image = box_ct(direction)
    node = slicerbridge.volume_from_image(image, "ct")
    back = slicerbridge.image_from_volume(node)
    assert back.GetOrigin() == image.GetOrigin()
    assert back.GetSpacing() == image.GetSpacing()
    assert back.GetDirection() == image.GetDirection()
    assert back.GetPixelID() == image.GetPixelID()
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


@pytest.mark.parametrize("direction", [LPS, RAS], ids=["LPS-stored", "RAS-stored"])
def test_node_geometry_is_ras(direction):
    image = box_ct(direction)
    node = slicerbridge.volume_from_image(image, "ct")
    # A voxel's RAS position from the node equals its LPS position from ITK with x and y negated.
    index = (3, 5, 7)
    lps = image.TransformIndexToPhysicalPoint(index)
    import vtk

    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    ras = ijk_to_ras.MultiplyPoint((*index, 1.0))[:3]
    assert np.allclose(ras, (-lps[0], -lps[1], lps[2]), atol=1e-9)


@pytest.mark.parametrize("direction", [LPS, RAS], ids=["LPS-stored", "RAS-stored"])
def test_face_mask_becomes_face_segment_on_the_volume_grid(direction):
    image = box_ct(direction)
    mask = face_mask_for(image)
    volume = slicerbridge.volume_from_image(image, "ct")
    segmentation = slicerbridge.segmentation_from_mask(mask, volume)
    segment_id = slicerbridge.face_segment_id(segmentation)
    segment = segmentation.GetSegmentation().GetSegment(segment_id)
    assert segment.GetName() == "Face"
    assert tuple(round(c, 6) for c in segment.GetColor()) == slicerbridge.FACE_COLOR
    if hasattr(segment, "GetTerminology"):
        assert "89545001" in segment.GetTerminology()
    assert segmentation.GetDisplayNode() is not None
    assert segmentation.GetSegmentation().ContainsRepresentation("Closed surface")
    back = slicerbridge.mask_from_segmentation(segmentation, volume)
    assert back.GetOrigin() == image.GetOrigin() and back.GetDirection() == image.GetDirection()
    assert back.GetSpacing() == image.GetSpacing()
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))


def test_mask_on_another_grid_is_refused():
    image = box_ct()
    volume = slicerbridge.volume_from_image(image, "ct")
    wrong = sitk.Image([4, 4, 4], sitk.sitkUInt8)
    with pytest.raises(ValueError, match="grid"):
        slicerbridge.segmentation_from_mask(wrong, volume)
