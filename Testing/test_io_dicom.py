"""A folder holding one DICOM CT series is read as one volume, with its geometry."""

import os

import numpy as np
import pytest
import SimpleITK as sitk

from builders import make_ct
from CTADefaceLib.errors import InputError
from CTADefaceLib.io.volume import read_image
from CTADefaceLib.pipeline import expand_inputs, output_paths


def write_dicom_series(image, folder):
    """Slices as CT DICOM files (SimpleITK/GDCM), with the tags that place each slice in space."""
    os.makedirs(folder, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    orientation = "\\".join(
        str(v) for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])
    )
    series = "1.2.826.0.1.3680043.2.1125.1.424242"
    for k in range(image.GetDepth()):
        piece = image[:, :, k]
        for tag, value in (
            ("0008|0060", "CT"),
            ("0020|000e", series),
            ("0020|0037", orientation),
            ("0020|0032", "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k))))),
            ("0020|0013", str(k + 1)),
            ("0018|0050", str(image.GetSpacing()[2])),
            ("0028|1052", "0"),
            ("0028|1053", "1"),
        ):
            piece.SetMetaData(tag, value)
        writer.SetFileName(os.path.join(folder, f"slice{k:03d}.dcm"))
        writer.Execute(piece)


def test_dicom_folder_reads_as_the_volume(tmp_path):
    image = make_ct(size=(32, 28, 12), spacing=(0.8, 0.8, 2.0), origin=(-10.0, 20.0, 30.0))
    write_dicom_series(image, str(tmp_path / "series"))
    back = read_image(str(tmp_path / "series"))
    assert back.GetSize() == image.GetSize()
    assert np.allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-4)
    assert np.allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(back).astype(np.int16), sitk.GetArrayFromImage(image))
    assert expand_inputs([str(tmp_path / "series")]) == [str(tmp_path / "series")]
    assert output_paths(str(tmp_path / "series"), "out")["defaced"] == os.path.join("out", "series_defaced.nii.gz")


def test_folder_without_images_or_dicom_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(InputError, match="no image files and no DICOM series"):
        read_image(str(tmp_path))
