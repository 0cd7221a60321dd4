"""The only core file that touches MRML: volume nodes <-> SimpleITK images, face masks <-> segmentations.

Slicer stores geometry as an IJK-to-RAS matrix; ITK (SimpleITK, nnU-Net, NIfTI readers) uses LPS.
The two frames differ by a flip of the first two world axes, so the conversion flips the first two
rows of the direction matrix and the first two origin coordinates; voxel arrays are shared as is
(both index them (k, j, i)). Nothing here resamples: a mask always stays on its volume's grid.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk

FACE_SEGMENT_NAME = "Face"
FACE_SEGMENT_ID = "Face"
#: A warm red-orange that stands out against CT greys in 2D and on skin in 3D.
FACE_COLOR = (0.9, 0.3, 0.2)
#: SNOMED CT "Face" (89545001) in Slicer's terminology-entry string format (category ~ type ~ modifier ~ region).
FACE_TERMINOLOGY = (
    "Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure"
    "~SCT^89545001^Face~^^~Anatomic codes - DICOM master list~^^~^^"
)
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


def _sitk():
    import SimpleITK as sitk  # on first use: the module must load before SimpleITK is checked

    return sitk


# ------------------------------------------------------------------------------------ geometry
def volume_geometry_lps(volume_node) -> tuple[tuple, tuple, tuple]:
    """(origin, spacing, direction) of a volume node in ITK's LPS convention."""
    ras_directions = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASDirectionMatrix(ras_directions)
    direction_ras = np.array([[ras_directions.GetElement(r, c) for c in range(3)] for r in range(3)])
    direction = _LPS_FROM_RAS @ direction_ras
    origin = _LPS_FROM_RAS @ np.array(volume_node.GetOrigin(), dtype=float)
    return (
        tuple(float(v) for v in origin),
        tuple(float(v) for v in volume_node.GetSpacing()),
        tuple(float(v) for v in direction.ravel()),
    )


def set_volume_geometry_lps(volume_node, origin, spacing, direction) -> None:
    """Give a volume node the geometry of an ITK image (LPS origin, spacing, row-major direction)."""
    direction_ras = _LPS_FROM_RAS @ np.array(direction, dtype=float).reshape(3, 3)
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, direction_ras[r, c])
    volume_node.SetIJKToRASDirectionMatrix(matrix)
    volume_node.SetSpacing(*spacing)
    volume_node.SetOrigin(*(_LPS_FROM_RAS @ np.array(origin, dtype=float)))


def _apply_lps_geometry(image, origin, spacing, direction):
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


# ------------------------------------------------------------------------------------ volumes
def image_from_volume(volume_node):
    """SimpleITK image (a copy) with the volume's voxels, pixel type and exact geometry."""
    sitk = _sitk()
    if volume_node is None or volume_node.GetImageData() is None:
        raise ValueError("The volume node has no image data.")
    array = slicer.util.arrayFromVolume(volume_node)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    return _apply_lps_geometry(image, *volume_geometry_lps(volume_node))


def volume_from_image(image, name: str = "Volume", node=None):
    """A scalar volume node holding `image` (new unless `node` is given); display set up when possible."""
    sitk = _sitk()
    array = sitk.GetArrayFromImage(image)
    if node is None:
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", slicer.mrmlScene.GenerateUniqueName(name))
    slicer.util.updateVolumeFromArray(node, array)
    set_volume_geometry_lps(node, image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def copy_volume_display(source_node, target_node) -> None:
    """Show a derived volume (the defaced one) with the same window/level and colours as its source."""
    source, target = source_node.GetDisplayNode(), target_node.GetDisplayNode()
    if source is not None and target is not None:
        target.Copy(source)


def node_name(node) -> str:
    return node.GetName() if node is not None else ""


def node_id(node) -> str:
    return node.GetID() if node is not None else ""


def remove_node(node) -> None:
    """Remove a node with its display and storage nodes (a batch must not grow the scene case by case)."""
    if node is None or node.GetScene() is None:
        return
    helpers = []
    for count, nth in (
        ("GetNumberOfDisplayNodes", "GetNthDisplayNode"),
        ("GetNumberOfStorageNodes", "GetNthStorageNode"),
    ):
        if hasattr(node, count):
            helpers += [getattr(node, nth)(i) for i in range(getattr(node, count)())]
    slicer.mrmlScene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and helper.GetScene() is not None:
            slicer.mrmlScene.RemoveNode(helper)


# ------------------------------------------------------------------------------------ segmentations
def _mark_as_face(segment) -> None:
    segment.SetColor(*FACE_COLOR)
    # Terminology lets DICOM SEG export and other tools know what the segment is; older Slicers have only the tag.
    if hasattr(segment, "SetTerminology"):
        segment.SetTerminology(FACE_TERMINOLOGY)
    elif hasattr(segment, "GetTerminologyEntryTagName"):
        segment.SetTag(segment.GetTerminologyEntryTagName(), FACE_TERMINOLOGY)


def segmentation_from_mask(mask, volume_node, name: str | None = None, node=None):
    """A segmentation node with one segment "Face" = `mask` (on `volume_node`'s grid), shown in 2D and 3D."""
    sitk = _sitk()
    array = (sitk.GetArrayViewFromImage(mask) > 0).astype(np.uint8)
    if array.shape != tuple(reversed(volume_node.GetImageData().GetDimensions())):
        raise ValueError("The face mask is not on the volume's voxel grid.")
    if node is None:
        node = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", slicer.mrmlScene.GenerateUniqueName(name or f"{node_name(volume_node)} face")
        )
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    segmentation = node.GetSegmentation()
    if segmentation.GetSegment(FACE_SEGMENT_ID) is None:
        segmentation.AddEmptySegment(FACE_SEGMENT_ID, FACE_SEGMENT_NAME, list(FACE_COLOR))
    _mark_as_face(segmentation.GetSegment(FACE_SEGMENT_ID))
    slicer.util.updateSegmentBinaryLabelmapFromArray(array, node, FACE_SEGMENT_ID, volume_node)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    if node.GetDisplayNode() is not None:
        node.CreateClosedSurfaceRepresentation()  # the face shows in the 3D view as well as in slices
    return node


def face_segment_id(segmentation_node) -> str:
    """The id of the "Face" segment; a segmentation with exactly one segment is taken as the face."""
    segmentation = segmentation_node.GetSegmentation()
    found = segmentation.GetSegmentIdBySegmentName(FACE_SEGMENT_NAME)
    if found:
        return found
    if segmentation.GetNumberOfSegments() == 1:
        return segmentation.GetNthSegmentID(0)
    raise ValueError(f'The segmentation "{node_name(segmentation_node)}" has no segment named "{FACE_SEGMENT_NAME}".')


def mask_from_segmentation(segmentation_node, volume_node, segment_id: str | None = None):
    """UInt8 SimpleITK mask of the face segment, resampled by Slicer onto `volume_node`'s exact grid."""
    sitk = _sitk()
    segment_id = segment_id or face_segment_id(segmentation_node)
    array = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, volume_node)
    mask = sitk.GetImageFromArray((np.asarray(array) > 0).astype(np.uint8))
    return _apply_lps_geometry(mask, *volume_geometry_lps(volume_node))


# ------------------------------------------------------------------------------------ DICOM database
def dicom_database():
    """Slicer's DICOM database (a ctkDICOMDatabase: fileForInstance(uid) -> path), or None without one."""
    return getattr(slicer, "dicomDatabase", None)


def import_dicom(folder: str):
    """Add a folder of DICOM files to Slicer's DICOM database; 5.8/5.10 return False on failure (no exception)."""
    from DICOMLib import DICOMUtils

    return DICOMUtils.importDicom(folder)
