"""Identifying attributes that PS3.15 Table E.1-1 does not list (data/beyond_table.json): gone from the written bytes."""

from __future__ import annotations

import io
import json
import re

import pydicom
import pytest
from pydicom.datadict import DicomDictionary, keyword_for_tag
from pydicom.dataset import Dataset

from CTADefaceLib.deid import Deidentifier, DeidOptions, table
from deid_phi import base_dataset, phi_value, row_vr, written_bytes

KEY = bytes(range(32))
ALL_OPTIONS = DeidOptions(True, True, True, True, True)
FIRST = 5000  # row numbers of the values below: "PHI5000"..., far from those of deid_phi.phi_dataset()
LEAK = re.compile(rb"phi5\d{3}|1\.2\.3\.4\.5\d{3}", re.IGNORECASE)
# Keywords the audit below looks at (the brief's list), and those whose VR or meaning is identifying on its own.
AUDITED = re.compile(
    r"Name|Address|Telephone|ID|Date|Time|URL|URI|Institution|Operator|Physician|Comment|Issuer|Location"
)
ALWAYS_IDENTIFYING = re.compile(r"Address|Telephone|URL|URI$|Issuer.*Sequence|AlternativeCalendar|Reviewer|Evaluator")

# URLs that name a public resource or a place inside the file itself, never a host of the site.
PUBLIC_REFERENCES = ("CodingSchemeURL", "CodingSchemeURLType", "RelativeURIReferenceWithinEncapsulatedDocument")


def beyond_rows():
    with open(table.BEYOND_TABLE_FILE, encoding="utf-8") as handle:
        return json.load(handle)["rows"]


def listed_tags() -> set:
    _, rows = table.load_table()
    return {int(r.tag, 16) for r in rows if r.tag != table.PRIVATE and "x" not in r.tag}


def phi_file() -> tuple[Dataset, list]:
    """A CT header with PHI in every beyond-table attribute: at the top level, nested in a sequence the rules keep,
    and, for group 2, in the file meta. Returns the dataset and the (keyword, value) pairs placed."""
    ds = base_dataset()
    nested = Dataset()
    placed = []
    for n, row in enumerate(beyond_rows(), start=FIRST):
        if "x" in row["tag"] or row["basic"] == "K":
            continue
        tag = int(row["tag"], 16)
        vr = row_vr(tag)
        value = phi_value(n, vr, tag)
        if vr == "SQ":  # an issuer's (or a person's) name and namespace inside the sequence
            item = Dataset()
            item.LocalNamespaceEntityID = f"PHI{n:04d}-NAMESPACE"
            item.UniversalEntityID = f"1.2.3.4.{n}"
            item.UniversalEntityIDType = "ISO"
            item.InstitutionName = f"PHI{n:04d}-HOSPITAL"
            value = [item]
        if tag >> 16 == 0x0002:
            ds.file_meta.add_new(tag, vr, value)
        else:
            ds.add_new(tag, vr, value)
            nested.add_new(tag, vr, value)
        placed.append((row["keyword"], value))
    # A sequence no rule lists is kept and walked: what it carries must be handled the same way.
    holder = pydicom.datadict.tag_for_keyword("ReferencedSeriesSequence")
    assert table.rules_for(frozenset()).action(holder) is None
    nested.SeriesInstanceUID = "1.2.3.4.9000.2"
    ds.ReferencedSeriesSequence = [nested]
    return ds, placed


def test_data_file_rows_name_their_attribute_action_and_reason_and_never_repeat_the_table():
    rows = beyond_rows()
    table_tags = listed_tags()
    seen = set()
    for row in rows:
        assert row["why"].strip() and row["basic"] in ("X", "K"), row
        assert set(row["options"].values()) <= {"K", "C"}, row
        assert set(row["options"]) <= set(DeidOptions().columns() + ALL_OPTIONS.columns()), row
        if "x" in row["tag"]:
            continue
        tag = int(row["tag"], 16)
        assert keyword_for_tag(tag) == row["keyword"], row
        assert tag not in table_tags and tag not in seen, row
        seen.add(tag)


def test_audit_every_always_identifying_keyword_is_covered():
    """Every dictionary keyword of the audited kinds that is identifying by its very kind (an address, a URL, an
    issuer sequence, a person's name...) is in the table or in the beyond-table file."""
    covered = listed_tags() | {int(r["tag"], 16) for r in beyond_rows() if "x" not in r["tag"]}
    audited = [t for t, e in DicomDictionary.items() if e[4] and AUDITED.search(e[4])]
    assert len(audited) > 700
    missing = [
        DicomDictionary[t][4]
        for t in audited
        if t >> 16 not in (0x0000, 0x0004)  # commands and DICOMDIR records are never in an image file
        and (ALWAYS_IDENTIFYING.search(DicomDictionary[t][4]) or DicomDictionary[t][0] in ("PN", "UR"))
        and DicomDictionary[t][4] not in PUBLIC_REFERENCES
        and t not in covered
    ]
    assert missing == []


@pytest.mark.parametrize("reread", [False, True], ids=["decoded", "read-from-file"])
def test_no_phi_of_beyond_table_attributes_is_written(reread):
    ds, placed = phi_file()
    assert len(placed) > 90
    data = written_bytes(ds)
    assert len(LEAK.findall(data)) > 2 * len(placed)  # the PHI is really there before
    source = pydicom.dcmread(io.BytesIO(data)) if reread else ds
    deid = Deidentifier(DeidOptions(), KEY)
    out = written_bytes(deid.deidentify(source, defaced=True))
    assert LEAK.findall(out) == []
    for keyword, _value in placed:
        assert keyword not in pydicom.dcmread(io.BytesIO(out)), keyword


def test_file_meta_keeps_only_the_minimal_elements_and_names_this_software():
    ds, _ = phi_file()
    out = Deidentifier(DeidOptions(), KEY).deidentify(ds, defaced=True)
    again = pydicom.dcmread(io.BytesIO(written_bytes(out)))
    assert sorted(e.keyword for e in again.file_meta) == [
        "FileMetaInformationGroupLength",
        "FileMetaInformationVersion",
        "ImplementationClassUID",
        "ImplementationVersionName",
        "MediaStorageSOPClassUID",
        "MediaStorageSOPInstanceUID",
        "TransferSyntaxUID",
    ]
    assert again.file_meta.ImplementationClassUID == pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    assert again.file_meta.ImplementationVersionName.startswith("CTADEFACE_")


def test_options_keep_only_what_their_column_says():
    """Under every option, a beyond-table value survives only where its row keeps (K) or cleans (C) it."""
    ds, _ = phi_file()
    deid = Deidentifier(ALL_OPTIONS, KEY)
    out = deid.deidentify(ds, defaced=True)
    columns = frozenset(ALL_OPTIONS.columns())
    for row in table.load_beyond_table():
        if "x" in row.tag or row.basic == "K" or row.tag.startswith("0002"):
            continue
        action = table.row_action(row, columns)
        tag = int(row.tag, 16)
        assert (tag in out) == (action in ("K", "C")), row
        if action == "C" and row_vr(tag) in ("DA", "DT"):
            assert out[tag].value != ds[tag].value, row  # shifted, never the true date
