"""Volume I/O and orientation: every format round-trips, outputs land on the input's exact grid."""

import os

import numpy as np
import pytest
import SimpleITK as sitk

from builders import LPS, OBLIQUE, RAS, flat_image, make_ct, mri_like
from CTADefaceLib.errors import InputError, OutputError
from CTADefaceLib.io.volume import from_canonical, read_image, same_grid, split_suffix, to_canonical, write_image_atomic

FORMATS = [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"]
DIRECTIONS = {"LPS": LPS, "RAS": RAS, "oblique": OBLIQUE}


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_round_trip_keeps_voxels_and_geometry(tmp_path, suffix, direction):
    image = make_ct(direction=DIRECTIONS[direction])
    path = write_image_atomic(image, str(tmp_path / f"ct{suffix}"))
    back = read_image(path)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
    assert back.GetSize() == image.GetSize()
    assert np.allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-6)
    assert np.allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    assert np.allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)
    assert back.GetPixelID() == image.GetPixelID()


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_canonical_orientation_round_trip_is_exact(direction):
    image = make_ct(direction=DIRECTIONS[direction])
    canonical = to_canonical(image)
    # The engine's view: axes close to L, P, S (first column points left, etc.).
    d = np.array(canonical.GetDirection()).reshape(3, 3)
    assert np.all(np.diag(d) > 0.9)
    back = from_canonical(canonical, image)
    assert same_grid(back, image)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))


def test_canonical_keeps_physical_positions():
    image = make_ct(direction=RAS)
    canonical = to_canonical(image)
    index = (3, 5, 7)
    point = image.TransformIndexToPhysicalPoint(index)
    same = canonical.TransformPhysicalPointToIndex(point)
    assert canonical[same] == image[index]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(str(tmp_path / "nope.nii.gz"))


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(InputError, match="could not be read"):
        read_image(str(bad))


def test_2d_image_is_refused(tmp_path):
    flat = flat_image(30)
    path = str(tmp_path / "flat.nrrd")
    sitk.WriteImage(flat, path)
    with pytest.raises(InputError, match="not a 3D volume"):
        read_image(path)
    planar = sitk.Image(30, 30, sitk.sitkInt16)
    sitk.WriteImage(planar, str(tmp_path / "planar.nrrd"))
    with pytest.raises(InputError, match="not a 3D volume"):
        read_image(str(tmp_path / "planar.nrrd"))


def test_non_ct_values_are_refused(tmp_path):
    mri = mri_like(800, seed=0)
    path = str(tmp_path / "mri.nii.gz")
    sitk.WriteImage(mri, path)
    with pytest.raises(InputError, match="does not look like a CT"):
        read_image(path)


def test_unknown_extension_is_refused(tmp_path):
    path = tmp_path / "scan.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match="not a supported image file"):
        read_image(str(path))


def test_atomic_write_never_overwrites_without_permission_and_never_an_input(tmp_path):
    image = make_ct()
    path = write_image_atomic(image, str(tmp_path / "a.nrrd"))
    before = open(path, "rb").read()
    with pytest.raises(OutputError, match="already exists"):
        write_image_atomic(image, path)
    with pytest.raises(OutputError, match="input file"):
        write_image_atomic(image, path, overwrite=True, protect=(path,))
    assert open(path, "rb").read() == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".ctadeface-tmp-")]


def test_split_suffix():
    assert split_suffix("/x/case.nii.gz") == ("/x/case", ".nii.gz")
    assert split_suffix("case.NRRD") == ("case", ".NRRD")
    assert split_suffix("case.txt") == ("case.txt", "")
