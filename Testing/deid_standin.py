"""The header step for DICOM study tests: the real CTADefaceLib.deid when this checkout has it.

TEST STAND-IN (only until the de-identification package is merged into this branch): a minimal keyed-UID
de-identifier with the same three methods the study code calls (deidentify, new_uid, describe). It is NOT a
PS3.15 profile; the tests that need the real profile skip without CTADefaceLib.deid.
"""

from __future__ import annotations

import copy
import hashlib
import hmac

KEEP_UIDS = {"SOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID", "ImplementationClassUID"}


def real_deid_available() -> bool:
    try:
        import CTADefaceLib.deid  # noqa: F401
    except ImportError:
        return False
    return True


class StandInDeidentifier:
    def __init__(self, key: bytes = b"test-key"):
        self.key = key

    def new_uid(self, uid: str) -> str:
        digest = hmac.new(self.key, str(uid).encode(), hashlib.sha256).digest()
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    def deidentify(self, ds, defaced: bool = True):
        from pydicom.dataset import Dataset

        out = copy.deepcopy(ds)
        if "StudyID" in out:
            out.StudyID = "1"
        for dataset in (out.file_meta, out):
            for element in dataset.iterall():
                if element.VR == "UI" and element.keyword not in KEEP_UIDS and element.value:
                    element.value = self.new_uid(element.value)
        for keyword in ("PatientName", "PatientID"):
            setattr(out, keyword, "Anonymous^Patient")
        for keyword in (
            "PatientBirthDate",
            "InstitutionName",
            "ReferringPhysicianName",
            "AccessionNumber",
            "OperatorsName",
        ):
            if keyword in out:
                out.data_element(keyword).value = ""
        for keyword in ("StudyDescription",):
            if keyword in out:
                del out[keyword]
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = "test stand-in"
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
            "113100",
            "DCM",
            "Basic Application Confidentiality Profile",
        )
        out.DeidentificationMethodCodeSequence = [code]
        image_type = list(out.get("ImageType", []) or [])
        if image_type:
            out.ImageType = ["DERIVED", *image_type[1:]]
        return out

    def describe(self) -> dict:
        return {"profile": "test stand-in (not PS3.15)", "options": []}


def make_deid(tmp_path=None, key: bytes = b"test-key"):
    """The real Deidentifier (key file under tmp_path) when available, else the stand-in."""
    if real_deid_available() and tmp_path is not None:
        from CTADefaceLib.deid import Deidentifier, DeidOptions, load_or_create_key

        return Deidentifier(DeidOptions.from_names([]), load_or_create_key(str(tmp_path / "deid.key")))
    return StandInDeidentifier(key)
