"""Keyed identifiers: UIDs consistent across series and runs, pseudonyms, one date offset per patient, the key file."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from CTADefaceLib.deid import Deidentifier, DeidOptions, UidMapping, key_inside, load_or_create_key
from CTADefaceLib.deid.keys import default_key_path
from CTADefaceLib.errors import InputError, OutputError
from deid_phi import base_dataset

UID_PATTERN = re.compile(r"2\.25\.(0|[1-9][0-9]*)")
SNOMED = "2.16.840.1.113883.6.96"


def slice_of(series: str, instance: int, referenced: str | None = None, patient: str = "P-1") -> Dataset:
    ds = base_dataset()
    ds.PatientID = patient
    ds.PatientName = "Doe^Jane"
    ds.SeriesInstanceUID = f"1.2.3.4.9000.{series}"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.4.9000.{series}.{instance}"
    ds.StudyDate = "20200115"
    ds.AcquisitionDateTime = "20200115101500"
    if referenced:
        ref = Dataset()
        ref.ReferencedSOPClassUID = CTImageStorage
        ref.ReferencedSOPInstanceUID = referenced
        ds.ReferencedImageSequence = [ref]
    scheme = Dataset()
    scheme.CodingSchemeDesignator = "SCT"
    scheme.CodingSchemeUID = SNOMED
    ds.CodingSchemeIdentificationSequence = [scheme]
    return ds


def test_uids_are_consistent_across_series_and_references_survive():
    deid = Deidentifier(DeidOptions(), b"k" * 32)
    first = deid.deidentify(slice_of("1", 1), defaced=True)
    second = deid.deidentify(slice_of("2", 1, referenced="1.2.3.4.9000.1.1"), defaced=True)
    assert first.StudyInstanceUID == second.StudyInstanceUID != base_dataset().StudyInstanceUID
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID == deid.new_uid(base_dataset().FrameOfReferenceUID)
    assert first.SeriesInstanceUID != second.SeriesInstanceUID
    assert second.ReferencedImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert second.ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    for out in (first, second):
        assert out.SOPClassUID == out.file_meta.MediaStorageSOPClassUID == CTImageStorage
        assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        assert out.CodingSchemeIdentificationSequence[0].CodingSchemeUID == SNOMED
        for uid in (out.StudyInstanceUID, out.SeriesInstanceUID, out.SOPInstanceUID, out.FrameOfReferenceUID):
            assert UID_PATTERN.fullmatch(uid) and len(uid) <= 64 and int(uid[5:]) < 2**128
            assert pydicom.uid.UID(uid).is_valid


def test_same_key_same_uids_in_another_run_and_another_key_differs(tmp_path):
    key_file = str(tmp_path / "config" / "deid-key")
    script = (
        "import json, sys\n"
        "from CTADefaceLib.deid import Deidentifier, DeidOptions, load_or_create_key\n"
        "d = Deidentifier(DeidOptions(), load_or_create_key(sys.argv[1]))\n"
        "print(json.dumps([d.new_uid('1.2.3.4.5'), d.pseudonym('P-1'), d.date_shift_days('P-1')]))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    runs = [
        json.loads(subprocess.run([sys.executable, "-c", script, key_file], capture_output=True, text=True,
                                  env=env, check=True).stdout)
        for _ in range(2)
    ]  # fmt: skip
    assert runs[0] == runs[1]
    here = Deidentifier(DeidOptions(), load_or_create_key(key_file))
    assert [here.new_uid("1.2.3.4.5"), here.pseudonym("P-1"), here.date_shift_days("P-1")] == runs[0]
    other = Deidentifier(DeidOptions(), b"\x01" * 32)
    assert other.new_uid("1.2.3.4.5") != runs[0][0]
    assert other.pseudonym("P-1") != runs[0][1]


def test_well_known_uids_are_never_mapped():
    deid = Deidentifier(DeidOptions(), b"k" * 32)
    for uid in (CTImageStorage, ExplicitVRLittleEndian, "1.2.840.10008.1.2.4.70", "1.2.840.10008.99.99"):
        assert deid.new_uid(uid) == uid
    assert deid.new_uid("1.2.3") != "1.2.3"
    assert deid.new_uid(" 1.2.3\x00") == deid.new_uid("1.2.3")


def test_pseudonym_and_date_shift_are_per_patient():
    deid = Deidentifier(DeidOptions(retain_longitudinal_modified_dates=True), b"k" * 32)
    a1 = deid.deidentify(slice_of("1", 1, patient="P-1"), defaced=True)
    a2 = deid.deidentify(slice_of("2", 1, patient="P-1"), defaced=True)
    b = deid.deidentify(slice_of("3", 1, patient="P-2"), defaced=True)
    assert a1.PatientID == a2.PatientID == a1.PatientName.family_name == deid.pseudonym("P-1")
    assert b.PatientID == deid.pseudonym("P-2") != a1.PatientID
    assert a1.StudyDate == a2.StudyDate != "20200115"
    shift = deid.date_shift_days("P-1")
    assert -3650 <= shift <= -365
    import datetime

    expected = datetime.date(2020, 1, 15) + datetime.timedelta(days=shift)
    assert a1.StudyDate == expected.strftime("%Y%m%d")
    assert a1.AcquisitionDateTime == expected.strftime("%Y%m%d") + "101500"
    assert a1.AnatomicRegionSequence[0].ContextGroupVersion == "20020904000000"
    shifts = {deid.date_shift_days(f"P-{i}") for i in range(50)}
    assert len(shifts) > 40  # spread over patients, not one constant


def test_the_issuer_of_the_patient_id_does_not_split_a_patient():
    """The pseudonym and the date offset key on Patient ID alone: two series of one study, one naming the issuer
    of the ID and one not, stay one patient with one study."""
    deid = Deidentifier(DeidOptions(retain_longitudinal_modified_dates=True), b"k" * 32)
    with_issuer = slice_of("1", 1)
    with_issuer.IssuerOfPatientID = "HOSPITAL-A"
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = "HOSPITAL-A"
    with_issuer.IssuerOfPatientIDQualifiersSequence = [issuer]
    first = deid.deidentify(with_issuer, defaced=True)
    second = deid.deidentify(slice_of("2", 1), defaced=True)
    assert first.PatientID == second.PatientID == deid.pseudonym("P-1")
    assert first.PatientName == second.PatientName
    assert first.StudyDate == second.StudyDate != "20200115"
    assert first.AcquisitionDateTime == second.AcquisitionDateTime
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.SeriesInstanceUID != second.SeriesInstanceUID


@pytest.mark.parametrize(
    "value, vr, expected",
    [
        ("20200115", "DA", "20200105"),
        ("2020.01.15", "DA", "20200105"),
        ("202001", "DA", "201912"),
        ("2020", "DA", "2019"),
        ("20200115101500.123456+0100", "DT", "20200105101500.123456+0100"),
        ("2020", "DT", "2019"),
        ("101500.5", "TM", "101500.5"),
        ("10:15:00", "TM", "10:15:00"),
        ("", "DA", ""),
        ("20201340", "DA", None),
        ("yesterday", "DA", None),
        ("2020-01-15", "DA", None),
        ("25:00", "TM", None),
    ],
)
def test_date_formats_and_garbage(value, vr, expected):
    from CTADefaceLib.deid.dates import shift_value

    assert shift_value(value, vr, -10) == expected


def test_unparseable_date_is_removed_not_kept():
    deid = Deidentifier(DeidOptions(retain_longitudinal_modified_dates=True), b"k" * 32)
    ds = slice_of("1", 1)
    ds.StudyDate = "15/01/2020"
    ds.SeriesDate = ["20200115", "garbage"]
    out = deid.deidentify(ds, defaced=False)
    assert "StudyDate" not in out and "SeriesDate" not in out


def test_key_file_created_private_reused_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = default_key_path()
    assert path == str(tmp_path / "xdg" / "ctadeface" / "deid-key")
    key = load_or_create_key()
    assert len(key) == 32 and os.path.isfile(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert os.listdir(os.path.dirname(path)) == ["deid-key"]  # no temporary left behind
    os.chmod(path, 0o644)
    with pytest.raises(InputError, match="can be read by other users"):
        load_or_create_key(path)
    short = tmp_path / "short-key"
    short.write_text("abcd\n")
    short.chmod(0o600)
    with pytest.raises(InputError, match="not a key"):
        load_or_create_key(str(short))
    assert key_inside(str(tmp_path), path)
    assert not key_inside(str(tmp_path / "out"), path)
    assert key_inside(str(tmp_path / "xdg"), str(tmp_path / "xdg" / "ctadeface" / ".." / "ctadeface" / "deid-key"))


def test_unreadable_key_is_a_clean_error(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(InputError, match="cannot be read"):
        load_or_create_key(str(folder))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot be created"):
        load_or_create_key(str(blocker / "deid-key"))


def test_mapping_records_uids_and_patients_and_writes_privately(tmp_path):
    mapping = UidMapping()
    deid = Deidentifier(DeidOptions(), b"k" * 32, mapping=mapping)
    out = deid.deidentify(slice_of("1", 1), defaced=True)
    pairs = mapping.as_dict()
    assert pairs["uid"]["1.2.3.4.9000.1.1"] == out.SOPInstanceUID
    assert pairs["patient"]["P-1"] == out.PatientID
    assert CTImageStorage not in pairs["uid"]
    json_path, csv_path = tmp_path / "map.json", tmp_path / "map.csv"
    mapping.write(str(json_path))
    mapping.write(str(csv_path))
    assert json.loads(json_path.read_text()) == pairs
    assert "uid,1.2.3.4.9000.1.1," + out.SOPInstanceUID in csv_path.read_text()
    for path in (json_path, csv_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # beside the tables only their (empty, private) lock files: no temporary file is left
    assert sorted(os.listdir(tmp_path)) == [".map.csv.lock", ".map.json.lock", "map.csv", "map.json"]
    with pytest.raises(OutputError):
        mapping.write(str(tmp_path / "missing-folder" / "map.json"))


def test_a_later_run_adds_its_rows_and_other_files_are_never_overwritten(tmp_path):
    for name in ("map.json", "map.csv"):
        path = str(tmp_path / name)
        first, second = UidMapping(), UidMapping()
        first.record("uid", "1.2.3", "2.25.1")
        first.record("patient", "P-1", "CTAD-1")
        second.record("uid", "1.2.4", "2.25.2")
        second.record("uid", "1.2.3", "2.25.1")  # the same pair again (a rerun): no conflict, no duplicate
        first.write(path)
        second.write(path)
        merged = UidMapping()
        merged.record("uid", "1.2.3", "2.25.1")
        merged.record("uid", "1.2.4", "2.25.2")
        merged.record("patient", "P-1", "CTAD-1")
        expected = tmp_path / f"expected-{name}"
        merged.write(str(expected))
        assert (tmp_path / name).read_text() == expected.read_text()
        with open(path, "rb") as handle:
            before = handle.read()
        other_key = UidMapping()
        other_key.record("uid", "1.2.3", "2.25.999")
        with pytest.raises(OutputError, match="another key"):
            other_key.write(path)
        with open(path, "rb") as handle:
            assert handle.read() == before
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    notes = tmp_path / "notes.json"
    notes.write_text('{"patients": ["Doe^Jane"]}')
    for path, text in ((notes, notes.read_text()), (tmp_path / "list.csv", "a,b\n1,2\n")):
        path.write_text(text)
        with pytest.raises(OutputError, match="not a mapping file"):
            UidMapping.check(str(path))
        with pytest.raises(OutputError, match="not a mapping file"):
            first.write(str(path))
        assert path.read_text() == text


_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from CTADefaceLib.deid.mapping import UidMapping
path, who, start = sys.argv[2], sys.argv[3], float(sys.argv[4])
while time.time() < start:
    pass
for k in range(40):
    mapping = UidMapping()
    mapping.record("uid", f"1.2.{who}.{k}", f"2.25.{who}{k}")
    mapping.write(path)
"""


@pytest.mark.parametrize("name", ["map.json", "map.csv"])
def test_two_runs_writing_one_mapping_file_at_once_lose_no_row(tmp_path, name):
    import time

    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "CTADeface")
    path = str(tmp_path / name)
    start = time.time() + 1.0  # both processes begin writing at the same moment
    runs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, lib, path, who, str(start)], stderr=subprocess.PIPE)
        for who in ("7", "8")
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
    pairs = {}
    if name.endswith(".csv"):
        rows = [line.split(",") for line in open(path, encoding="utf-8").read().splitlines()[1:]]
        pairs = {original: new for kind, original, new in rows if kind == "uid"}
    else:
        pairs = json.loads(open(path, encoding="utf-8").read())["uid"]
    expected = {f"1.2.{who}.{k}": f"2.25.{who}{k}" for who in ("7", "8") for k in range(40)}
    assert pairs == expected, f"{len(expected) - len(set(expected) & set(pairs))} rows lost"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == [f".{name}.lock", name]


def test_no_mapping_is_kept_unless_asked():
    deid = Deidentifier(DeidOptions(), b"k" * 32)
    deid.deidentify(slice_of("1", 1), defaced=True)
    assert deid.mapping is None


def test_short_key_refused():
    with pytest.raises(InputError):
        Deidentifier(DeidOptions(), b"short")
