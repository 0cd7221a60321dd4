"""PS3.15 Table E.1-1 as data: which action applies to an attribute under the chosen options.

The rows come from data/ps3.15_table_e1-1.json (see data/README.md for its edition and source) and from
data/beyond_table.json: identifying attributes the table does not list (retrieve URLs, issuer sequences,
alternative-calendar dates, the file meta beyond its minimal elements...), in the table's own form, each with
why. Both are applied by the same code; this module holds no list of tags of its own.

Combined actions name a choice that depends on the attribute's Type in the IOD (X for Type 3, Z for
Type 2, D for Type 1). Rather than look the Type up per IOD, we take the action that is valid for
every Type and still removes the information:
  X/Z/U*          -> U  keep the sequence, map the UIDs inside it (references between objects survive)
  X/D, X/Z/D, Z/D -> D  a non-identifying dummy value (valid even where the attribute is Type 1)
  X/Z             -> Z  present but empty (valid for Type 2 and Type 3; Type 1 never gets X/Z)
So an output never lacks an attribute its IOD requires because of this step, and never keeps a value.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ps3.15_table_e1-1.json")
# The rows whose dates are versions of public coding resources: never shifted (see the file's "why").
FIXED_DATES_FILE = os.path.join(os.path.dirname(DATA_FILE), "fixed_dates.json")
BEYOND_TABLE_FILE = os.path.join(os.path.dirname(DATA_FILE), "beyond_table.json")
DATES_COLUMN = "retain-dates"

# Actions after resolution: X remove, Z empty, D dummy, U map UIDs, K keep, C clean (dates: shift).
PRIVATE = "private"


@dataclass(frozen=True)
class Row:
    tag: str  # 8 hex digits, 'x' for any digit, or 'private'
    name: str
    basic: str
    options: dict


@lru_cache(maxsize=1)
def load_table() -> tuple[dict, tuple[Row, ...]]:
    """The data file's header (edition, source...) and its rows."""
    with open(DATA_FILE, encoding="utf-8") as handle:
        data = json.load(handle)
    rows = tuple(Row(r["tag"], r["name"], r["basic"], dict(r["options"])) for r in data.pop("rows"))
    return data, rows


@lru_cache(maxsize=1)
def load_beyond_table() -> tuple[Row, ...]:
    """The rows of data/beyond_table.json, as table rows (the keyword stands for the name)."""
    with open(BEYOND_TABLE_FILE, encoding="utf-8") as handle:
        data = json.load(handle)
    return tuple(Row(r["tag"], r["keyword"], r["basic"], dict(r["options"])) for r in data["rows"])


def resolve(action: str) -> str:
    """One action for a combined one (see the module docstring for why)."""
    parts = action.replace("*", "").split("/")
    for choice in ("U", "D", "Z", "K", "C", "X"):
        if choice in parts:
            return choice
    raise ValueError(f"unknown action {action!r}")


def row_action(row: Row, columns: frozenset) -> str:
    """The row's action under the option columns switched on: a K of any option wins over a C, both over basic,
    except that a date the retain-dates option shifts is always shifted (e.g. a calibration date that Retain
    Device Identity would keep): a true date next to shifted ones would narrow down the patient's offset."""
    if DATES_COLUMN in columns and row.options.get(DATES_COLUMN) == "C":
        return "C"
    chosen = {row.options[c] for c in columns if c in row.options}
    if "K" in chosen:
        return "K"
    if "C" in chosen:
        return "C"
    return resolve(row.basic)


@dataclass(frozen=True)
class Rules:
    """Action lookup for one set of options: exact tags in a dict, the few repeating-group rows as masks."""

    exact: dict  # int tag -> action
    masked: tuple  # (mask, value, action)
    private: str  # action for odd groups
    columns: frozenset

    def action(self, tag: int) -> str | None:
        """The action for `tag`, or None when the table does not list it (the attribute is kept)."""
        found = self.exact.get(tag)
        if found is not None:
            return found
        if (tag >> 16) & 1:
            return self.private
        for mask, value, act in self.masked:
            if tag & mask == value:
                return act
        return None


@lru_cache(maxsize=1)
def fixed_date_tags() -> frozenset:
    with open(FIXED_DATES_FILE, encoding="utf-8") as handle:
        return frozenset(int(r["tag"], 16) for r in json.load(handle)["rows"])


@lru_cache(maxsize=32)
def rules_for(columns: frozenset) -> Rules:
    _, rows = load_table()
    exact: dict = {}
    masked = []
    private = "X"
    for row in rows + load_beyond_table():
        act = row_action(row, columns)
        if row.tag == PRIVATE:
            # Always the basic action (remove): the elements Retain Safe Private keeps are chosen one by one from
            # PS3.15 Table E.3.10-1, by creator, element and VR (safe_private.py), never by this row's K.
            private = resolve(row.basic)
        elif "x" in row.tag:
            mask = int("".join("0" if c == "x" else "f" for c in row.tag), 16)
            value = int(row.tag.replace("x", "0"), 16)
            masked.append((mask, value, act))
        else:
            tag = int(row.tag, 16)
            if act == "C" and DATES_COLUMN in columns and tag in fixed_date_tags():
                act = "K"
            exact[tag] = act
    return Rules(exact, tuple(masked), private, columns)
