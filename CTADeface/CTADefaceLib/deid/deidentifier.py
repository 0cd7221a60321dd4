"""PS3.15 Annex E de-identification of one DICOM dataset, driven by Table E.1-1 kept as data.

Plain pydicom, not the `deid` package: the table's option columns map directly onto one lookup per
attribute, and elements the table does not touch are carried over undecoded (pixel data included). deid 0.4.13
parsing a CT_small-based 512x512 slice with its default recipe took about 20 ms of CPU per slice here, against
about 1.2 ms for this module (Testing/benchmarks/deid_headers.py), and its recipes do not carry the table's
option columns.

What happens to each element (rules in table.py, applied at every level of nesting and to the file meta):
- listed in the table, or in data/beyond_table.json (identifying attributes the table does not list): its
  action under the chosen options (X remove, Z empty, D dummy, U new UID, K keep, C clean: dates shifted by
  the patient's offset, text stripped of the identifying values found in the same file, sequences
  cleaned item by item; a value that cannot be cleaned gets the basic action);
- not listed, VR UI: mapped to a keyed UID unless it is a well-known (DICOM-defined) UID;
- not listed, inside a sequence whose action is D: text and date values become dummies;
- odd groups (private): removed; with Retain Safe Private, the elements PS3.15 Table E.3.10-1 lists
  (data/ps3.15_table_e3_10-1.json) are kept when their creator, element, VR and value pass the checks of
  safe_private.py, with the Private Creators of their blocks; overlay groups 60xx and group lengths: removed;
  elements outside DICOM's dictionary: removed;
  anything else not listed: kept as read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .. import __version__
from ..errors import InputError
from . import dates, safe_private, table
from .mapping import UidMapping
from .options import BASIC_PROFILE_CODE, DEFACED_CODE, OPTION_SPECS, DeidOptions

MAX_DEPTH = 32  # deeper sequences are removed, not followed (real images nest a handful of levels)
DATE_VRS = frozenset(("DA", "DT", "TM"))
TEXT_VRS = frozenset(("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "AS"))
BINARY_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "UN", "AT"))
NUMBER_VRS = frozenset(("DS", "IS", "FL", "FD", "SL", "SS", "SV", "UL", "US", "UV"))
# A person name is written "family^" (one component): a name with no "^" reads to validators such as dciodvfy
# as the retired free-text person name form.
DUMMY = {
    "PN": "ANONYMIZED^",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
}
DUMMY_TEXT = "ANONYMIZED"
# Values whose words are stripped from cleaned descriptors: names, IDs, addresses, dates. Not times or codes:
# they change from slice to slice or are short words of the language, and would only mangle the descriptions.
SCRUB_VRS = frozenset(("AE", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UT"))
DICOM_ROOT = "1.2.840.10008."
SHIFT_RANGE = (-3650, -365)
IMPLEMENTATION_VERSION_NAME = "CTADEFACE_" + __version__  # SH: at most 16 characters
# UID attributes that name a public definition, not an object: a class, a transfer syntax, a coding scheme, a
# context group, a mapping resource. pydicom's UID dictionary knows only DICOM's own UIDs, so a coding scheme
# UID such as SNOMED CT's (2.16.840.1.113883.6.96) is recognised by the attribute that holds it.
PUBLIC_UID_KEYWORD_ENDINGS = ("ClassUID", "SyntaxUID", "CodingSchemeUID", "ContextUID", "MappingResourceUID")


def _pydicom() -> Any:
    import pydicom
    import pydicom.datadict
    import pydicom.uid

    return pydicom


def _well_known_uids() -> frozenset:
    try:
        from pydicom._uid_dict import UID_dictionary  # pydicom 2.4 and 3.0
    except ImportError:  # pragma: no cover - a later pydicom
        UID_dictionary = {}
    return frozenset(UID_dictionary)


class _Context:
    """Per-dataset facts: the patient's pseudonym and date offset, the strings to strip from descriptors."""

    def __init__(
        self,
        pseudonym: str,
        shift: int,
        make_scrub: Callable[[], re.Pattern | None],
        make_public_scrub: Callable[[], re.Pattern | None] = lambda: None,
    ) -> None:
        self.pseudonym = pseudonym
        self.shift = shift
        self._make_scrub = make_scrub
        self._make_public_scrub = make_public_scrub
        self._scrub: list = []
        self._public_scrub: list = []

    def scrub(self) -> re.Pattern | None:
        if not self._scrub:  # made on the first value to clean: most files have none
            self._scrub.append(self._make_scrub())
        return self._scrub[0]

    def identifying(self, text: str) -> bool:
        """Whether a private text value holds a date, time or UID-like number, or an identifying value of the
        file's public attributes (the private ones are left out: a kept value would otherwise match itself)."""
        if ANY_IDENTIFIER.search(text):
            return True
        if not self._public_scrub:
            self._public_scrub.append(self._make_public_scrub())
        pattern = self._public_scrub[0]
        return pattern is not None and pattern.search(text) is not None


class Deidentifier:
    """De-identify datasets with one set of options and one key; UIDs stay consistent across calls and runs."""

    def __init__(self, options: DeidOptions, key: bytes, *, mapping: UidMapping | None = None) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise InputError("The de-identification key is missing or shorter than 16 bytes.")
        pydicom = _pydicom()
        self.options = options
        self._key = bytes(key)
        self.mapping = mapping
        self._rules = table.rules_for(frozenset(options.columns()))
        self._well_known = _well_known_uids()
        self._uid_cache: dict = {}
        self._scrub_cache: dict = {}
        self._dictionary = pydicom.datadict.DicomDictionary
        self._DataElement = pydicom.DataElement
        self._dictionary_vr = {t: e[0] for t, e in self._dictionary.items() if " or " not in e[0]}
        self._public_uid_tags = frozenset(
            tag
            for tag, entry in self._dictionary.items()
            if entry[0] == "UI" and entry[4].endswith(PUBLIC_UID_KEYWORD_ENDINGS)
        )
        tag = pydicom.datadict.tag_for_keyword
        self._t_patient_id = tag("PatientID")
        self._t_patient_name = tag("PatientName")
        self._t_study_uid = tag("StudyInstanceUID")
        self._t_image_type = tag("ImageType")
        self._t_impl_uid = tag("ImplementationClassUID")
        self._t_impl_name = tag("ImplementationVersionName")

    # ------------------------------------------------------------------ keyed values
    def _hmac(self, domain: str, text: str) -> bytes:
        return hmac.new(self._key, f"{domain}\x00{text}".encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def is_well_known(self, uid: str) -> bool:
        return uid in self._well_known or uid.startswith(DICOM_ROOT)

    def new_uid(self, uid: str) -> str:
        """'2.25.' + the integer of a UUID made from HMAC-SHA256(key, uid); well-known UIDs unchanged."""
        uid = str(uid).strip(" \x00")
        if not uid or self.is_well_known(uid):
            return uid
        found = self._uid_cache.get(uid)
        if found is None:
            # A version-8 (custom) UUID per RFC 9562 from the first 16 bytes of the HMAC: the 2.25 arc holds
            # UUID integers, so 122 keyed bits in UUID form rather than a longer, non-UUID integer.
            raw = bytearray(self._hmac("uid", uid)[:16])
            raw[6] = (raw[6] & 0x0F) | 0x80
            raw[8] = (raw[8] & 0x3F) | 0x80
            found = "2.25." + str(uuid.UUID(bytes=bytes(raw)).int)
            self._uid_cache[uid] = found
            if self.mapping is not None:
                self.mapping.record("uid", uid, found)
        return found

    def pseudonym(self, patient_id: str) -> str:
        found = "CTAD-" + self._hmac("patient", str(patient_id)).hex()[:16].upper()
        if self.mapping is not None:
            self.mapping.record("patient", str(patient_id), found)
        return found

    def date_shift_days(self, patient_id: str) -> int:
        low, high = SHIFT_RANGE
        number = int.from_bytes(self._hmac("dateshift", str(patient_id))[:8], "big")
        return low + number % (high - low + 1)

    # ------------------------------------------------------------------ the walk
    def deidentify(self, ds: Any, *, defaced: bool) -> Any:
        """A new, de-identified dataset (with file_meta when `ds` has one); `ds` keeps its values."""
        pydicom = _pydicom()
        patient = self._patient_key(ds)
        ctx = _Context(
            self.pseudonym(patient),
            self.date_shift_days(patient),
            lambda: self._scrub_pattern(ds),
            lambda: self._scrub_pattern(ds, public_only=True),
        )
        out = self._clean(ds, ctx, pydicom.Dataset(), depth=0, inherited=None)
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            # The rules of data/beyond_table.json keep only the minimal file meta (version, SOP class and
            # instance, transfer syntax); the original software's name goes, and ours takes its place.
            new_meta = self._clean(meta, ctx, pydicom.dataset.FileMetaDataset(), depth=0, inherited=None)
            self._put(new_meta, self._t_impl_uid, "UI", pydicom.uid.PYDICOM_IMPLEMENTATION_UID)  # pydicom writes it
            self._put(new_meta, self._t_impl_name, "SH", IMPLEMENTATION_VERSION_NAME)
            out.file_meta = new_meta
        self._set_required(out, defaced, pydicom)
        self._copy_encoding(ds, out, pydicom)
        out.preamble = b"\x00" * 128
        return out

    def _patient_key(self, ds: Any) -> str:
        """Who the patient is, for the pseudonym and the date offset: the ID, else the name, else the study."""
        for tag, prefix in ((self._t_patient_id, ""), (self._t_patient_name, "name:"), (self._t_study_uid, "study:")):
            value = self._text(ds, tag)
            if value:
                return prefix + value
        return ""

    def _text(self, ds: Any, tag: int) -> str:
        if tag not in ds:
            return ""
        try:
            value = ds[tag].value
        except Exception:  # a hostile value that pydicom cannot decode
            raw = ds.get_item(tag).value
            value = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else raw
        if value is None:
            return ""
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = "\\".join(str(v) for v in value)
        return str(value).strip(" \x00")

    def _clean(self, src: Any, ctx: _Context, out: Any, *, depth: int, inherited: str | None) -> Any:
        rules = self._rules
        dictionary_vr = self._dictionary_vr.get
        from pydicom.datadict import dictionary_has_tag as in_dictionary

        # The element store of pydicom's Dataset (the same attribute in pydicom 2.4 and 3.0): reading it and
        # filling it directly skips per-element tag conversion, the cost that dominates a header of a few
        # hundred elements. Elements the table keeps are carried over undecoded.
        store = getattr(out, "_dict", None)
        out_dict: dict | None = store if isinstance(store, dict) and inherited is None else None
        pairs = _pairs(src)
        kept_private: dict | None = None
        for key, elem in pairs:
            tag = int(key)
            if tag & 0xFFFF == 0 or (tag >> 24) == 0x60 or tag >> 16 == 0:
                continue  # group lengths; overlays (whole 60xx groups); command elements (never in a stored file)
            if tag & 0x10000:  # an odd group: private, removed unless Retain Safe Private keeps it
                if kept_private is None:
                    kept_private = self._safe_private(pairs, ctx) if self.options.retain_safe_private else {}
                if tag in kept_private:
                    out[tag] = kept_private[tag]
                continue
            action = rules.action(tag)
            if action == "X":
                continue
            # The dictionary's VR where it has one: a file's VR can be wrong, and new elements must be valid.
            vr = dictionary_vr(tag) or elem.VR or "UN"
            if action is None and not in_dictionary(tag):
                # Neither in the table nor in DICOM's dictionary: nothing says what it holds (a hostile file hid a
                # name and the original study UID in such elements, one of them of unknown type UN), so it goes.
                # A known element written as UN is read with its dictionary VR above and handled as such.
                continue
            if out_dict is not None and action is None and vr != "UI" and vr != "SQ":
                out_dict[key] = self._own(elem)  # kept as read: raw elements stay undecoded, nothing is copied
                continue
            try:
                self._apply(src, out, tag, elem, vr, action, ctx, depth, inherited)
            except InputError:
                raise
            except Exception:
                # Undecodable (hostile) content: the element is removed, never passed through.
                if tag in out:
                    del out[tag]
        return out

    def _apply(
        self,
        src: Any,
        out: Any,
        tag: int,
        elem: Any,
        vr: str,
        action: str | None,
        ctx: _Context,
        depth: int,
        inherited: str | None,
    ) -> None:
        if vr == "SQ":
            if action == "Z":
                self._put(out, tag, "SQ", [])
            elif depth < MAX_DEPTH:
                self._sequence(src, out, tag, ctx, depth, "D" if action == "D" else inherited)
            return
        if action is None:
            if vr == "UI" and tag in self._public_uid_tags:
                out[tag] = self._own(elem)
            elif vr == "UI":
                self._map_uids(out, tag, elem)
            elif inherited == "D" and (vr in TEXT_VRS or vr in DATE_VRS):
                self._put(out, tag, vr, DUMMY.get(vr, DUMMY_TEXT))
            else:
                out[tag] = self._own(elem)
            return
        if action == "C":
            action = self._clean_value(src, out, tag, vr, ctx)
            if action is None:
                return
        if action == "K":
            out[tag] = self._own(elem)
        elif action == "U" or (action == "D" and vr == "UI"):
            self._map_uids(out, tag, elem)
        elif action in ("Z", "D") and tag in (self._t_patient_id, self._t_patient_name):
            self._put(out, tag, vr, ctx.pseudonym + "^" if vr == "PN" else ctx.pseudonym)
        elif action == "Z" or vr in BINARY_VRS:
            self._put(out, tag, vr, None)
        elif action == "D":
            if vr in NUMBER_VRS and vr not in ("DS", "IS"):
                self._put(out, tag, vr, 0)
            else:
                self._put(out, tag, vr, DUMMY.get(vr, DUMMY_TEXT))
        else:  # pragma: no cover - table.resolve() returns only the actions above
            raise ValueError(f"unknown action {action!r}")

    def _own(self, elem: Any) -> Any:
        """The element for the output: a raw (undecoded, immutable) element is shared; a decoded one is copied,
        so that changing the output (e.g. writing new pixel data) never changes the input."""
        if isinstance(elem, tuple):  # RawDataElement is a named tuple in pydicom 2.4 and 3.0
            return elem
        value = elem.value
        if isinstance(value, (list, bytearray)) or type(value).__name__ == "MultiValue":
            value = list(value) if not isinstance(value, bytearray) else bytes(value)
        return self._DataElement(elem.tag, elem.VR, value, validation_mode=0)

    def _put(self, out: Any, tag: int, vr: str, value: Any) -> None:
        """Add a new element; our values (dummies, UIDs, shifted dates) need no validation pass."""
        elem = self._DataElement(tag, vr, value, validation_mode=0)  # 0 is pydicom.config.IGNORE (2.4 and 3.0)
        store = getattr(out, "_dict", None)
        if vr == "SQ" or not isinstance(store, dict):
            out[tag] = elem
        else:
            store[elem.tag] = elem

    def _clean_value(self, src: Any, out: Any, tag: int, vr: str, ctx: _Context) -> str | None:
        """Option C. Returns None when the element was written, or the basic action to apply instead."""
        if vr in DATE_VRS and self.options.retain_longitudinal_modified_dates:
            value = src[tag].value
            shifted = dates.shift_value(value, vr, ctx.shift)
            if shifted is not None:
                self._put(out, tag, vr, shifted)
            return None  # shifted, or removed because it does not parse
        if vr in TEXT_VRS and vr != "AS":
            value = src[tag].value
            pattern = ctx.scrub()
            if value is None:
                self._put(out, tag, vr, value)
            elif not (isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"):
                self._put(out, tag, vr, _scrub(pattern, str(value)))
            else:
                self._put(out, tag, vr, [_scrub(pattern, str(v)) for v in value])
            return None
        # Numbers, binary values: nothing to clean them with; the Basic Profile's action applies.
        entry = self._basic_action(tag)
        return entry

    def _basic_action(self, tag: int) -> str:
        return table.rules_for(frozenset()).action(tag) or "X"

    def _sequence(self, src: Any, out: Any, tag: int, ctx: _Context, depth: int, inherited: str | None) -> None:
        pydicom = _pydicom()
        items = []
        for item in src[tag].value:
            items.append(self._clean(item, ctx, pydicom.Dataset(), depth=depth + 1, inherited=inherited))
        self._put(out, tag, "SQ", items)

    def _safe_private(self, pairs: list, ctx: _Context) -> dict:
        """The private elements of one dataset level that Retain Safe Private keeps (see safe_private.py)."""
        DataElement = self._DataElement

        def make(tag: int, vr: str, value: Any) -> Any:
            return DataElement(tag, vr, value, validation_mode=0)

        try:
            return safe_private.plan(pairs, ctx.identifying, self.new_uid, make)
        except Exception:  # content no check foresaw (a hostile file): no private element is kept
            return {}

    def _map_uids(self, out: Any, tag: int, elem: Any) -> None:
        value = elem.value
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1").split("\\")
        elif value is None:
            value = []
        elif isinstance(value, str):
            value = value.split("\\")
        mapped = [self.new_uid(str(v)) for v in value]
        self._put(out, tag, "UI", mapped[0] if len(mapped) == 1 else (mapped or None))

    # ------------------------------------------------------------------ descriptors
    def _scrub_pattern(self, ds: Any, *, public_only: bool = False) -> re.Pattern | None:
        """The identifying words of this dataset: every text value the profile removes or replaces (with
        `public_only`, those of the standard attributes only, private ones left out)."""
        # The values as stored (undecoded) identify the word list: the slices of a series share it, so the
        # decoding and the regular expression are made once per series, not once per slice.
        signature = (public_only, *self._stored_values(ds, 0))
        if signature not in self._scrub_cache:
            collected: set = set()
            self._collect(ds, collected, 0, public_only)
            words = frozenset(w for w in collected if len(w) >= 2)
            if len(self._scrub_cache) > 64:
                self._scrub_cache.clear()
            self._scrub_cache[signature] = _word_pattern(words) if words else None
        return self._scrub_cache[signature]

    def _stored_values(self, ds: Any, depth: int) -> Iterator:
        for key, elem in _pairs(ds):
            tag = int(key)
            vr = self._dictionary_vr.get(tag) or elem.VR or "UN"
            if vr == "SQ":
                if depth < MAX_DEPTH:
                    try:
                        items = list(ds[tag].value)
                    except Exception:
                        continue
                    for item in items:
                        yield from self._stored_values(item, depth + 1)
                continue
            if vr in SCRUB_VRS and _identifying(self._rules.action(tag), vr):
                value = elem.value
                yield tag, value if isinstance(value, (bytes, str)) else str(value)

    def _collect(self, ds: Any, words: set, depth: int, public_only: bool = False) -> None:
        for key, elem in _pairs(ds):
            tag = int(key)
            if public_only and tag & 0x10000:
                continue
            action = self._rules.action(tag)
            vr = self._dictionary_vr.get(tag) or elem.VR or "UN"
            try:
                if vr == "SQ":
                    if depth < MAX_DEPTH:
                        for item in ds[tag].value:
                            self._collect(item, words, depth + 1, public_only)
                    continue
                if vr not in SCRUB_VRS or not _identifying(action, vr):
                    continue
                text = self._text(ds, tag)
            except Exception:
                continue
            for part in re.split(r"[\\^=\s,;/]+", text):
                words.add(part.strip())
                if vr == "PN":  # each part of a double name, which a description may write apart
                    words.update(re.split(r"[-'.]+", part))

    # ------------------------------------------------------------------ required attributes
    def _codes(self, defaced: bool) -> list:
        from pydicom.sr.codedict import codes

        names = [BASIC_PROFILE_CODE]
        for field, spec in OPTION_SPECS.items():
            if getattr(self.options, field):
                names.append(spec[2])
        if defaced:
            names.append(DEFACED_CODE)
        return [getattr(codes.DCM, name) for name in names]

    def _set_required(self, out: Any, defaced: bool, pydicom: Any) -> None:
        codes = self._codes(defaced)
        put, tag = self._put, pydicom.datadict.tag_for_keyword
        put(out, tag("PatientIdentityRemoved"), "CS", "YES")
        put(out, tag("DeidentificationMethod"), "LO", [c.meaning[:64] for c in codes])
        items = []
        for code in codes:
            item = pydicom.Dataset()
            put(item, tag("CodeValue"), "SH", code.value)
            put(item, tag("CodingSchemeDesignator"), "SH", code.scheme_designator)
            put(item, tag("CodeMeaning"), "LO", code.meaning)
            items.append(item)
        put(out, tag("DeidentificationMethodCodeSequence"), "SQ", items)
        modified = "MODIFIED" if self.options.retain_longitudinal_modified_dates else "REMOVED"
        put(out, tag("LongitudinalTemporalInformationModified"), "CS", modified)
        if defaced:
            put(out, tag("RecognizableVisualFeatures"), "CS", "NO")
            if self._t_image_type in out:
                value = out[self._t_image_type].value
                values = [value] if isinstance(value, str) else list(value or [])
                put(out, self._t_image_type, "CS", ["DERIVED"] + values[1:] if values else "DERIVED")

    @staticmethod
    def _copy_encoding(src: Any, out: Any, pydicom: Any) -> None:
        """Keep the source's transfer syntax facts, so raw elements carried over are written correctly."""
        implicit = getattr(src, "is_implicit_VR", None) if pydicom.__version__.startswith("2.") else None
        little = getattr(src, "is_little_endian", None) if pydicom.__version__.startswith("2.") else None
        if pydicom.__version__.startswith("2."):
            out.is_implicit_VR = implicit
            out.is_little_endian = little
        else:
            encoding = getattr(src, "original_encoding", (None, None))
            if encoding[0] is not None:
                out.set_original_encoding(encoding[0], encoding[1], getattr(src, "original_character_set", None))

    # ------------------------------------------------------------------ report
    def describe(self, *, defaced: bool | None = None) -> dict:
        """For the study report: profile, table edition and source, options and codes, versions. No identity."""
        pydicom = _pydicom()
        header, _ = table.load_table()
        codes = self._codes(bool(defaced))
        from .. import __version__ as ctadeface_version

        return {
            "profile": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile",
            "table": {
                "name": header["table"],
                "edition": header["edition"],
                "source": header["source"],
                "source_commit": header["source_commit"],
            },
            "options": self.options.names(),
            "codes": [{"value": c.value, "scheme": c.scheme_designator, "meaning": c.meaning} for c in codes],
            "uids": "2.25 UUIDs derived with HMAC-SHA256 under the user's key; well-known DICOM UIDs kept",
            "dates": (
                "shifted by one keyed offset per patient (365 to 3650 days back)"
                if self.options.retain_longitudinal_modified_dates
                else "removed or replaced as the Basic Profile says"
            ),
            "private_attributes": (
                "removed, except those PS3.15 Table E.3.10-1 ("
                + safe_private.load_safe_private()[0]["edition"]
                + ") lists with a matching Private Creator, element and VR and a value that passes this software's "
                "checks (numbers, code strings, UIDs mapped with the key, short text without identifying values; "
                "the table's OB and SQ rows are never kept), with their Private Creators; vendors do not guarantee "
                "them to be safe"
                if self.options.retain_safe_private
                else "removed"
            ),
            "combined_actions": "X/Z/U* -> U, X/D X/Z/D Z/D -> D (dummy), X/Z -> Z (empty)",
            "versions": {"ctadeface": ctadeface_version, "pydicom": pydicom.__version__},
        }


def _pairs(ds: Any) -> list:
    """(tag, element as stored: raw or decoded) for every element of `ds`, without decoding any."""
    store = getattr(ds, "_dict", None)
    if isinstance(store, dict):
        return list(store.items())
    return [(key, ds.get_item(key)) for key in ds.keys()]  # noqa: SIM118 - iterating a Dataset decodes elements


def _identifying(action: str | None, vr: str) -> bool:
    """Whether a value's words are stripped from cleaned descriptors: it is removed or replaced, or it is a date
    that gets shifted (its true value must not survive in a description either)."""
    return action not in (None, "K", "C") or (action == "C" and vr in DATE_VRS)


_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|n[d]|rd|th)?\.?"  # n[d] so that the spell checker passes it
# Identifiers and dates in a description whatever file they come from (another study's UID, a prior scan's date):
# the values of this file are removed by the word list, these by their form. Compiled once.
ANY_IDENTIFIER = re.compile(
    "|".join(
        (
            # 20200115T134502, 20200115-1345: a compact date and time together (first: one match, no separator left)
            r"(?<!\d)(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])[T _-](?:[01]\d|2[0-3])[0-5]\d(?:[0-5]\d)?"
            r"(?:\.\d+)?(?!\d)",
            r"(?<![\d.])\d+(?:\.\d+){2,}(?!\d)",  # a UID (2.25.<integer>, leading zeros) or a dotted date
            r"(?<!\d)\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?!\d)",  # 2024-03-05
            r"(?<!\d)\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})(?!\d)",  # 05.03.2024, 03/05/2024, 3-5-24
            r"(?<!\d)(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d*(?:\.\d+)?(?!\d)",  # 20240305, a DT
            rf"(?<![0-9a-z]){_DAY}\s*{_MONTH}(?:,?\s*\d{{4}})?(?![0-9a-z])",  # 5 Mar 2024
            rf"(?<![0-9a-z]){_MONTH}\s*{_DAY}(?:,?\s*\d{{4}})?(?![0-9a-z])",  # Mar 5, March 5, 2024
            rf"(?<![0-9a-z]){_MONTH}\s*\d{{4}}(?![0-9a-z])",  # March 2024
            r"(?<![\d:])\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[ap]\.?m\.?)?(?![0-9a-z:])",  # 10:15, 10:15:30 AM
            r"(?<![0-9a-z])\d{1,2}\s*[ap]\.?m\.?(?![0-9a-z])",  # 8pm
            r"(?<![\d.])(?:[01]\d|2[0-3])[0-5]\d[0-5]\d(?:\.\d{1,6})?(?![\d.])",  # 134502, 134502.125: a TM value
        )
    ),
    re.IGNORECASE,
)


def _word_pattern(words: frozenset) -> re.Pattern:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])", re.IGNORECASE)


def _scrub(pattern: re.Pattern | None, text: str) -> str:
    if pattern is not None:
        text = pattern.sub("", text)
    return re.sub(r"\s{2,}", " ", ANY_IDENTIFIER.sub("", text)).strip()
