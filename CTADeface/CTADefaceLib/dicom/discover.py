"""Find DICOM files in folders of any depth and group them by study and series.

Only headers are read here (pydicom, stop_before_pixels): a 300-slice series is grouped in well under a
second. Files that are not DICOM are skipped with one line each (in `Discovery.skipped`); a DICOM file
without a study or series UID cannot be placed, and is skipped with its reason too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..io.volume import TEMP_PREFIX


@dataclass
class SliceFile:
    """One DICOM file: where it is and its header (no pixel data)."""

    path: str
    header: Any  # pydicom Dataset read with stop_before_pixels


@dataclass
class Series:
    study_uid: str
    series_uid: str
    files: list[SliceFile] = field(default_factory=list)

    def first(self) -> Any:
        return self.files[0].header

    @property
    def modality(self) -> str:
        return str(self.first().get("Modality", "") or "OT")

    @property
    def series_number(self) -> int | None:
        value = self.first().get("SeriesNumber")
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    @property
    def frame_of_reference(self) -> str | None:
        value = self.first().get("FrameOfReferenceUID")
        return str(value) if value else None


@dataclass
class Study:
    study_uid: str
    series: dict[str, Series] = field(default_factory=dict)  # by SeriesInstanceUID, in the order found

    @property
    def inputs(self) -> list[str]:
        return [f.path for s in self.series.values() for f in s.files]


@dataclass
class Discovery:
    studies: dict[str, Study] = field(default_factory=dict)  # by StudyInstanceUID
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    unreadable: list[str] = field(default_factory=list)  # files with the DICOM signature that could not be parsed

    def unreadable_beside(self, study: Study) -> list[str]:
        """Unreadable DICOM files in a folder that holds this study's files: a series may be missing slices."""
        folders = {os.path.dirname(p) for p in study.inputs}
        return [p for p in self.unreadable if os.path.dirname(p) in folders]


def has_dicom_signature(path: str) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def holds_dicom(path: str) -> bool:
    """True for a DICOM file, or a folder with a DICOM file at any depth (stops at the first one)."""
    if os.path.isfile(path):
        return has_dicom_signature(path)
    return any(has_dicom_signature(p) for p in walk_files(path))


def walk_files(root: str, exclude: tuple[str, ...] = ()) -> Iterator[str]:
    """Regular files under `root` in a stable order; hidden entries, DICOMDIR and this tool's temporaries skipped.

    `exclude`: folders never entered (the output folder, when it lies inside an input folder).
    """
    excluded = {os.path.normcase(os.path.realpath(e)) for e in exclude}
    if os.path.isfile(root):
        yield root
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith((".", TEMP_PREFIX))
            and os.path.normcase(os.path.realpath(os.path.join(folder, d))) not in excluded
        )
        for name in sorted(files):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def discover(inputs: list[str], exclude: tuple[str, ...] = ()) -> Discovery:
    """Every DICOM file under `inputs`, grouped by StudyInstanceUID and SeriesInstanceUID."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    found = Discovery()
    seen: set[str] = set()
    study_of_series: dict[str, str] = {}
    for item in inputs:
        for path in walk_files(item, exclude):
            key = os.path.normcase(os.path.realpath(path))
            if key in seen:
                continue
            seen.add(key)
            if not has_dicom_signature(path):
                found.skipped.append((path, "not a DICOM file (no DICM signature)"))
                continue
            try:
                header = pydicom.dcmread(path, stop_before_pixels=True)
                study_uid = str(header.get("StudyInstanceUID", "") or "")
                series_uid = str(header.get("SeriesInstanceUID", "") or "")
            except (InvalidDicomError, OSError, ValueError, TypeError, KeyError, AttributeError, EOFError) as err:
                found.skipped.append((path, f"unreadable DICOM file ({type(err).__name__})"))
                found.unreadable.append(path)
                continue
            if not study_uid or not series_uid:
                # a cut-off file can parse as far as its first tags: treat it as unreadable, not as "another file"
                found.skipped.append((path, "DICOM file without StudyInstanceUID or SeriesInstanceUID"))
                found.unreadable.append(path)
                continue
            # A series belongs to one study: slices that name another StudyInstanceUID (some writers make one
            # per file) stay with their series, under the study its first file names.
            study_uid = study_of_series.setdefault(series_uid, study_uid)
            study = found.studies.setdefault(study_uid, Study(study_uid))
            series = study.series.setdefault(series_uid, Series(study_uid, series_uid))
            series.files.append(SliceFile(path, header))
    return found
