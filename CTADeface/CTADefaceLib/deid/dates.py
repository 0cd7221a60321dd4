"""Move DA and DT values by a number of days; check TM values. Anything that does not parse gives None.

A day shift leaves times of day unchanged, so TM values are kept when they are well formed. Partial
dates (a year, a year and month) are shifted from their first day and written back with the same
precision. The caller removes an attribute whose value gives None, so garbage is never passed through.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

_DA = re.compile(r"(\d{4})(?:\.?(\d{2})(?:\.?(\d{2}))?)?")  # YYYYMMDD, partial, or the old YYYY.MM.DD
_DT = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?")
_TM = re.compile(r"([01]\d|2[0-3])(?::?([0-5]\d)(?::?([0-5]\d|60)(?:\.\d{1,6})?)?)?")


def _shift(year: str, month: str | None, day: str | None, days: int) -> str | None:
    try:
        moved = datetime.date(int(year), int(month or 1), int(day or 1)) + datetime.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    text = f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"
    return text[: 4 + (2 if month else 0) + (2 if day else 0)]


def shift_one(value: str, vr: str, days: int) -> str | None:
    value = value.strip(" \x00")
    if not value:
        return ""
    if vr == "DA":
        match = _DA.fullmatch(value)
        return _shift(match.group(1), match.group(2), match.group(3), days) if match else None
    if vr == "DT":
        match = _DT.fullmatch(value)
        if not match or (match.group(3) is None and match.group(4)):
            return None
        date = _shift(match.group(1), match.group(2), match.group(3), days)
        return None if date is None else date + (match.group(4) or "") + (match.group(5) or "")
    if vr == "TM":
        return value if _TM.fullmatch(value) else None
    return None


def shift_value(value: Any, vr: str, days: int) -> str | list | None:
    """A str or a list of str (multi-valued) shifted; None when any value does not parse."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
        value = value.split("\\") if "\\" in value else value
    if isinstance(value, str):
        return shift_one(value, vr, days)
    try:
        items = [str(v) for v in value]
    except TypeError:
        return None
    shifted = [shift_one(v, vr, days) for v in items]
    return None if any(v is None for v in shifted) else shifted
