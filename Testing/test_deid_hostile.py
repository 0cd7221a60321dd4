"""Hostile headers: wrong VRs, garbage values, deep and wide sequences. No crash, nothing identifying left."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset

from CTADefaceLib.deid import Deidentifier, DeidOptions
from CTADefaceLib.deid.deidentifier import MAX_DEPTH
from deid_phi import base_dataset, written_bytes

ALL_OPTIONS = DeidOptions(True, True, True, True, True)


def reread(ds: Dataset) -> Dataset:
    """Write and read back, so that elements arrive as a real file's undecoded raw elements."""
    return pydicom.dcmread(io.BytesIO(written_bytes(ds)))


@pytest.mark.parametrize("options", [DeidOptions(), ALL_OPTIONS], ids=["basic", "all-options"])
def test_wrong_vrs_and_garbage_values_are_removed_or_replaced(options):
    ds = base_dataset()
    ds.add_new(0x00100010, "US", 4711)  # Patient's Name stored as a number
    ds.add_new(0x00080020, "UL", 20200115)  # Study Date as a number
    ds.add_new(0x00080021, "DA", "not a date")  # Series Date: garbage
    ds.add_new(0x00080022, "DA", "\\".join(["20200115"] * 3))  # Acquisition Date: multi-valued
    ds.add_new(0x00081030, "LO", "PHI-STUDY-DESCRIPTION")
    ds.add_new(0x00200052, "OB", b"\xff\xfe PHI-UID-BYTES \x00")  # Frame of Reference UID as bytes
    ds.add_new(0x0020000E, "UI", "1." + "9" * 200)  # an overlong Series Instance UID
    ds.add_new(0x00081140, "LO", "PHI-NOT-A-SEQUENCE")  # Referenced Image Sequence as text
    ds.add_new(0x00091010, "LO", "PHI-PRIVATE")
    ds.PatientID = b"PHI-\xff\xfe-ID".decode("latin-1")
    raw = reread(ds)
    before = written_bytes(raw)
    deid = Deidentifier(options, b"k" * 32)
    out = deid.deidentify(raw, defaced=True)
    assert written_bytes(raw) == before
    data = written_bytes(out)
    assert b"PHI" not in data.replace(b"PHI-STUDY-DESCRIPTION", b"") or not options.clean_descriptors
    if not options.clean_descriptors:
        assert b"PHI" not in data
    assert out.PatientName.family_name == deid.pseudonym(ds.PatientID) and out["PatientName"].VR == "PN"
    assert out.FrameOfReferenceUID.startswith("2.25.") and out["FrameOfReferenceUID"].VR == "UI"
    assert len(out.SeriesInstanceUID) <= 64
    if options.retain_longitudinal_modified_dates:
        assert "SeriesDate" not in out  # garbage that cannot be shifted is removed, never passed through
        assert len(out.AcquisitionDate) == 3 and "20200115" not in out.AcquisitionDate
        assert "StudyDate" not in out  # a number is not a date
    pydicom.dcmread(io.BytesIO(data))  # the result is readable DICOM


def nested(depth: int) -> Dataset:
    ds = base_dataset()
    item = ds
    for level in range(depth):
        child = Dataset()
        child.PatientName = f"PHI-LEVEL-{level}"
        child.ReferencedSOPInstanceUID = f"1.2.3.4.{level}"
        item.ReferencedImageSequence = [child]
        item = child
    return ds


def test_deep_nesting_does_not_crash_and_too_deep_is_removed():
    ds = reread(nested(MAX_DEPTH * 4))
    out = Deidentifier(DeidOptions(), b"k" * 32).deidentify(ds, defaced=False)
    depth, item = 0, out
    while "ReferencedImageSequence" in item and len(item.ReferencedImageSequence):
        item = item.ReferencedImageSequence[0]
        depth += 1
        assert "PHI" not in str(item.PatientName)
    assert depth == MAX_DEPTH
    assert b"PHI" not in written_bytes(out) and b"1.2.3.4." not in written_bytes(out)


def test_wide_sequence():
    ds = base_dataset()
    items = []
    for n in range(3000):
        item = Dataset()
        item.ReferencedSOPInstanceUID = f"1.2.3.4.{n}"
        item.PatientName = f"PHI{n}"
        items.append(item)
    ds.SourceImageSequence = items
    out = Deidentifier(DeidOptions(), b"k" * 32).deidentify(reread(ds), defaced=False)
    assert len(out.SourceImageSequence) == 3000
    assert len({i.ReferencedSOPInstanceUID for i in out.SourceImageSequence}) == 3000
    assert b"PHI" not in written_bytes(out)


def test_implicit_vr_input_is_written_correctly_as_explicit():
    """Raw elements carried over from an implicit-VR file must be written right in another transfer syntax."""
    ds = base_dataset()
    ds.StudyDescription = "Head"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    buffer = io.BytesIO()
    if pydicom.__version__.startswith("2."):
        ds.is_little_endian, ds.is_implicit_VR = True, True
        pydicom.dcmwrite(buffer, ds, write_like_original=False)
    else:
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    source = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    out = Deidentifier(DeidOptions(retain_device_identity=True), b"k" * 32).deidentify(source, defaced=True)
    out.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    again = pydicom.dcmread(io.BytesIO(written_bytes(out)))
    assert again.Rows == 2 and again.PixelData == ds.PixelData and again.Modality == "CT"
    assert again["Rows"].VR == "US" and again.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_elements_outside_the_dictionary_or_of_unknown_type_are_removed():
    """A hostile file hides a name and the original study UID in a public element DICOM does not define and in an
    element of unknown type (UN): neither reaches the output (a reviewer found both passed through)."""
    from pydicom.dataelem import DataElement

    ds = base_dataset()
    study_uid = str(ds.StudyInstanceUID)
    ds.add(DataElement(0x00449999, "UN", b"ZZLEAKZZ " + study_uid.encode()))
    ds.add(DataElement(0x00449998, "LO", "ZZLEAKZZ Doe"))
    out = Deidentifier(DeidOptions(), bytes(range(32))).deidentify(ds, defaced=True)
    assert 0x00449999 not in out and 0x00449998 not in out
    data = written_bytes(out)
    assert b"ZZLEAKZZ" not in data and study_uid.encode() not in data
