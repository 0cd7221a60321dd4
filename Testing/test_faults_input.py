"""Hostile inputs: cut-off files, DICOM series with a lost slice, absurd geometry, NaN voxels, bad options.

Every bad input is built for real (SimpleITK/GDCM writes it, then it is cut or corrupted on disk) and
must be refused with one sentence, a non-zero exit, its bytes unchanged and no output written.
"""

import json
import logging
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from builders import image_from_array, make_ct
from CTADefaceLib.errors import DefaceError, InputError
from CTADefaceLib.fill import fill_value, parse_fill
from CTADefaceLib.io.dicom import chosen_series
from CTADefaceLib.io.volume import MAX_SPACING_MM, MAX_VOXELS_PER_AXIS, MIN_SPACING_MM, input_digest, read_image
from CTADefaceLib.mask import postprocess
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom
from helpers import ctadeface, sha256
from helpers import one_sentence as assert_one_clear_sentence
from test_io_dicom import write_dicom_series


def folder_digests(folder):
    return {n: sha256(os.path.join(folder, n)) for n in sorted(os.listdir(folder))}


def cli_refuses(input_path, out, *extra, expect):
    """Run `ctadeface deface` on one bad input: exit 1, one FAILED line naming the problem, nothing written."""
    result = ctadeface("deface", str(input_path), "-o", str(out), "--engine", "box", "--no-progress", *extra)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and expect in failed[0], result.stdout
    assert not os.path.exists(out) or os.listdir(out) == [], os.listdir(out)
    return failed[0]


def cut(path, fraction):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * fraction)])


@pytest.fixture(scope="module")
def head():
    """A small phantom head (the box engine finds its face): the good input the faults start from."""
    return make_phantom(PhantomSpec.random(8001, size="small")).image


# ---------------------------------------------------------------- truncated / corrupt files
def test_truncated_nii_gz_is_refused_not_filled_with_zeros(tmp_path):
    path = tmp_path / "cut.nii.gz"
    sitk.WriteImage(make_ct(), str(path), useCompression=True)
    cut(path, 0.6)
    before = sha256(path)
    # What used to happen: SimpleITK reads it without complaint, the missing part filled with zeros.
    assert sitk.ReadImage(str(path)).GetSize() == make_ct().GetSize()
    with pytest.raises(InputError, match="incomplete or damaged"):
        read_image(str(path))
    line = cli_refuses(path, tmp_path / "out", expect="incomplete or damaged")
    assert "copy it again" in line
    assert sha256(path) == before


def test_truncated_plain_nii_is_refused(tmp_path):
    path = tmp_path / "cut.nii"
    sitk.WriteImage(make_ct(), str(path))
    cut(path, 0.7)
    before = sha256(path)
    with pytest.raises(InputError, match=r"incomplete: its header describes \d+ bytes of data but the file holds"):
        read_image(str(path))
    cli_refuses(path, tmp_path / "out", expect="incomplete")
    assert sha256(path) == before


def test_corrupt_gzip_stream_is_refused(tmp_path):
    """A damaged gzip stream (here its CRC) is refused, whichever check sees it first."""
    path = tmp_path / "flipped.nii.gz"
    sitk.WriteImage(make_ct(), str(path), useCompression=True)
    data = bytearray(open(path, "rb").read())
    data[-8] ^= 0xFF  # the stream's CRC32
    open(path, "wb").write(bytes(data))
    with pytest.raises(InputError, match="incomplete or damaged|could not be read"):
        read_image(str(path))


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("compressed", [True, False])
def test_truncated_nrrd_and_mha_are_refused(tmp_path, suffix, compressed):
    path = tmp_path / f"cut{suffix}"
    sitk.WriteImage(make_ct(), str(path), useCompression=compressed)
    cut(path, 0.7)
    before = sha256(path)
    with pytest.raises(InputError, match="could not be read"):
        read_image(str(path))
    assert sha256(path) == before


def test_intact_files_still_read(tmp_path):
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        path = str(tmp_path / f"ok{suffix}")
        sitk.WriteImage(make_ct(), path, useCompression=True)
        assert np.array_equal(sitk.GetArrayFromImage(read_image(path)), sitk.GetArrayFromImage(make_ct()))


# ---------------------------------------------------------------- DICOM series with a lost slice
@pytest.fixture
def series(tmp_path):
    image = make_ct(size=(32, 28, 12), spacing=(0.8, 0.8, 2.0), origin=(-10.0, 20.0, 30.0))
    folder = str(tmp_path / "series")
    write_dicom_series(image, folder)
    return folder


def test_dicom_series_with_a_removed_slice_is_refused(series, tmp_path):
    os.remove(os.path.join(series, "slice005.dcm"))
    before = folder_digests(series)
    # What used to happen: 11 slices stacked with an averaged 2.2 mm spacing.
    with pytest.raises(InputError, match=r"irregular slice positions \(steps from 2 to 4 mm\)"):
        read_image(series)
    cli_refuses(series, tmp_path / "out", expect="a slice is missing")
    assert folder_digests(series) == before


@pytest.mark.parametrize("damage", ["garbage", "truncated_middle", "truncated_last"])
def test_dicom_series_with_an_unreadable_slice_is_refused(series, tmp_path, damage):
    name = "slice011.dcm" if damage == "truncated_last" else "slice005.dcm"
    path = os.path.join(series, name)
    data = open(path, "rb").read()
    if damage == "garbage":
        data = data[:132] + bytes(np.random.default_rng(0).integers(0, 256, len(data) - 132, dtype=np.uint8))
    else:
        data = data[: 400 if damage == "truncated_last" else len(data) // 2]
    open(path, "wb").write(data)
    before = folder_digests(series)
    with pytest.raises(InputError, match=r"1 DICOM file\(s\) in .* could not be read \(first: slice0(05|11)\.dcm\)"):
        read_image(series)
    if damage == "truncated_last":  # no gap in positions betrays this one: only the unread file does
        cli_refuses(series, tmp_path / "out", expect="could not be read")
    assert folder_digests(series) == before


def test_dicom_series_with_two_slices_at_one_position_is_refused(tmp_path):
    image = make_ct(size=(32, 28, 12), spacing=(0.8, 0.8, 2.0))
    folder = str(tmp_path / "dup")
    write_dicom_series(image, folder)
    # a slice written twice under another SOP instance: same position
    reader = sitk.ImageFileReader()
    reader.SetFileName(os.path.join(folder, "slice004.dcm"))
    piece = reader.Execute()
    piece.SetMetaData("0008|0018", "1.2.826.0.1.3680043.2.1125.1.999")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(os.path.join(folder, "slice004b.dcm"))
    writer.Execute(piece)
    with pytest.raises(InputError, match="two slices at the same position|irregular slice positions"):
        read_image(folder)


def test_two_series_choose_the_largest_with_a_warning_and_digest_covers_its_files(tmp_path, caplog):
    folder = tmp_path / "two"
    write_dicom_series(make_ct(size=(32, 28, 12), spacing=(0.8, 0.8, 2.0)), str(folder))
    small = make_ct(size=(32, 28, 4), spacing=(0.8, 0.8, 2.0), seed=3)
    other = tmp_path / "other"
    write_dicom_series(small, str(other))
    for name in os.listdir(other):  # same writer, other series UID
        path = other / name
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        piece = reader.Execute()
        piece.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.777")
        piece.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.2.1125.1.777.{name[5:8]}")
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"b_{name}"))
        writer.Execute(piece)
    with caplog.at_level(logging.WARNING, logger="CTADefaceLib.io.dicom"):
        uid, files, count = chosen_series(str(folder))
    assert count == 2 and len(files) == 12 and uid == "1.2.826.0.1.3680043.2.1125.1.424242"
    assert (
        "holds 2 DICOM series; using 1.2.826.0.1.3680043.2.1125.1.424242 (12 files) and ignoring the other 1"
        in caplog.text
    )
    assert read_image(str(folder)).GetSize() == (32, 28, 12)

    first = input_digest(str(folder))
    assert first is not None and len(first) == 64
    # the same slices elsewhere give the same digest; a changed used slice changes it; an ignored one does not
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert input_digest(str(copy)) == first
    with open(copy / "b_slice001.dcm", "ab") as handle:
        handle.write(b"\0\0")
    assert input_digest(str(copy)) == first
    with open(copy / "slice001.dcm", "ab") as handle:
        handle.write(b"\0\0")
    assert input_digest(str(copy)) != first


def test_dicom_folder_sidecar_records_a_digest_through_the_cli(head, tmp_path):
    folder = tmp_path / "head"
    write_dicom_series(head, str(folder))
    out = tmp_path / "out"
    # DICOM input gives DICOM output by default; the NIfTI path stays one option away ("nii.gz" or ".nii.gz")
    result = ctadeface("deface", str(folder), "-o", str(out), "--engine", "box", "--no-progress", "--format", "nii.gz")
    assert result.returncode == 0, result.stdout + result.stderr
    sidecar = json.load(open(out / "head_deface.json"))
    assert sidecar["input"]["sha256"] == input_digest(str(folder))


# ---------------------------------------------------------------- absurd geometry, NaN voxels
@pytest.mark.parametrize("spacing", [100.0, 0.01])
def test_absurd_spacing_is_refused_naming_value_and_range(tmp_path, spacing):
    image = make_ct()
    image.SetSpacing((0.8, 0.8, spacing))
    path = tmp_path / "odd.nrrd"
    sitk.WriteImage(image, str(path))
    before = sha256(path)
    expected = f"spacing of {spacing:g} mm along z, outside the {MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm"
    with pytest.raises(InputError, match=expected):
        read_image(str(path))
    cli_refuses(path, tmp_path / "out", expect=expected)
    assert sha256(path) == before


def test_absurd_size_is_refused_from_the_header_before_reading_voxels(tmp_path):
    """A detached NRRD header claiming 4000^3 voxels (128 GB) over a tiny data file: refused at once."""
    (tmp_path / "huge.raw").write_bytes(b"\0" * 1000)
    (tmp_path / "huge.nhdr").write_text(
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 4000 4000 4000\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1)\nkinds: domain domain domain\nendian: little\n"
        "encoding: raw\nspace origin: (0,0,0)\ndata file: huge.raw\n"
    )
    with pytest.raises(InputError, match=f"4000 voxels along x, more than the {MAX_VOXELS_PER_AXIS}"):
        read_image(str(tmp_path / "huge.nhdr"))
    (tmp_path / "big.nhdr").write_text((tmp_path / "huge.nhdr").read_text().replace("4000 4000 4000", "2000 2000 2000"))
    with pytest.raises(InputError, match=r"8000000000 voxels \(2000x2000x2000\), more than"):
        read_image(str(tmp_path / "big.nhdr"))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels_in_nifti_are_refused(tmp_path, bad):
    array = sitk.GetArrayFromImage(make_ct(pixel=sitk.sitkFloat32))
    array[5, 5:8, 5:8] = bad
    image = image_from_array(array, spacing=(0.8, 0.9, 1.5))
    path = tmp_path / "float.nii.gz"
    sitk.WriteImage(image, str(path))
    before = sha256(path)
    # What used to happen: ITK's NIfTI reader turns them into 0 without a word.
    assert np.all(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[5, 5:8, 5:8] == 0)
    with pytest.raises(InputError, match="has 9 voxels that are not numbers"):
        read_image(str(path))
    cli_refuses(path, tmp_path / "out", expect="not numbers (NaN or infinite)")
    assert sha256(path) == before


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii"])
def test_nan_voxels_in_other_formats_are_refused(tmp_path, suffix):
    array = sitk.GetArrayFromImage(make_ct(pixel=sitk.sitkFloat64))
    array[3, 3, 3:5] = [np.nan, -np.inf]
    path = str(tmp_path / f"float{suffix}")
    sitk.WriteImage(sitk.GetImageFromArray(array), path)
    with pytest.raises(InputError, match="has 2 voxels that are not numbers"):
        read_image(path)


# ---------------------------------------------------------------- fill and margin options
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", float("nan"), float("inf")])
def test_non_finite_fill_is_refused(text):
    with pytest.raises(DefaceError, match="--fill must be p10, air or a finite number in HU"):
        parse_fill(text)


def test_fill_percentile_of_an_image_with_nan_is_refused():
    array = sitk.GetArrayFromImage(make_ct(pixel=sitk.sitkFloat32))
    array[: array.shape[0] // 2] = np.nan  # half the image: the 10th percentile is NaN
    with pytest.raises(DefaceError, match="10th percentile is not a finite number"):
        fill_value(sitk.GetImageFromArray(array), "p10")
    assert np.isfinite(fill_value(make_ct(), "p10")) and parse_fill("-1000") == -1000.0


def test_non_finite_fill_and_negative_margin_are_one_sentence_at_the_cli(tmp_path):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(make_ct(), str(path))
    for args, expect in (
        (("--fill", "nan"), "finite number"),
        (("--fill", "inf"), "finite number"),
        (("--margin-mm", "-3"), "--margin-mm must be zero or a positive number"),
    ):
        result = ctadeface("deface", str(path), "-o", str(tmp_path / "out"), "--engine", "box", *args)
        assert result.returncode == 2, result.stderr
        assert expect in assert_one_clear_sentence(result)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("margin", [-3.0, float("nan"), float("-inf")])
def test_negative_margin_is_refused_by_postprocess(margin):
    mask = sitk.Image(10, 10, 10, sitk.sitkUInt8)
    mask[5, 5, 5] = 1
    with pytest.raises(DefaceError, match="--margin-mm must be zero or a positive number"):
        postprocess(mask, margin_mm=margin)
    grown = postprocess(mask, margin_mm=2.0)
    assert sitk.GetArrayViewFromImage(grown).sum() > 1
