"""Regenerate ps3.15_table_e3_10-1.json from PS3.15 Annex E as reStructuredText (Table E.3.10-1).

Not imported by the package; run it by hand (the output is committed beside it):

    git clone https://github.com/chsasank/dicom_standard
    python regenerate_safe_private.py dicom_standard/source/part15/chapter_E.rst \
        --commit "$(git -C dicom_standard rev-parse HEAD)" > ps3.15_table_e3_10-1.json

The input is DICOM PS3.15 Annex E (NEMA's text, copyright NEMA) as converted to reStructuredText by that
repository; ps3.15_sect_e3_10.rst beside this script is its section E.3.10, the table included, as it stands
at the commit named in the JSON header, and the script reads it as well as the whole chapter. The grid table
"Safe Private Attributes" is parsed cell by cell: nothing is typed by hand. A cell's wrapped lines are joined
with one space; the one inline markup in the table (a superscript "st", wrapped inside its role name) is
written as plain text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys

SECTION = ".. _sect_E.3.10:"
NEXT_SECTION = ".. _sect_E.3.11:"
TABLE = ".. table:: Safe Private Attributes"
HEADER = ["Data Element", "Private Creator", "VR", "VM", "Meaning"]
SOURCE = "https://github.com/chsasank/dicom_standard source/part15/chapter_E.rst"
# What can be said of the edition: the repository does not name it.
EDITION = (
    "a 2020 edition of PS3.15 (the source repository's Sphinx configuration says copyright 2020 NEMA; it does not "
    "name the edition letter, and its commit of 2020-08-07 leaves 2020a, 2020b or 2020c as the candidates if the "
    "text is of that year)"
)


def section(text: str) -> list[str]:
    """The lines of section E.3.10 (from its anchor to the next section's anchor)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == SECTION)
    except StopIteration:
        raise ValueError(f"no {SECTION!r} in the input") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() == NEXT_SECTION), len(lines))
    return lines[start:end]


def _cell_text(parts: list[str]) -> str:
    text = " ".join(p for p in parts if p)
    # "1\ :sup:`st`\ value", wrapped inside the role name by the conversion: the superscript as plain text.
    text = re.sub(r"\\ :s ?up:`([^`]*)`\\ ", r"\1 ", text)
    if "`" in text or "\\" in text:
        raise ValueError(f"unexpected markup in cell {text!r}")
    return text


def grid_rows(lines: list[str]) -> list[list[str]]:
    """The rows of the first grid table after TABLE, each a list of cell texts (the header row first)."""
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == TABLE)
    except StopIteration:
        raise ValueError(f"no {TABLE!r} in the section") from None
    i = start + 1
    while not lines[i].strip().startswith("+"):
        i += 1
    border = lines[i]
    edges = [j for j, ch in enumerate(border) if ch == "+"]
    rows: list[list[str]] = []
    cells: list[list[str]] = [[] for _ in edges[:-1]]
    for line in lines[i + 1 :]:
        stripped = line.strip()
        if stripped.startswith("+"):  # a row ends (--- or ===)
            if [line[j] for j in edges] != ["+"] * len(edges):
                raise ValueError(f"border out of line with the table's columns: {line!r}")
            rows.append([_cell_text(c) for c in cells])
            cells = [[] for _ in edges[:-1]]
            continue
        if not stripped.startswith("|"):
            break  # the table ended
        if [line[j] for j in edges] != ["|"] * len(edges):
            raise ValueError(f"cell line out of line with the table's columns: {line!r}")
        for k in range(len(edges) - 1):
            cells[k].append(line[edges[k] + 1 : edges[k + 1]].strip())
    return rows


def convert(text: str, commit: str) -> dict:
    lines = section(text)
    rows = grid_rows(lines)
    header = [h.replace("*", "").strip() for h in rows[0]]
    if header != HEADER:
        raise ValueError(f"unexpected table header {header!r}")
    out = []
    for tag, creator, vr, vm, meaning in rows[1:]:
        match = re.fullmatch(r"\(([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})\)", tag)
        if not match or not creator:
            raise ValueError(f"unexpected row {tag!r} {creator!r}")
        if int(match.group(1), 16) % 2 != 1:
            raise ValueError(f"{tag} is not in an odd (private) group")
        if vr and not re.fullmatch(r"[A-Z]{2}", vr):
            raise ValueError(f"unexpected VR {vr!r} for {tag}")
        out.append(
            {
                "tag": tag,
                "group": match.group(1).upper(),
                "element": match.group(2).upper(),
                "creator": creator,
                "vr": vr,
                "vm": vm,
                "meaning": meaning,
            }
        )
    section_text = "\n".join(lines) + "\n"
    return {
        "table": "DICOM PS3.15 Annex E, Table E.3.10-1 Safe Private Attributes (in Note 1 of E.3.10)",
        "edition": EDITION,
        "source": SOURCE,
        "source_commit": commit,
        "source_section_sha256": hashlib.sha256(section_text.encode("utf-8")).hexdigest(),
        "copyright": "the text of the DICOM Standard, copyright NEMA",
        "caveat": "the standard's own words: vendors do not guarantee them to be safe, and do not commit to "
        "sending them in any particular software version",
        "generated_by": "regenerate_safe_private.py in this folder",
        "columns": "group: 4 hex digits; element: the low byte of the element, its high byte being the block "
        "(gggg,xxEE) that the Private Creator (gggg,00xx) reserves; an empty vr is empty in the table",
        "rows": out,
    }


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="chapter_E.rst of part15 (or ps3.15_sect_e3_10.rst, its section E.3.10)")
    parser.add_argument("--commit", required=True, help="the dicom_standard commit the file comes from")
    parser.add_argument("--section-out", help="also write section E.3.10 of the input to this file")
    args = parser.parse_args(argv)
    with open(args.source, encoding="utf-8") as handle:
        text = handle.read()
    if args.section_out:
        with open(args.section_out, "w", encoding="utf-8") as handle:
            handle.write("\n".join(section(text)) + "\n")
    json.dump(convert(text, args.commit), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
