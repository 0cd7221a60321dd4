"""PS3.15 Table E.1-1, row by row: identifying data in every listed attribute, checked after de-identification."""

from __future__ import annotations

import datetime
import json

import pydicom
import pytest
from pydicom.sr.codedict import codes

from CTADefaceLib.deid import Deidentifier, DeidOptions, all_option_names, table
from CTADefaceLib.errors import InputError
from deid_phi import PATIENT_ID, phi_dataset, written_bytes

KEY = bytes(range(32))
EMPTY = (None, "", b"", [])
with open(table.FIXED_DATES_FILE, encoding="utf-8") as _handle:
    FIXED_DATES = {int(r["tag"], 16) for r in json.load(_handle)["rows"]}


BASIC = DeidOptions()


def deidentify(options=BASIC, defaced=True):
    ds, placed = phi_dataset()
    before = written_bytes(ds)
    deid = Deidentifier(options, KEY)
    out = deid.deidentify(ds, defaced=defaced)
    assert written_bytes(ds) == before, "the input dataset was changed"
    return deid, ds, out, placed


def is_empty(value) -> bool:
    return value in EMPTY or (hasattr(value, "__len__") and len(value) == 0)


def expected_shift(value: str, vr: str, days: int) -> str:
    day = datetime.datetime.strptime(value[:8], "%Y%m%d").date() + datetime.timedelta(days=days)
    return day.strftime("%Y%m%d") + value[8:]


def check_row(deid, out, tag, row, vr, original, columns):
    action = table.row_action(row, frozenset(columns))
    if action == "C" and "retain-dates" in columns and tag in FIXED_DATES:
        action = "K"  # a public version date: shifting it would give the offset away
    where = f"{row.name} {row.tag} ({row.basic} -> {action})"
    if action == "X":
        assert tag not in out, where
        return
    assert tag in out, where
    value = out[tag].value
    if vr == "SQ":
        if action == "Z":
            assert len(value) == 0, where
        else:
            assert len(value) == 1, where
            item = value[0]
            assert "PHI" not in str(item.get("PatientName", "")), where
            assert item.ReferencedSOPInstanceUID == deid.new_uid(original[0].ReferencedSOPInstanceUID), where
            assert item.ReferencedSOPClassUID == pydicom.uid.CTImageStorage, where
        return
    pseudonym = deid.pseudonym(PATIENT_ID)
    if row.name == "Patient ID":
        assert str(value) == pseudonym, where
    elif row.name == "Patient's Name":  # one name component, "family^", the form validators accept
        assert str(value) == pseudonym + "^", where
    elif action == "Z":
        assert is_empty(value), where
    elif action == "D":
        assert not is_empty(value) or vr in ("OB", "OW", "UN", "AT"), where
        assert value != original, where
        if vr == "UI":
            assert value == deid.new_uid(original), where
    elif action == "U":
        assert value == deid.new_uid(original) and value != original and value.startswith("2.25."), where
    elif action == "K":
        assert value == original, where
    elif action == "C":
        if vr in ("DA", "DT"):
            assert value == expected_shift(original, vr, deid.date_shift_days(PATIENT_ID)), where
        elif vr == "TM":
            assert value == original, where  # a shift by whole days leaves the time of day
        elif vr in ("OB", "OW", "UN", "US", "DS"):  # nothing to clean with: the basic action applies
            assert value != original, where
        else:
            assert value == original, where  # no identifying value of this file occurs in it
    else:
        pytest.fail(where)


def test_table_file_names_its_edition_and_source_and_covers_the_standard_rows():
    header, rows = table.load_table()
    assert header["edition"] == "2024e"
    assert "innolitics/dicom-standard" in header["source"] and len(header["source_commit"]) == 40
    assert len(rows) > 600
    tags = {r.tag for r in rows}
    assert {"00100010", "00100020", "00080018", "0020000d", "60xx3000", "50xxxxxx", "private"} <= tags
    assert {r.basic for r in rows} <= {"X", "Z", "D", "U", "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"}


def test_combined_actions_resolve_to_the_choice_valid_for_every_type():
    assert table.resolve("X/Z/U*") == "U"
    assert table.resolve("X/Z/D") == table.resolve("X/D") == table.resolve("Z/D") == "D"
    assert table.resolve("X/Z") == "Z"
    assert [table.resolve(a) for a in "XZDUKC"] == list("XZDUKC")


def test_basic_profile_every_listed_attribute():
    deid, ds, out, placed = deidentify()
    assert len(placed) > 550
    for tag, (row, vr, original) in placed.items():
        check_row(deid, out, tag, row, vr, original, ())


def test_basic_profile_leaves_no_identifying_byte():
    deid, ds, out, placed = deidentify()
    data = written_bytes(out)
    assert b"PHI" not in data
    assert b"1.2.3.4." not in data
    for _tag, (_row, vr, original) in placed.items():
        if vr in ("DA", "DT"):
            assert original[:8].encode() not in data
    assert data[:128] == b"\x00" * 128
    again = pydicom.dcmread(__import__("io").BytesIO(data))
    assert again.SOPClassUID == pydicom.uid.CTImageStorage
    assert again.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert again.file_meta.MediaStorageSOPInstanceUID == again.SOPInstanceUID == deid.new_uid("1.2.3.4.9000.4")


def test_repeating_groups_private_overlays_and_group_lengths_are_removed():
    _, _, out, _ = deidentify()
    for tag in (0x50003000, 0x60000010, 0x60003000, 0x60004000, 0x00090010, 0x00091001, 0x00100000):
        assert tag not in out
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.file_meta.ImplementationVersionName.startswith("CTADEFACE_")  # ours, not the original software's
    assert out.file_meta.ImplementationClassUID == pydicom.uid.PYDICOM_IMPLEMENTATION_UID


def test_required_attributes_after_defacing():
    _, _, out, _ = deidentify(defaced=True)
    assert out.PatientIdentityRemoved == "YES"
    assert out.RecognizableVisualFeatures == "NO"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert list(out.ImageType) == ["DERIVED", "PRIMARY", "AXIAL"]
    values = [(i.CodeValue, i.CodingSchemeDesignator) for i in out.DeidentificationMethodCodeSequence]
    assert values == [("113100", "DCM"), ("113102", "DCM")]
    assert list(out.DeidentificationMethod) == [codes.DCM.BasicApplicationConfidentialityProfile.meaning,
                                                codes.DCM.CleanRecognizableVisualFeaturesOption.meaning]  # fmt: skip


def test_no_defacing_claim_without_defacing():
    _, _, out, _ = deidentify(defaced=False)
    assert "RecognizableVisualFeatures" not in out
    assert list(out.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100"]


def test_public_version_dates_are_never_shifted():
    _, _, out, _ = deidentify(DeidOptions(retain_longitudinal_modified_dates=True))
    assert out.AnatomicRegionSequence[0].ContextGroupVersion == "20020904000000"
    assert out.AnatomicRegionSequence[0].CodeValue == "T-D1100"


@pytest.mark.parametrize("name", all_option_names())
def test_each_option_changes_exactly_its_column(name):
    options = DeidOptions.from_names([name])
    column = options.columns()[0]
    basic_deid, _, basic, placed = deidentify()
    deid, _, out, _ = deidentify(options)
    changed = 0
    for tag, (row, vr, original) in placed.items():
        check_row(deid, out, tag, row, vr, original, (column,))
        if column not in row.options:
            assert (tag in out) == (tag in basic), row.name
            if tag in out and vr != "SQ":
                assert out[tag].value == basic[tag].value, row.name
        elif tag in out and (tag not in basic or out[tag].value != basic[tag].value):
            changed += 1
    codes_applied = [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
    if name == "retain-safe-private":
        # The phi dataset's private block is not in Table E.3.10-1: nothing is kept, and the option is claimed
        # (Testing/test_deid_safe_private.py has the elements it keeps).
        assert changed == 0 and 0x00091001 not in out and 0x00090010 not in out
        assert codes_applied == ["113100", "113111", "113102"]
        assert "Table E.3.10-1" in deid.describe()["private_attributes"]
    else:
        assert changed > 0
        expected = {"clean-descriptors": "113105", "retain-dates": "113107",
                    "retain-patient-characteristics": "113108", "retain-device-identity": "113109"}[name]  # fmt: skip
        assert codes_applied == ["113100", expected, "113102"]
    if name == "retain-dates":
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"
        assert out.PatientBirthDate in EMPTY  # Z in every column but Full Dates


def test_clean_descriptors_removes_the_identifying_values_of_the_same_file():
    ds, _ = phi_dataset()
    ds.PatientName = "Smith^John"
    ds.StudyDescription = "CT head john SMITH PHI-PATIENT-ID-4711 angio"
    ds.SeriesDescription = "Arterial phase"
    out = Deidentifier(DeidOptions(clean_descriptors=True), KEY).deidentify(ds, defaced=True)
    assert out.StudyDescription == "CT head angio"
    assert out.SeriesDescription == "Arterial phase"
    basic = Deidentifier(DeidOptions(), KEY).deidentify(ds, defaced=True)
    assert "SeriesDescription" not in basic and "StudyDescription" not in basic


def test_clean_descriptors_with_shifted_dates_removes_the_true_dates_from_descriptions():
    ds, _ = phi_dataset()
    ds.StudyDate = "20200115"
    ds.StudyDescription = "CT angio 20200115 follow-up"
    options = DeidOptions(clean_descriptors=True, retain_longitudinal_modified_dates=True)
    out = Deidentifier(options, KEY).deidentify(ds, defaced=True)
    assert out.StudyDescription == "CT angio follow-up"
    assert out.StudyDate != "20200115" and len(out.StudyDate) == 8


def test_retain_dates_shifts_a_date_that_another_option_would_keep():
    ds, _ = phi_dataset()
    ds.DateOfLastCalibration = "20200101"
    device_only = Deidentifier(DeidOptions(retain_device_identity=True), KEY).deidentify(ds, defaced=True)
    assert device_only.DateOfLastCalibration == "20200101"  # Retain Device Identity: K
    both = DeidOptions(retain_device_identity=True, retain_longitudinal_modified_dates=True)
    deid = Deidentifier(both, KEY)
    out = deid.deidentify(ds, defaced=True)
    assert out.DateOfLastCalibration == expected_shift("20200101", "DA", deid.date_shift_days(PATIENT_ID))
    assert out.DeviceSerialNumber == ds.DeviceSerialNumber


def test_option_names():
    options = DeidOptions.from_names(["retain-dates", "clean-descriptors"])
    assert options.retain_longitudinal_modified_dates and options.clean_descriptors
    assert options.names() == ["clean-descriptors", "retain-dates"]
    assert DeidOptions.from_names([]) == DeidOptions()
    with pytest.raises(InputError, match="Unknown de-identification option 'retain-everything'"):
        DeidOptions.from_names(["retain-everything"])


def test_describe_names_profile_edition_options_and_versions_but_no_identity():
    deid = Deidentifier(DeidOptions(retain_longitudinal_modified_dates=True), KEY)
    described = deid.describe(defaced=True)
    assert described["table"]["edition"] == "2024e"
    assert described["options"] == ["retain-dates"]
    assert [c["value"] for c in described["codes"]] == ["113100", "113107", "113102"]
    assert described["versions"]["pydicom"] == pydicom.__version__
    text = repr(described)
    assert KEY.hex() not in text and PATIENT_ID not in text
