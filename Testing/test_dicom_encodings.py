"""Unusual and compressed DICOM encodings go through the study pipeline like plain ones.

One small phantom series is written plain (Explicit VR Little Endian, unsigned 12 bits) and re-encoded as RLE
Lossless (pydicom's own encoder), Explicit VR Big Endian, Deflated, and signed 12 bits (PixelRepresentation 1,
BitsStored 12) with negative values both sign-extended and with the unused high bits zero. Each is defaced with
the box engine: the output must hold the same Hounsfield units as the plain series' output (so the same mask was
found and the same fill written), every pixel outside the mask must keep its word bit for bit, the fill must lie
in the BitsStored range, the output must be uncompressed Explicit VR Little Endian, the inputs unchanged and, where
dciodvfy is installed, no file may have an issue its input did not have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from builders import make_synthetic_head
from CTADefaceLib.deid import Deidentifier, DeidOptions
from CTADefaceLib.dicom.discover import discover
from CTADefaceLib.dicom.pixels import deface_slice, rescale, stored_range, stored_values, stored_words
from CTADefaceLib.dicom.study import deface_study
from CTADefaceLib.settings import DefaceSettings
from dicom_study import write_series
from test_dicom_study import DCIODVFY, _issues, tree_hashes

KEY = bytes(range(32))
SERIES_UID = "1.2.826.0.1.3680043.10.543.31"


def _signed(ds, *, extend: bool) -> None:
    """Unsigned 12 bits with intercept -1024 -> signed 12 bits with intercept 0 (same HU)."""
    values = np.frombuffer(ds.PixelData, "<u2").astype(np.int32) - 1024
    words = values.astype("<i2")
    if not extend:
        words = (words.view("<u2") & 0x0FFF).view("<i2")  # negative values with the high 4 bits zero
    ds.PixelRepresentation, ds.RescaleIntercept = 1, "0"
    ds.PixelData = words.tobytes()


def _rle(ds) -> None:
    from pydicom.uid import RLELossless

    ds.compress(RLELossless)


def _big_endian(ds) -> None:
    ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()


ENCODINGS = {
    "rle-lossless": (_rle, None),
    "explicit-big-endian": (_big_endian, "1.2.840.10008.1.2.2"),
    "deflated": (None, "1.2.840.10008.1.2.1.99"),
    "signed-12-bit": (lambda ds: _signed(ds, extend=True), None),
    "signed-12-bit-high-bits-zero": (lambda ds: _signed(ds, extend=False), None),
}


def _hu(ds) -> np.ndarray:
    slope, intercept = rescale(ds)
    return stored_values(ds).astype(np.float64) * slope + intercept


def _deface(folder: str, out: str) -> tuple[dict, list]:
    os.makedirs(out)
    found = discover([folder])
    record = deface_study(
        next(iter(found.studies.values())),
        out,
        DefaceSettings(engine="box", min_face_ml=0),
        Deidentifier(DeidOptions(), KEY),
    )
    assert record["status"] == "done", record
    series = os.path.join(out, record["study"], "001_CT")
    return record, [os.path.join(series, name) for name in sorted(os.listdir(series))]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    root = tmp_path_factory.mktemp("encodings")
    paths = write_series(make_synthetic_head(spacing=8.0).image, str(root / "plain"), SERIES_UID, 1)
    _, outputs = _deface(str(root / "plain"), str(root / "out-plain"))
    return root, paths, [_hu(pydicom.dcmread(p)) for p in outputs]


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_encoding_is_defaced_like_the_plain_series(plain, encoding):
    root, paths, expected_hu = plain
    change, syntax = ENCODINGS[encoding]
    folder = root / encoding
    folder.mkdir()
    for path in paths:
        ds = pydicom.dcmread(path)
        if change:
            change(ds)
        if syntax:
            ds.file_meta.TransferSyntaxUID = syntax
        big = syntax == "1.2.840.10008.1.2.2"
        pydicom.dcmwrite(str(folder / os.path.basename(path)), ds, little_endian=not big, implicit_vr=False)
    inputs = sorted(str(folder / name) for name in os.listdir(folder))
    first = pydicom.dcmread(inputs[0])
    assert first.file_meta.TransferSyntaxUID == (syntax or first.file_meta.TransferSyntaxUID)
    before = tree_hashes(folder)

    _, outputs = _deface(str(folder), str(root / f"out-{encoding}"))

    assert tree_hashes(folder) == before
    assert len(outputs) == len(inputs) == len(expected_hu)
    changed = 0
    for source, output, hu in zip(inputs, outputs, expected_hu):
        ds_in, ds_out = pydicom.dcmread(source), pydicom.dcmread(output)
        assert ds_out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        for name in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
            assert ds_out[name].value == ds_in[name].value, name
        assert np.array_equal(_hu(ds_out), hu)  # the same mask and the same fill as the plain series
        words_in, words_out = stored_words(ds_in), stored_words(ds_out)
        assert words_out.dtype == words_in.dtype
        kept = _hu(ds_out) == _hu(ds_in)
        moved = ~kept
        assert np.array_equal(words_out[kept], words_in[kept])  # every other pixel bit for bit
        low, high = stored_range(ds_in)
        values_out = stored_values(ds_out)
        assert values_out.min() >= low and values_out.max() <= high
        if encoding == "signed-12-bit-high-bits-zero" and moved.any():
            assert not np.any(words_out[moved].view("<u2") & 0xF000)  # the fill follows the slice's convention
        changed += int(moved.sum())
    assert changed > 0
    if DCIODVFY:
        # dciodvfy cannot read every input syntax (deflated): the plain slices count as the input's issues too
        before_issues = set().union(*(_issues(p) for p in (inputs[0], inputs[len(inputs) // 2], *paths[:2])))
        for output in outputs[:: max(1, len(outputs) // 5)]:
            assert not _issues(output) - before_issues, (encoding, output)


def test_jpeg_lossless_test_file_is_defaced_in_stored_values_and_written_uncompressed(tmp_path):
    """pydicom-data's JPEG lossless CT slice: decoded with GDCM, the masked rows filled, the rest kept exactly."""
    from pydicom.data import get_testdata_file

    source = get_testdata_file("JPEG-LL.dcm")
    ds = pydicom.dcmread(source)
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    decoded = stored_words(ds)
    mask = np.zeros(decoded.shape, np.uint8)
    mask[: decoded.shape[0] // 3] = 1
    out, count = deface_slice(pydicom.dcmread(source), mask, -1000.0)
    assert count > 0 and np.array_equal(out[mask == 0], decoded[mask == 0])
    low, high = stored_range(ds)
    assert np.all((out[mask == 1] >= low) & (out[mask == 1] <= high))
    gdcmconv = shutil.which("gdcmconv", path=os.path.dirname(sys.executable))
    if gdcmconv:  # GDCM's own command-line decoder agrees bit for bit
        subprocess.run([gdcmconv, "--raw", source, str(tmp_path / "raw.dcm")], check=True)
        assert np.array_equal(decoded, stored_words(pydicom.dcmread(str(tmp_path / "raw.dcm"))))


def test_unused_high_bits_are_ignored_for_the_values_and_kept_in_the_words():
    ds = pydicom.Dataset()
    ds.Rows, ds.Columns = 1, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    words = np.array([0x0FFB, 0xFFFB, 0x07FF, 0x0800], "<u2")  # -5 unextended, -5 extended, 2047, -2048
    ds.PixelData = words.tobytes()
    assert stored_values(ds).tolist() == [[-5, -5, 2047, -2048]]
    out, count = deface_slice(ds, np.array([[0, 0, 1, 0]]), -1000.0)
    # the slice stores negatives with high bits zero (0x0FFB, 0x0800): the fill -1000 is written the same way
    assert out.view("<u2").tolist() == [[0x0FFB, 0xFFFB, 0x0C18, 0x0800]] and count == 1
    ds.BitsStored, ds.PixelRepresentation = 12, 0
    ds.PixelData = np.array([0x1005, 5, 4095, 0xF000], "<u2").tobytes()  # overlay bits above bit 11
    assert stored_values(ds).tolist() == [[5, 5, 4095, 0]]


@pytest.mark.parametrize(
    "plain, encoded",
    [
        ("MR_small.dcm", "MR_small_bigendian.dcm"),
        ("MR_small.dcm", "MR_small_expb.dcm"),
        ("MR_small.dcm", "MR_small_implicit.dcm"),
        ("MR_small.dcm", "MR_small_RLE.dcm"),
        ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
        ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
        ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm"),  # 8-bit pixels in big-endian 16-bit (OW) words
        ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),
        ("rtdose_1frame.dcm", "rtdose_expb_1frame.dcm"),  # 32 bits
    ],
)
def test_pydicom_test_files_read_the_same_in_every_encoding(plain, encoded):
    from pydicom.data import get_testdata_file

    expected = stored_words(pydicom.dcmread(get_testdata_file(plain)))
    ds = pydicom.dcmread(get_testdata_file(encoded))
    assert np.array_equal(stored_words(ds), expected)
    assert np.array_equal(stored_words(ds), ds.pixel_array)  # pydicom's own reading agrees


def test_a_compressed_slice_no_permissive_decoder_reads_is_refused_in_one_sentence():
    """12-bit JPEG Extended (lossy): GDCM does not decode it and the GPL decoder is not used; the sentence gives
    GDCM's own reason and what to do."""
    from pydicom.data import get_testdata_file

    from CTADefaceLib.errors import InputError

    with pytest.raises(InputError) as caught:
        stored_words(pydicom.dcmread(get_testdata_file("JPGExtended.dcm")))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("A compressed slice (1.2.840.10008.1.2.4.51) could not be")
    assert "12-bit precision" in message and "decompress the series first" in message


@pytest.mark.parametrize("name, lossy", [("JPEGLSNearLossless_16.dcm", True), ("MR_small_jpeg_ls_lossless.dcm", False)])
def test_a_slice_that_came_lossy_keeps_saying_so_when_written_uncompressed(name, lossy):
    from pydicom.data import get_testdata_file

    from CTADefaceLib.dicom.pixels import set_uncompressed_pixels

    ds = pydicom.dcmread(get_testdata_file(name))
    assert "LossyImageCompression" not in ds
    out = Deidentifier(DeidOptions(), KEY).deidentify(ds, defaced=True)
    set_uncompressed_pixels(out, stored_words(ds))
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert out.get("LossyImageCompression") == ("01" if lossy else None)
    assert np.array_equal(stored_words(out), stored_words(ds))
