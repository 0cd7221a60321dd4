"""The shapes of the records a defacing run hands back: a case's provenance and sidecar, and a batch's per-input
record.

Both are plain dicts at run time (JSON on disk and on stdout); these TypedDicts only name their keys for
readers and for mypy. No import beyond typing, so any module may use them in annotations.
"""

from __future__ import annotations

from typing import Any, TypedDict, Union, final

# With the __future__ import the annotations below stay strings, so `str | None` is fine on Python 3.9.


class _ProvenanceRequired(TypedDict):
    engine: str | None  # "nnunet", "box", or "mask" when a mask was given
    model: str | None
    model_sha256: str | None
    device: str | None
    engine_details: dict[str, Any]  # the engine's own describe()
    fill_policy: str | float  # "p10", "air" or a number of HU (fill.parse_fill)
    fill_value: float
    mask_volume_ml: float
    mask_voxels: int
    timings_s: dict[str, float]  # load, orient, predict, postprocess, apply, check, write, total
    settings: dict[str, Any]  # DefaceSettings as a dict
    versions: dict[str, str]  # ctadeface and the libraries that shaped the result
    created_utc: str


class Provenance(_ProvenanceRequired, total=False):
    """What `pipeline.deface_image` records about one defacing (DefaceResult.provenance), before any file exists."""

    mask_source: dict[str, Any]  # the Slicer module: the engine that made a mask a person may have edited since


class Sidecar(Provenance, total=False):
    """`<name>_deface.json`: the provenance, plus what was read, the check's verdict and the outputs' checksums."""

    input: dict[str, Any]  # path, sha256, size, spacing, pixel_type (+ DICOM file counts); or the Slicer node
    reidentification_check: dict[str, Any]  # the evaluation plug-in's verdict, when --check ran
    outputs: dict[str, str]  # defaced / mask / sidecar -> absolute path
    outputs_sha256: dict[str, str]  # defaced / mask -> sha256


class _BatchRecordRequired(TypedDict):
    input: str
    status: str | None  # "done", "skipped" or "failed" (None only while the case runs)
    message: str  # why it was skipped or failed; empty when done


@final  # no subtype adds keys: `"study" in record` tells a DICOM study's record (ReportRecord) from it
class BatchRecord(_BatchRecordRequired, total=False):
    """One input of `deface_batch`'s report (and of `ctadeface deface --json`)."""

    outputs: dict[str, str]
    mask_volume_ml: float
    seconds: float | None
    check: str  # PASS / REVIEW, when the re-identification check ran
    check_reasons: list[str]  # why REVIEW (view, detector, landmarks, region and number), empty for PASS


#: A line of a run's report: a file's BatchRecord, or a DICOM study's record (dicom.study.deface_study: study,
#: status, message, report, series_defaced, series_left_out, seconds; a plain dict).
ReportRecord = Union[BatchRecord, dict[str, Any]]
