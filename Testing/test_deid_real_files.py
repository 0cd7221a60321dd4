"""Real CT files (pydicom's CT_small.dcm, deid-data's head CT): identity gone, inputs untouched, output writable."""

from __future__ import annotations

import hashlib
import io
import os

import pydicom
import pytest
from pydicom.data import get_testdata_file

from CTADefaceLib.deid import Deidentifier, DeidOptions, table
from deid_phi import written_bytes

KEY = b"real-file-test-key-0123456789abc"


def deid_data_file(name: str) -> str:
    deid_data = pytest.importorskip("deid_data")
    return os.path.join(os.path.dirname(deid_data.__file__), "data", "humans", name)


TEXT = ("AE", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UT")


def identifying_strings(ds) -> set:
    """The words (4+ characters) of every text attribute the Basic Profile removes or replaces, at any depth,
    less the words that also occur in attributes the table does not list (e.g. 'BRAIN' in a procedure code)."""
    rules = table.rules_for(frozenset())
    found, kept = set(), set()
    for elem in ds.iterall():
        if elem.VR not in TEXT:
            continue
        values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
        words = {p for v in values for p in str(v).replace("^", " ").split() if len(p) >= 4}
        if elem.tag.is_private or rules.action(int(elem.tag)) is None:
            kept |= words
        elif rules.action(int(elem.tag)) not in ("K", "C"):
            found |= words
    return found - kept


@pytest.mark.parametrize("path", [get_testdata_file("CT_small.dcm"), "deid:ctbrain1.dcm"])
def test_real_ct_header_leaves_no_identity_and_keeps_the_image(path):
    if path.startswith("deid:"):
        path = deid_data_file(path[5:])
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    ds = pydicom.dcmread(path)
    secrets = identifying_strings(ds)
    assert secrets  # the files do carry names, IDs, dates and places
    # Instance UIDs; class UIDs (even a vendor's private SOP class) name a kind of object, not a patient's.
    original_uids = {str(e.value) for e in ds.iterall() if e.VR == "UI" and not e.keyword.endswith("ClassUID")}
    out = Deidentifier(DeidOptions(), KEY).deidentify(ds, defaced=True)
    data = written_bytes(out)
    for secret in secrets:
        assert secret.encode() not in data, secret
    for uid in original_uids:
        if not uid.startswith("1.2.840.10008."):
            assert uid.encode() not in data, uid
    assert not [e for e in out.iterall() if e.tag.is_private]
    again = pydicom.dcmread(io.BytesIO(data))
    assert again.PixelData == ds.PixelData
    for keyword in ("Rows", "Columns", "BitsStored", "RescaleSlope", "RescaleIntercept", "ImagePositionPatient",
                    "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SOPClassUID"):  # fmt: skip
        assert again[keyword].value == ds[keyword].value, keyword
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == digest


def test_changing_the_output_never_changes_the_input():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.pixel_array  # noqa: B018 - decodes PixelData, so the input holds decoded elements, not raw ones
    ds.ImageType  # noqa: B018
    before = written_bytes(ds)
    out = Deidentifier(DeidOptions(retain_device_identity=True), KEY).deidentify(ds, defaced=True)
    out.PixelData = b"\x00" * len(ds.PixelData)
    out.Rows = 1
    out.ImageType[1] = "SECONDARY"
    out.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    assert written_bytes(ds) == before
    assert ds.ImageType[0] == "ORIGINAL" and ds.Rows == 128


def test_series_of_real_slices_share_study_series_and_frame_uids():
    deid = Deidentifier(DeidOptions(), KEY)
    outs = [deid.deidentify(pydicom.dcmread(deid_data_file(n)), defaced=True) for n in ("ctbrain1.dcm", "ctbrain2.dcm")]
    assert outs[0].StudyInstanceUID == outs[1].StudyInstanceUID
    assert outs[0].FrameOfReferenceUID == outs[1].FrameOfReferenceUID
    assert outs[0].PatientID == outs[1].PatientID
