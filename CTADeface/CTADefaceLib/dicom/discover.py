"""Find DICOM files in folders of any depth and group them by study and series.

Only headers are read here (pydicom, stop_before_pixels): a 300-slice series is grouped in well under a
second. Files that are not DICOM are skipped with one line each (in `Discovery.skipped`); a DICOM file
without a study or series UID cannot be placed, and is skipped with its reason too.

Symbolic links are followed only within the input folders: a link whose target lies outside every input (or
nowhere) is not followed and gets one line, so a received export cannot pull other patients' files from
elsewhere on the disk into the shared output (give the target as an input to include it). Linked folders are
never entered (their target is walked where it lies), so link loops cannot occur; a file reached twice, by a
link or by two inputs, is read once. Two files of one series with the same SOPInstanceUID: an identical copy is
read once and named in one line; two different files leave the series out (`Series.problem`), since the
output would hold two instances with one UID.
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
    problem: str | None = None  # why it cannot be defaced whatever its contents (set by discover)

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
    patient_ids: set[str] = field(default_factory=set)  # the PatientIDs its files name: one, in a sound study

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


LINK_OUTSIDE = "symbolic link to a place outside the input folders"


def holds_dicom(path: str) -> bool:
    """True for a DICOM file, or a folder with a DICOM file at any depth (stops at the first one), or with a link
    to a place outside it that is not followed (so that the DICOM path says why nothing was found there)."""
    if os.path.isfile(path):
        return has_dicom_signature(path)
    skipped: list[tuple[str, str]] = []
    if any(has_dicom_signature(p) for p in walk_files(path, skipped=skipped)):
        return True
    return any(reason.startswith(LINK_OUTSIDE) for _, reason in skipped)


def _inside_any(path: str, roots: tuple[str, ...]) -> bool:
    return any(os.path.commonpath([root, path]) == root for root in roots)


def _link_reason(path: str, roots: tuple[str, ...]) -> str | None:
    """Why the symbolic link at `path` is not followed, or None when its target lies within the input folders."""
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return "broken symbolic link (its target does not exist)"
    if not _inside_any(os.path.normcase(target), roots):
        return f"{LINK_OUTSIDE}: not followed (give its target as an input)"
    return None


def walk_files(
    root: str,
    exclude: tuple[str, ...] = (),
    *,
    roots: tuple[str, ...] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[str]:
    """Regular files under `root` in a stable order; hidden entries, DICOMDIR and this tool's temporaries skipped.

    `exclude`: folders never entered (the output folder, when it lies inside an input folder). `roots`: the input
    folders symbolic links may point into (default: `root`); links elsewhere are left out with their reason in
    `skipped`. Linked folders are not entered.
    """
    excluded = {os.path.normcase(os.path.realpath(e)) for e in exclude}
    if os.path.isfile(root):
        yield root
        return
    inside = tuple(os.path.normcase(os.path.realpath(r)) for r in (roots or (root,)))
    notes = skipped if skipped is not None else []
    for folder, dirs, files in os.walk(root):
        kept = []
        for d in sorted(dirs):
            path = os.path.join(folder, d)
            if d.startswith((".", TEMP_PREFIX)) or os.path.normcase(os.path.realpath(path)) in excluded:
                continue
            if os.path.islink(path):
                reason = _link_reason(path, inside)
                if reason:
                    notes.append((path, reason))
                continue  # its target is walked where it lies (no loops)
            kept.append(d)
        dirs[:] = kept
        for name in sorted(files):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = os.path.join(folder, name)
            if os.path.islink(path):
                reason = _link_reason(path, inside)
                if reason:
                    notes.append((path, reason))
                    continue
                if excluded and _inside_any(os.path.normcase(os.path.realpath(path)), tuple(excluded)):
                    continue  # a link into the output folder: never read this tool's own outputs as input
            if os.path.isfile(path):
                yield path


def _same_bytes(a: str, b: str) -> bool:
    import filecmp

    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def discover(inputs: list[str], exclude: tuple[str, ...] = ()) -> Discovery:
    """Every DICOM file under `inputs`, grouped by StudyInstanceUID and SeriesInstanceUID."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    found = Discovery()
    seen: set[str] = set()
    study_of_series: dict[str, str] = {}
    roots = tuple(os.path.realpath(item) for item in inputs if os.path.isdir(item))
    instances: dict[tuple[str, str], str] = {}  # (series, SOPInstanceUID) -> the first file with it
    for item in inputs:
        for path in walk_files(item, exclude, roots=roots or None, skipped=found.skipped):
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
                instance_uid = str(header.get("SOPInstanceUID", "") or "")
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
            first = instances.setdefault((series_uid, instance_uid), path) if instance_uid else path
            if first != path:
                if _same_bytes(first, path):
                    found.skipped.append((path, f"a copy of {first} (same SOPInstanceUID and contents): read once"))
                    continue
                series.problem = (
                    f"two different files have the same SOPInstanceUID ({os.path.basename(first)} and "
                    f"{os.path.basename(path)}): remove the wrong one, or export the series again"
                )
            series.files.append(SliceFile(path, header))
            patient_id = str(header.get("PatientID", "") or "").strip()
            if patient_id:  # a file without one (some SRs) belongs to whoever the others name
                study.patient_ids.add(patient_id)
    return found
