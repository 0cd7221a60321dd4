"""Clean Descriptors: what a description may still say after cleaning, variant by variant."""

from __future__ import annotations

import pytest

from CTADefaceLib.deid import Deidentifier, DeidOptions
from deid_phi import base_dataset, written_bytes

KEY = bytes(range(32))
CLEAN = DeidOptions(clean_descriptors=True)


def cleaned(description: str, options: DeidOptions = CLEAN) -> str:
    ds = base_dataset()
    ds.PatientName = "Smith-Jones^Anna-Maria"
    ds.PatientID = "PID-0042"
    ds.AccessionNumber = "ACC778899"
    ds.StudyDate = "20240305"
    ds.StudyTime = "101530"
    ds.StudyDescription = description
    out = Deidentifier(options, KEY).deidentify(ds, defaced=True)
    written_bytes(out)  # the cleaned value is valid for its VR
    return str(out.StudyDescription)


@pytest.mark.parametrize(
    "variant",
    [
        # UIDs: dotted numbers of three or more components, any length, leading zeros included
        "1.2.840.113619.2.55.3.604688119.868.1234567890.123",
        "2.25.329800735698586629295641978511506172918",
        "1.2.03.004.05",
        "uid=1.3.6.1.4.1.9590.100.1.2.1",  # the label stays: "uid="
        # dates in other formats, the study's own and others
        "2024-03-05",
        "05.03.2024",
        "03/05/2024",
        "5 Mar 2024",
        "Mar 5",
        "March 5, 2024",
        "20240305",
        "2019-11-30",
        "30 november 2019",
        "Nov 30th",
        "20191130101530",
        # times
        "10:15",
        "10:15:30",
        "10:15 AM",
        "8pm",
        # compact times (HHMMSS, a TM value) and dates (YYYYMMDD) from another file, alone or together
        "134502",
        "134502.125",
        "235959",
        "20200115",
        "20200115 134502",
        "20200115T134502",
        "20200115-134502",
        "20200115_1345",
        # the patient's name in parts, hyphenated, any case
        "Smith-Jones",
        "smith-jones",
        "SMITH JONES",
        "Jones",
        "anna-maria",
        "Maria",
        "SMITH_JONES",  # the separator stays: "_"
        # the patient's ID and the accession number
        "PID-0042",
        "pid-0042",
        "ACC778899",
    ],
)
def test_identifying_variant_is_removed(variant):
    label = {"uid=1.3.6.1.4.1.9590.100.1.2.1": "uid= ", "SMITH_JONES": "_ "}.get(variant, "")
    assert cleaned(f"CTA head {variant} arterial 1.25 mm") == f"CTA head {label}arterial 1.25 mm"


@pytest.mark.parametrize(
    "description",
    [
        "CTA head arterial 1.25 mm",
        "Angio 0.625 3D MIP",
        "Follow-up in March",
        "Phase 2 of 3",
        "SMITHSONIAN protocol",
        "Kernel Hr40f 512 x 512",
        "DLP 1250 mGy cm, 100 kV",
        "CTDI 246000",  # six digits that cannot be a time (hour 24) stay
    ],
)
def test_ordinary_descriptions_are_kept(description):
    assert cleaned(description) == description


def test_without_clean_descriptors_the_description_goes():
    ds = base_dataset()
    ds.StudyDescription = "CTA head"
    out = Deidentifier(DeidOptions(), KEY).deidentify(ds, defaced=True)
    assert "StudyDescription" not in out
