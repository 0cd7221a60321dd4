"""One DICOM study in, one folder of defaced, de-identified DICOM out, with one report.

    study -> classify every series (left out with a reason, or defaceable) -> group the defaceable ones
    by FrameOfReferenceUID -> per group: the mask source (the thinnest untilted axial series that spans
    the head) -> the pipeline's mask on it (deface_image) -> that mask, nearest neighbour, onto every
    series of the group -> per slice: stored values under the mask replaced, header de-identified, written

A series with its own frame of reference gets its own mask. The whole study is written into a staging
folder inside the output folder and renamed into place at once; the report `<study folder>_deface.json`
comes last, so a study folder with its report is complete.

The header step is `deid` (CTADefaceLib.deid.Deidentifier or anything with the same three methods):
`deidentify(ds, defaced=True)` -> a new dataset (PixelData untouched), `new_uid(uid)`, `describe()`.
Nothing in the report or in a file or folder name is an original UID, name or path.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..engines import engine_for
from ..errors import DefaceError, InputError, OutputError
from ..io.case_outputs import write_json_atomic
from ..io.volume import temp_prefix
from . import coverage
from .classify import left_out_reason
from .discover import Series, Study
from .geometry import Geometry, mask_on_series, series_geometry
from .pixels import deface_slice, rescale, set_uncompressed_pixels, stored_values
from .writer import instance_file_name, series_folder_name, sync_files, write_dataset

if TYPE_CHECKING:
    from ..engines.base import Engine
    from ..settings import DefaceSettings

log = logging.getLogger(__name__)

REPORT_SUFFIX = "_deface.json"
#: A series whose extent along the head is at least this fraction of the longest one's "covers the face".
COVERAGE_FRACTION = 0.9


@dataclass
class SeriesPlan:
    series: Series
    geometry: Geometry | None = None
    reason: str | None = None  # why it is left out; None = defaceable
    record: dict[str, Any] = field(default_factory=dict)  # its line in the report

    @property
    def label(self) -> str:
        number = self.series.series_number
        return f"series {number}" if number is not None else "series without a number"


def plan_series(series: Series) -> SeriesPlan:
    plan = SeriesPlan(series, reason=left_out_reason(series))
    if plan.reason is None:
        try:
            plan.geometry = series_geometry(series, f"The {plan.label}")
        except InputError as err:
            plan.reason = str(err).rstrip(".")
    return plan


def choose_mask_source(plans: list[SeriesPlan]) -> SeriesPlan | None:
    """The thinnest untilted series that spans the head (axial preferred); None if every one is tilted."""
    usable = [p for p in plans if p.geometry is not None and not p.geometry.tilted]
    if not usable:
        return None
    axial = [p for p in usable if p.geometry.is_axial] or usable  # type: ignore[union-attr]
    longest = max(p.geometry.extent_mm for p in axial)  # type: ignore[union-attr]
    covering = [p for p in axial if p.geometry.extent_mm >= COVERAGE_FRACTION * longest]  # type: ignore[union-attr]
    return min(covering, key=lambda p: (p.geometry.slice_spacing, -len(p.geometry.slices)))  # type: ignore[union-attr]


def read_volume(geometry: Geometry) -> Any:
    """The series as a SimpleITK image in HU (Int16 when the rescale keeps whole numbers in range, else Float32)."""
    import pydicom
    import SimpleITK as sitk

    planes, integral = [], True
    for item in geometry.slices:
        ds = pydicom.dcmread(item.path)
        slope, intercept = rescale(ds)
        values = stored_values(ds).astype(np.float64) * slope + intercept
        integral = integral and slope == int(slope) and intercept == int(intercept)
        planes.append(values.astype(np.float32))
    volume = np.stack(planes)
    if integral and volume.min() >= -32768 and volume.max() <= 32767:
        volume = volume.astype(np.int16)
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def write_series(
    geometry: Geometry,
    mask: np.ndarray,
    fill_hu: float,
    deidentify: Callable[[Any], Any],
    folder: str,
    study_uid: str | None = None,
    timings: dict[str, float] | None = None,
) -> int:
    """Deface and de-identify every slice of the series into `folder`; returns how many pixels changed.

    `timings` (optional) accumulates seconds per step: read, deface, deidentify, write, sync.
    """
    import pydicom

    os.makedirs(folder, exist_ok=True)
    changed, written = 0, []
    spent = timings if timings is not None else {}
    for name in ("read", "deface", "deidentify", "write", "sync"):
        spent.setdefault(name, 0.0)
    clock = time.perf_counter
    for index, item in enumerate(geometry.slices):
        start = clock()
        try:
            ds = pydicom.dcmread(item.path)
        except Exception as err:  # noqa: BLE001 - a hostile or broken file: one sentence, no traceback
            raise InputError(f"Slice {index + 1} could not be read ({type(err).__name__}).") from None
        if study_uid and ds.get("StudyInstanceUID") != study_uid:
            ds.StudyInstanceUID = study_uid  # (in memory) one study per series: see discover.py
        step = clock()
        spent["read"] += step - start
        values, count = deface_slice(ds, mask[index], fill_hu)
        changed += count
        start = clock()
        spent["deface"] += start - step
        out = deidentify(ds)
        step = clock()
        spent["deidentify"] += step - start
        set_uncompressed_pixels(out, values)
        path = os.path.join(folder, instance_file_name(index))
        write_dataset(out, path, sync=False)
        written.append(path)
        spent["write"] += clock() - step
    start = clock()
    sync_files(written)
    spent["sync"] += clock() - start
    return changed


def report_path(outdir: str, folder_name: str) -> str:
    return os.path.join(outdir, folder_name + REPORT_SUFFIX)


def study_folder_name(study: Study, deid: Any) -> str:
    """The de-identified StudyInstanceUID: the same study gives the same folder with the same key; no PHI."""
    return str(deid.new_uid(study.study_uid))


LOCAL_PATH = "(a local path, not shown)"
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:|\\\\)")  # C: or \\server


def _is_local_path(text: str) -> bool:
    """A file system path in any form: absolute, from home, relative with a folder, Windows; a URL is masked too."""
    return (
        os.path.isabs(text)
        or text.startswith("~")
        or bool(_WINDOWS_PATH.match(text))
        or "/" in text
        or "\\" in text
        or text in (".", "..")
    )


def _without_paths(value: Any) -> Any:
    """`value` with every string that is a local path replaced: a model folder, a key, a thresholds folder or any
    engine option can sit under a folder named after the patient, the project or the user."""
    if isinstance(value, str):
        return LOCAL_PATH if _is_local_path(value) else value
    if isinstance(value, dict):
        return {key: _without_paths(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_paths(item) for item in value]
    return value


def _shareable_settings(settings: DefaceSettings) -> dict[str, Any]:
    """The settings for the shared report, without the paths of the key and the mapping file: a path can name
    the patient, the project or the user, and the mapping file re-identifies; the report says only whether each
    was used. Any other path (the model folder, an engine option) is replaced too."""
    record = settings.to_dict()
    for name in ("deid_key", "mapping_file"):
        if record.get(name) is not None:
            record[name] = "given"
    return dict(_without_paths(record))


def _versions() -> dict[str, str]:
    from importlib import metadata

    from ..pipeline import package_versions

    versions = package_versions()
    for name in ("pydicom", "python-gdcm"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def deface_study(
    study: Study,
    outdir: str,
    settings: DefaceSettings,
    deid: Any,
    *,
    engine: Engine | None = None,
    overwrite: bool = False,
    compute: Callable[..., Any] | None = None,
    check: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Deface and de-identify one study into `outdir`; returns its record for the summary.

    Record: {"study": folder name, "status": done/skipped/failed, "message", "report": path, ...}.
    `compute(image, settings, engine=..., name=...)`: the mask step (default pipeline.deface_image).
    `check(defaced, original)`: the re-identification check (`--check`, from the evaluation plug-in), run on every
    volume a mask was computed on (the mask source of each frame of reference, and each series with a mask of its
    own); its verdicts go into the report's `masks` and the record's `check` (REVIEW if any one is REVIEW).
    """
    from ..pipeline import deface_image

    compute = _checked(compute or deface_image, check)
    started = time.perf_counter()
    name = study_folder_name(study, deid)
    final, report_file = os.path.join(outdir, name), report_path(outdir, name)
    record: dict[str, Any] = {"study": name, "status": None, "message": "", "report": report_file}
    if os.path.lexists(report_file) and not overwrite:
        _remember_written(study, deid, report_file)
        return dict(record, status="skipped", message="outputs exist (use --overwrite to redo)")
    if len(study.patient_ids) > 1:  # one study, several patients: never mix them in one shared study folder
        return dict(
            record,
            status="failed",
            message=(
                f"Its files name {len(study.patient_ids)} different PatientIDs under one StudyInstanceUID; "
                "separate the patients' files and run again."
            ),
        )
    plans = [plan_series(s) for s in study.series.values()]
    groups: dict[str, list[SeriesPlan]] = {}
    for plan in plans:
        if plan.reason is None:
            key = plan.series.frame_of_reference or f"series:{plan.series.series_uid}"
            groups.setdefault(key, []).append(plan)
    masks: list[dict[str, Any]] = []
    staging = tempfile.mkdtemp(prefix=temp_prefix(), dir=outdir)
    try:
        study_dir = os.path.join(staging, name)
        taken: set[str] = set()
        for key, members in groups.items():
            engine = _deface_group(key, members, study_dir, taken, settings, deid, engine, compute, masks)
        series_records = [_series_record(p, deid) for p in sorted(plans, key=_order)]
        defaced = sum(r["fate"] == "defaced" for r in series_records)
        if not defaced:
            if len(plans) == 1:
                return dict(record, status="failed", message=f"{plans[0].reason}.")
            reasons = "; ".join(f"{p.label}: {p.reason}" for p in plans)
            return dict(record, status="failed", message=f"No series of the study could be defaced ({reasons}).")
        report = {
            "study_folder": name,
            "series": series_records,
            "masks": masks,
            "deidentification": deid.describe(),
            "settings": _shareable_settings(settings),
            "versions": _versions(),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        _commit(study_dir, final, report, report_file, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    left = len(plans) - defaced
    record.update(status="done", series_defaced=defaced, series_left_out=left, seconds=report["seconds"])
    verdicts = [
        (m["source_series_number"], m["reidentification_check"]) for m in masks if "reidentification_check" in m
    ]
    if verdicts:
        record["check"] = "REVIEW" if any(v.get("check") != "PASS" for _, v in verdicts) else "PASS"
        record["check_reasons"] = [f"series {n}: {r}" for n, v in verdicts for r in v.get("reasons", [])]
    return record


def _checked(compute: Callable[..., Any], check: Callable[..., Any] | None) -> Callable[..., Any]:
    """`compute`, followed by the re-identification check of its defaced volume against the original."""
    if check is None:
        return compute

    def compute_and_check(image: Any, settings: DefaceSettings, **kwargs: Any) -> Any:
        result = compute(image, settings, **kwargs)
        result.provenance["reidentification_check"] = _without_paths(check(result.defaced, image))
        return result

    return compute_and_check


def _deface_group(
    key: str,
    members: list[SeriesPlan],
    study_dir: str,
    taken: set[str],
    settings: DefaceSettings,
    deid: Any,
    engine: Engine | None,
    compute: Callable[..., Any],
    masks: list[dict[str, Any]],
) -> Engine | None:
    """One mask for the series of one frame of reference, applied to each of them."""
    source = choose_mask_source(members)
    if source is None:
        for plan in members:
            plan.reason = (
                f"gantry-tilted ({plan.geometry.tilt_degrees:g} degrees) and no untilted series shares its frame of "  # type: ignore[union-attr]
                "reference to compute the face mask on; reconstruct it without tilt, or send an untilted series with it"
            )
        return engine
    engine = engine or engine_for(settings)  # loaded once, for the first mask of the run
    try:
        volume = read_volume(source.geometry)  # type: ignore[arg-type]
        result = compute(volume, settings, engine=engine, name=f"the {source.label}")
    except DefaceError as err:
        for plan in members:
            plan.reason = f"no face mask: {str(err).rstrip('.')} (mask source {source.label})"
        return engine
    fill_hu = float(result.provenance["fill_value"])
    entry = {
        "frame_of_reference": None if key.startswith("series:") else str(deid.new_uid(key)),
        "source_series_number": source.series.series_number,
        "source_series_uid": str(deid.new_uid(source.series.series_uid)),
        "mask_volume_ml": result.provenance["mask_volume_ml"],
        "fill_hu": fill_hu,
        "engine": _without_paths(result.provenance.get("engine_details")),  # e.g. nnU-Net's model folder
        "series_numbers": [],
    }
    if "reidentification_check" in result.provenance:
        entry["reidentification_check"] = result.provenance["reidentification_check"]
    masks.append(entry)
    for plan in members:
        resampled = mask_on_series(result.mask, plan.geometry)  # type: ignore[arg-type]
        chosen = _series_mask(plan, source, resampled, fill_hu, settings, engine, compute, deid, masks)
        if chosen is None:
            continue
        mask, fill, extra = chosen
        if extra.get("own_mask", {}).get("mask") != "own":
            entry["series_numbers"].append(plan.series.series_number)
        folder_name = series_folder_name(plan.series.series_number, plan.series.modality, taken)
        folder = os.path.join(study_dir, folder_name)
        try:
            changed = write_series(
                plan.geometry,  # type: ignore[arg-type]
                mask,
                fill,
                lambda ds: deid.deidentify(ds, defaced=True),
                folder,
                plan.series.study_uid,
            )
        except DefaceError as err:
            shutil.rmtree(folder, ignore_errors=True)
            plan.reason = str(err).rstrip(".")
            continue
        plan.record = {
            "output_folder": folder_name,
            "mask_source": plan is source,
            "mask_from_series_number": source.series.series_number,
            "changed_pixels": changed,
            "tilt_degrees": plan.geometry.tilt_degrees,  # type: ignore[union-attr]
            **extra,
        }
    return engine


def _series_mask(
    plan: SeriesPlan,
    source: SeriesPlan,
    resampled: np.ndarray,
    fill_hu: float,
    settings: DefaceSettings,
    engine: Engine | None,
    compute: Callable[..., Any],
    deid: Any,
    masks: list[dict[str, Any]],
) -> tuple[np.ndarray, float, dict[str, Any]] | None:
    """(mask, fill, report lines) for one series of a group, or None (plan.reason set) when it is left out.

    The source's resampled mask, unless the source's grid does not cover the series' body (coverage.py): then
    a mask computed on the series' own grid, alone or with the source's (see coverage.combine).
    """
    geometry, source_geometry = plan.geometry, source.geometry
    if plan is source or coverage.grid_inside(geometry, source_geometry):  # type: ignore[arg-type]
        return resampled, fill_hu, {"coverage": 1.0}
    volume = read_volume(geometry)  # type: ignore[arg-type]
    import SimpleITK as sitk

    covered = coverage.body_coverage(geometry, sitk.GetArrayViewFromImage(volume), source_geometry)  # type: ignore[arg-type]
    if covered >= coverage.COVERED_FRACTION:
        return resampled, fill_hu, {"coverage": round(covered, 4)}
    outside = f"{100 * (1 - covered):.1f}% of its body lies outside the grid of the mask source ({source.label})"
    if geometry.tilted:  # type: ignore[union-attr]
        plan.reason = (
            f"gantry-tilted and {outside}, where the source's mask cannot reach and a tilted series cannot get a "
            "mask of its own; reconstruct it without tilt, or send a series that covers the whole head with it"
        )
        return None
    try:
        own = compute(volume, settings, engine=engine, name=f"the {plan.label}")
    except DefaceError as err:
        plan.reason = f"{outside}, and no face mask of its own: {str(err).rstrip('.')}"
        return None
    own_mask = sitk.GetArrayFromImage(own.mask)
    agreement = coverage.jaccard(resampled, own_mask, coverage.inside_source(geometry, source_geometry))  # type: ignore[arg-type]
    mask, how = coverage.combine(resampled, own_mask, agreement)
    own_fill = float(own.provenance["fill_value"])
    why = outside
    if how == "own":
        why += (
            f"; inside that grid the source's mask and its own agree only {agreement:.3f} (Jaccard, below "
            f"{coverage.MIN_JACCARD}), so its own mask alone is used"
        )
    else:
        why += "; its own mask is used together with the source's"
    masks.append(
        {
            "frame_of_reference": None,
            "source_series_number": plan.series.series_number,
            "source_series_uid": str(deid.new_uid(plan.series.series_uid)),
            "mask_volume_ml": own.provenance["mask_volume_ml"],
            "fill_hu": own_fill,
            "engine": _without_paths(own.provenance.get("engine_details")),
            "series_numbers": [plan.series.series_number],
            "why": why,
            **{k: v for k, v in own.provenance.items() if k == "reidentification_check"},  # its own mask alone
        }
    )
    extra = {
        "coverage": round(covered, 4),
        "own_mask": {"why": why, "jaccard_with_source_mask": round(agreement, 4), "mask": how},
    }
    if how == "own":
        extra["mask_from_series_number"] = plan.series.series_number
    return mask, own_fill, extra


def _remember_written(study: Study, deid: Any, report_file: str) -> None:
    """A study skipped because it was written before still gets its rows in this run's --mapping-file: its series
    that the report lists as defaced are de-identified again from their headers (nothing is written)."""
    if getattr(deid, "mapping", None) is None:
        return
    try:
        with open(report_file, encoding="utf-8") as handle:
            report = json.load(handle)
        written = {s["new_series_uid"] for s in report["series"] if s.get("fate") == "defaced"}
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a report of this tool: nothing known to have been written
    for series in study.series.values():
        if str(deid.new_uid(series.series_uid)) in written:
            for item in series.files:
                if item.header.get("StudyInstanceUID") != series.study_uid:
                    item.header.StudyInstanceUID = series.study_uid  # (in memory) as write_series does
                deid.deidentify(item.header, defaced=True)


def _order(plan: SeriesPlan) -> tuple[int, int]:
    number = plan.series.series_number
    return (number is None, number or 0)


def _series_record(plan: SeriesPlan, deid: Any) -> dict[str, Any]:
    base = {
        "series_number": plan.series.series_number,
        "modality": plan.series.modality,
        "new_series_uid": str(deid.new_uid(plan.series.series_uid)),
        "files": len(plan.series.files),
    }
    if plan.reason is None and plan.record:
        return dict(base, fate="defaced", **plan.record)
    return dict(base, fate="left out", reason=plan.reason or "not written")


def _commit(study_dir: str, final: str, report: dict[str, Any], report_file: str, staging: str) -> None:
    """Study folder into place at once (an older one set aside first), then the report."""
    old = None
    if os.path.lexists(report_file):
        os.remove(report_file)  # from here on the old study is incomplete, never mixed with the new report
    if os.path.lexists(final):
        if not os.path.isdir(final) or os.path.islink(final):
            raise OutputError(f"{final} exists and is not a study folder of this tool; choose another output folder.")
        old = os.path.join(staging, "previous")
        os.replace(final, old)
    os.replace(study_dir, final)
    write_json_atomic(report, report_file)
    if old:
        shutil.rmtree(old, ignore_errors=True)
