"""Retain Safe Private: which private elements of a dataset PS3.15 Table E.3.10-1 lets us keep, checked.

The table (data/ps3.15_table_e3_10-1.json; edition and source in data/README.md) names private attributes by
group, Private Creator, element low byte and VR. A file is treated as hostile, so a private element is kept only
when all of these hold:
- its group is odd and private (not 0001-0007, not FFFF) and its element is in a block (gggg,xx10-xxFF) whose
  Private Creator (gggg,00xx) is present and equals the table's creator exactly (trailing spaces aside);
- the table lists that group, creator and low byte, with a VR this module can check: numbers (US, SS, UL, SL,
  FL, FD, DS, IS), code strings (CS), UIDs (UI) and short text (SH, LO, LT);
- the file's VR is the table's (or the file does not say: implicit VR, or UN) and the value, read with the
  table's VR, is valid for it: numeric strings that are finite numbers, finite floats, whole binary values, code
  strings of CS characters, UIDs of digits and dots, and the table's VM;
- text and code strings (SH, LO, LT, CS) hold no person-name separator (^), no date, time or UID-like number,
  and none of the identifying values of the same file's standard attributes.
UIDs are mapped with the key like every other UID. The table's OB rows (opaque vendor payloads: note 2 of E.3.10
calls bulk OB data particularly unsafe), its SQ rows and its rows without a VR are never kept: the content of
an OB cannot be checked, and the items of those sequences (Hologic codec data, Siemens ultrasound acoustic
data) hold such payloads and private blocks of their own, so a sequence is removed whole rather than kept
in part. The Private Creator elements of the blocks that keep an element are kept; every other private element
goes.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ps3.15_table_e3_10-1.json")
BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
STRINGS = {"DS": 16, "IS": 12, "CS": 16, "UI": 64, "SH": 16, "LO": 64, "LT": 10240}  # maximum characters
TEXT = frozenset(("SH", "LO", "LT"))
CHECKED_VRS = frozenset(BINARY) | frozenset(STRINGS)
DS_FORM = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
IS_FORM = re.compile(r"[+-]?\d+")
CS_FORM = re.compile(r"[A-Z0-9_ ]*")
UI_FORM = re.compile(r"(?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*))*")
TEXT_FORM = re.compile(r"[\x20-\x7e]*")  # printable ASCII: a name in another script is not let through unseen
LT_FORM = re.compile(r"[\x20-\x7e\r\n\t\f]*")


@dataclass(frozen=True)
class SafeRow:
    vr: str
    vm: str
    meaning: str


@lru_cache(maxsize=1)
def load_safe_private() -> tuple[dict, dict]:
    """The data file's header and {(group, creator, element low byte): row}."""
    with open(DATA_FILE, encoding="utf-8") as handle:
        data = json.load(handle)
    rows = {
        (int(r["group"], 16), r["creator"], int(r["element"], 16)): SafeRow(r["vr"], r["vm"], r["meaning"])
        for r in data.pop("rows")
    }
    return data, rows


def is_private_group(group: int) -> bool:
    return group & 1 == 1 and 0x0008 < group < 0xFFFF


def _vm_ok(vm: str, count: int) -> bool:
    low, sep, high = vm.partition("-")
    if not sep:
        return count == int(low)
    return count >= int(low) and (high == "n" or count <= int(high))


def _creator_text(elem: Any) -> str | None:
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    return value.rstrip(" \x00")


def _values(elem: Any, vr: str) -> list | None:
    """The element's values read with the table's VR, or None when the file says another VR or they do not read."""
    file_vr = elem.VR
    value = elem.value
    if file_vr == vr and not isinstance(value, (bytes, bytearray)):  # decoded by pydicom with the table's VR
        if value is None:
            return []
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            return [v if vr in BINARY else str(getattr(v, "original_string", None) or v) for v in value]
        return [value if vr in BINARY else str(getattr(value, "original_string", None) or value)]
    if file_vr not in (None, "UN", vr) or not isinstance(value, (bytes, bytearray)):
        return None
    data = bytes(value)
    if vr in BINARY:
        size = struct.calcsize(BINARY[vr])
        if len(data) % size:
            return None
        little = getattr(elem, "is_little_endian", True) is not False
        return list(struct.unpack(("<" if little else ">") + BINARY[vr] * (len(data) // size), data))
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    text = text.rstrip(" \x00")
    if not text:
        return []
    return [text] if vr == "LT" else text.split("\\")


def checked_value(elem: Any, row: SafeRow, identifying: Callable[[str], bool]) -> Any:
    """The value to write for a listed element, or None when it is not kept (see the module docstring)."""
    vr = row.vr
    if vr not in CHECKED_VRS:
        return None
    values = _values(elem, vr)
    if not values or not _vm_ok(row.vm, len(values)):
        return None
    if vr in BINARY:
        if vr in ("FL", "FD") and not all(math.isfinite(v) for v in values):
            return None
        return values[0] if len(values) == 1 else values
    texts = [str(v) for v in values]
    limit = STRINGS[vr]
    if any(len(t) > limit for t in texts):
        return None
    form = {"DS": DS_FORM, "IS": IS_FORM, "CS": CS_FORM, "UI": UI_FORM, "LT": LT_FORM}.get(vr, TEXT_FORM)
    stripped = [t.strip(" ") if vr in ("DS", "IS", "CS") else t.rstrip(" \x00") for t in texts]
    if not all(form.fullmatch(t) for t in stripped):
        return None
    if vr == "IS" and not all(-(2**31) <= int(t) < 2**31 for t in stripped):
        return None
    if vr == "DS" and not all(math.isfinite(float(t)) for t in stripped):  # 1e999 would be written as inf
        return None
    if (vr in TEXT or vr == "CS") and any("^" in t or identifying(t) for t in stripped):
        return None
    return texts[0] if len(texts) == 1 else texts


def plan(
    pairs: list,
    identifying: Callable[[str], bool],
    map_uid: Callable[[str], str],
    make_element: Callable[[int, str, Any], Any],
) -> dict:
    """{tag: element} for the private elements of one dataset level (its (tag, element) pairs) that are kept,
    their Private Creators included. `identifying(text)` says whether a text holds an identifying value."""
    _, rows = load_safe_private()
    creators: dict = {}
    for key, elem in pairs:
        tag = int(key)
        group, element = tag >> 16, tag & 0xFFFF
        if is_private_group(group) and 0x10 <= element <= 0xFF:
            text = _creator_text(elem)
            if text:
                creators[(group, element)] = (elem, text)
    if not creators:
        return {}
    kept: dict = {}
    for key, elem in pairs:
        tag = int(key)
        group, element = tag >> 16, tag & 0xFFFF
        found = creators.get((group, element >> 8)) if element >= 0x1000 else None
        if found is None:
            continue
        row = rows.get((group, found[1], element & 0xFF))
        if row is None:
            continue
        value = checked_value(elem, row, identifying)
        if value is None:
            continue
        if row.vr == "UI":
            value = [map_uid(v) for v in value] if isinstance(value, list) else map_uid(value)
        kept[tag] = make_element(tag, row.vr, value)
        creator_tag = (group << 16) | (element >> 8)
        if creator_tag not in kept:
            creator = found[0].value
            if isinstance(creator, (bytes, bytearray)):
                creator = bytes(creator).decode("ascii").rstrip("\x00")
            kept[creator_tag] = make_element(creator_tag, "LO", creator)
    return kept
