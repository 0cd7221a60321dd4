"""Regenerate ps3.15_table_e1-1.json from the innolitics `dicom-standard` parse of PS3.15 Table E.1-1.

Not imported by the package; run it by hand when a newer edition of the standard is wanted:

    git clone https://github.com/innolitics/dicom-standard
    python regenerate_table.py dicom-standard/standard/confidentiality_profile_attributes.json \
        --commit "$(git -C dicom-standard rev-parse HEAD)" --edition 2024e > ps3.15_table_e1-1.json

The input is MIT licensed (Copyright (c) 2017 Innolitics, LLC; LICENSE-dicom-standard.txt beside this
script). The output keeps every row and every action exactly as parsed; it only renames the option
columns to the option names the command line uses and writes the source, commit and edition in a header.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

# innolitics column -> our option name (the command-line spelling; the standard's option in the comment).
COLUMNS = {
    "rtnSafePrivOpt": "retain-safe-private",  # Retain Safe Private Option
    "rtnUIDsOpt": "retain-uids",  # Retain UIDs Option
    "rtnDevIdOpt": "retain-device-identity",  # Retain Device Identity Option
    "rtnInstIdOpt": "retain-institution-identity",  # Retain Institution Identity Option
    "rtnPatCharsOpt": "retain-patient-characteristics",  # Retain Patient Characteristics Option
    "rtnLongFullDatesOpt": "retain-dates-full",  # Retain Longitudinal Temporal Information with Full Dates
    "rtnLongModifDatesOpt": "retain-dates",  # Retain Longitudinal Temporal Information with Modified Dates
    "cleanDescOpt": "clean-descriptors",  # Clean Descriptors Option
    "cleanStructContOpt": "clean-structured-content",  # Clean Structured Content Option
    "cleanGraphOpt": "clean-graphics",  # Clean Graphics Option
}
ACTIONS = {"X", "Z", "D", "U", "K", "C", "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"}


def tag_key(tag: str) -> str:
    """'(0010,0020)' -> '00100020'; '(60XX,3000)' -> '60xx3000'; the odd-group row -> 'private'."""
    if "ODD" in tag.upper():
        return "private"
    match = re.fullmatch(r"\(([0-9A-Fa-fXx]{4}),([0-9A-Fa-fXx]{4})\)", tag.strip())
    if not match:
        raise ValueError(f"unexpected tag {tag!r}")
    return (match.group(1) + match.group(2)).lower()


def convert(rows: list, commit: str, edition: str) -> dict:
    out = []
    for row in rows:
        basic = row["basicProfile"]
        if basic not in ACTIONS:
            raise ValueError(f"unexpected action {basic!r} for {row['tag']}")
        options = {COLUMNS[k]: v for k, v in row.items() if k in COLUMNS}
        for value in options.values():
            if value not in ACTIONS:
                raise ValueError(f"unexpected option action {value!r} for {row['tag']}")
        name = " ".join(row["name"].split("\n")[0].split())  # without the "(see Note 11)" lines
        out.append({"tag": tag_key(row["tag"]), "name": name, "basic": basic, "options": options})
    out.sort(key=lambda r: r["tag"])
    return {
        "table": "DICOM PS3.15 Annex E, Table E.1-1 Application Level Confidentiality Profile Attributes",
        "edition": edition,
        "source": "https://github.com/innolitics/dicom-standard standard/confidentiality_profile_attributes.json",
        "source_commit": commit,
        "license": "MIT, Copyright (c) 2017 Innolitics, LLC (see LICENSE-dicom-standard.txt)",
        "generated_by": "regenerate_table.py in this folder",
        "tags": "8 hex digits group+element; 'x' is any hex digit; 'private' is every odd group",
        "rows": out,
    }


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="confidentiality_profile_attributes.json from innolitics/dicom-standard")
    parser.add_argument("--commit", required=True, help="the dicom-standard commit the file comes from")
    parser.add_argument("--edition", required=True, help="the PS3.15 edition that commit parsed, e.g. 2024e")
    args = parser.parse_args(argv)
    with open(args.source, encoding="utf-8") as handle:
        rows = json.load(handle)
    json.dump(convert(rows, args.commit, args.edition), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
