"""The one defacing pipeline every front door calls (CLI, Slicer module, batch script, evaluation).

    image -> canonical orientation -> engine mask -> back on the input grid -> post-processing
          -> fill -> outputs + provenance sidecar

`deface_image` works on SimpleITK images in memory (what Slicer uses); `deface_file` adds
reading, atomic writing and the sidecar; `deface_batch` runs many files and keeps going past a
bad one.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
import traceback
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, cast

from . import __version__
from .engines import engine_for
from .errors import DefaceError, OutputError
from .fill import apply_mask, fill_value, parse_fill
from .hashing import file_sha256
from .io.case_outputs import (
    OutputsExist,
    case_leftovers,
    claim_case,
    output_folder_lock,
    own_staging_folders,
    prepare_output_folder,
    remove_stale_temporaries,
    write_case,
    write_json_atomic,
)
from .io.volume import IMAGE_SUFFIXES, from_canonical, input_digest, read_image, same_grid, split_suffix, to_canonical
from .mask import binary_face, mask_volume_ml, mask_voxels, postprocess, require_face
from .settings import DefaceSettings  # noqa: F401  (defined once, in settings.py)

if TYPE_CHECKING:
    import SimpleITK as sitk

    from .engines.base import Engine
    from .records import BatchRecord, Provenance, Sidecar

#: A re-identification check (commands.reidentification_checker): (defaced image, original image) -> its verdict
#: for the sidecar. The original is passed so that the check can first show it sees a face there.
Check = Callable[["sitk.Image", "sitk.Image"], "dict[str, Any]"]

log = logging.getLogger(__name__)

# file_sha256 (hashing.py) and write_json_atomic (io/case_outputs.py) live elsewhere;
# other modules import them from here too.
__all__ = [
    "DefaceSettings",
    "DefaceResult",
    "deface_image",
    "deface_file",
    "deface_batch",
    "expand_inputs",
    "find_inputs",
    "output_paths",
    "write_outputs",
    "write_json_atomic",
    "file_sha256",
    "case_name",
]


@dataclass
class DefaceResult:
    defaced: sitk.Image  # input grid and pixel type
    mask: sitk.Image  # UInt8, input grid
    provenance: Provenance  # the sidecar's content, before the outputs are written


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"ctadeface": __version__}
    for name in ("SimpleITK", "numpy", "torch", "nnunetv2", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def compute_mask(
    image: sitk.Image, settings: DefaceSettings, engine: Engine | None = None, timings: dict[str, float] | None = None
) -> tuple[sitk.Image, Engine]:
    """The engine's face mask on `image`'s exact grid (engines work in the canonical orientation)."""
    timings = {} if timings is None else timings
    engine = engine or engine_for(settings)
    start = time.perf_counter()
    canonical = to_canonical(image)
    timings["orient"] = time.perf_counter() - start
    start = time.perf_counter()
    mask = engine.predict(canonical)
    timings["predict"] = time.perf_counter() - start
    return from_canonical(binary_face(mask), image), engine


def deface_image(
    image: sitk.Image,
    settings: DefaceSettings | None = None,
    *,
    engine: Engine | None = None,
    mask: sitk.Image | None = None,
    name: str = "the image",
) -> DefaceResult:
    """Deface an in-memory image. Give `mask` (e.g. a corrected segmentation) to skip the engine."""
    settings = settings or DefaceSettings()
    policy = parse_fill(settings.fill)
    timings: dict[str, float] = {}
    described: dict[str, Any] = {"engine": "mask", "model": None, "model_sha256": None, "device": None}
    min_ml = 0.0
    if mask is None:
        min_ml = settings.min_face_ml
        mask, engine = compute_mask(image, settings, engine, timings)
        described = engine.describe()
    elif not same_grid(mask, image):
        raise DefaceError(
            f"The given mask is not on {name}'s voxel grid (size, spacing, origin and direction must match)."
        )
    start = time.perf_counter()
    mask = postprocess(
        binary_face(mask, "any"),
        largest_component=settings.largest_component,
        fill_holes=settings.fill_holes,
        margin_mm=settings.margin_mm,
    )
    require_face(mask, name, min_ml)
    timings["postprocess"] = time.perf_counter() - start
    start = time.perf_counter()
    value = fill_value(image, policy)
    defaced = apply_mask(image, mask, value)
    timings["apply"] = time.perf_counter() - start
    provenance: Provenance = {
        "engine": described.get("engine"),
        "model": described.get("model"),
        "model_sha256": described.get("model_sha256"),
        "device": described.get("device"),
        "engine_details": described,
        "fill_policy": policy,
        "fill_value": value,
        "mask_volume_ml": round(mask_volume_ml(mask), 3),
        "mask_voxels": mask_voxels(mask),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "settings": {k: v for k, v in asdict(settings).items()},
        "versions": package_versions(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return DefaceResult(defaced, mask, provenance)


# ---------------------------------------------------------------------------- files
def case_name(input_path: str) -> str:
    path = input_path.rstrip("/\\")
    if os.path.isdir(path):
        return os.path.basename(path)
    return os.path.basename(split_suffix(path)[0])


def output_paths(input_path: str, outdir: str, output_format: str | None = None) -> dict[str, str]:
    """`<name>_defaced.<ext>`, `<name>_facemask.<ext>`, `<name>_deface.json` in outdir."""
    suffix = output_format or split_suffix(input_path)[1] or ".nii.gz"
    if suffix in (".mhd", ".nhdr", ".nii"):
        suffix = {".mhd": ".mha", ".nhdr": ".nrrd", ".nii": ".nii"}[suffix]  # one file per output
    if not suffix.startswith("."):
        suffix = "." + suffix
    name = case_name(input_path)
    return {
        "defaced": os.path.join(outdir, f"{name}_defaced{suffix}"),
        "mask": os.path.join(outdir, f"{name}_facemask{suffix}"),
        "sidecar": os.path.join(outdir, f"{name}_deface.json"),
    }


def write_outputs(
    result: DefaceResult,
    paths: dict[str, str],
    *,
    overwrite: bool = False,
    protect: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
    started: float | None = None,
) -> Sidecar:
    """Write defaced image, mask and sidecar all-or-nothing (io/case_outputs.write_case): the sidecar comes last.

    `started`: when the case began (time.perf_counter()); the sidecar then records the total time.
    """
    start = time.perf_counter()
    sidecar: dict[str, Any] = dict(result.provenance)
    sidecar.update(extra or {})

    def finish(data: dict[str, Any]) -> None:
        data["timings_s"] = dict(data["timings_s"], write=round(time.perf_counter() - start, 3))
        if started is not None:
            data["timings_s"]["total"] = round(time.perf_counter() - started, 3)

    written = write_case(
        {"defaced": result.defaced, "mask": result.mask},
        sidecar,
        paths,
        overwrite=overwrite,
        protect=protect,
        before_sidecar=finish,
    )
    return cast("Sidecar", written)  # the provenance above plus the outputs write_case adds


def deface_file(
    input_path: str,
    outdir: str,
    settings: DefaceSettings | None = None,
    *,
    engine: Engine | None = None,
    overwrite: bool = False,
    check: Check | None = None,
    claimed: bool = False,
) -> Sidecar:
    """Deface one file (or DICOM folder) into outdir; returns the sidecar dict.

    `check`: a re-identification check passed in by the command layer (commands.reidentification_checker,
    from the evaluation plug-in): called with the defaced image and the original, its verdict (PASS/REVIEW, with
    the reasons) is stored in the sidecar under `reidentification_check`.
    `claimed`: the caller (deface_batch) holds the output folder's lock and has already called
    `claim_case` for this input; otherwise this function does both.
    """
    settings = settings or DefaceSettings()
    paths = output_paths(input_path, outdir, settings.output_format)
    if not claimed:
        prepare_output_folder(outdir)
        with output_folder_lock(outdir):
            remove_stale_temporaries(outdir)
            claim_case(input_path, paths, overwrite=overwrite)
            return deface_file(
                input_path, outdir, settings, engine=engine, overwrite=overwrite, check=check, claimed=True
            )
    start = time.perf_counter()
    log.debug("%s: reading", input_path)
    image = read_image(input_path)
    load_s = time.perf_counter() - start
    log.debug("%s: finding the face", input_path)
    result = deface_image(image, settings, engine=engine, name=input_path)
    result.provenance["timings_s"] = {"load": round(load_s, 3), **result.provenance["timings_s"]}
    protect = (input_path,) if os.path.isfile(input_path) else ()
    input_info = {
        "path": os.path.abspath(input_path),
        "sha256": input_digest(input_path),
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "pixel_type": image.GetPixelIDTypeAsString(),
    }
    if os.path.isdir(input_path):
        # how much of the folder was defaced (the digest covers exactly these files); the series UID is only
        # logged, since a UID points back to the hospital's archive
        from .io.dicom import chosen_series

        _, files, count = chosen_series(input_path)
        input_info.update(dicom_files=len(files), dicom_series_in_folder=count)
    extra: dict[str, Any] = {"input": input_info}
    if check is not None:
        started = time.perf_counter()
        extra["reidentification_check"] = check(result.defaced, image)
        result.provenance["timings_s"]["check"] = round(time.perf_counter() - started, 3)
    log.debug("%s: writing the outputs", input_path)
    return write_outputs(result, paths, overwrite=overwrite, protect=protect, extra=extra, started=start)


# ---------------------------------------------------------------------------- batches
#: Files in an input folder that are not taken as inputs: this tool's outputs and ground-truth masks.
EXCLUDED_ENDINGS = {
    "_defaced": "named like a defaced output (*_defaced)",
    "_facemask": "named like a face-mask output (*_facemask)",
    "_deface": "named like a ctadeface output (*_deface)",
    "_gt": "named like a ground-truth mask (*_gt)",
}


def find_inputs(inputs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(cases, excluded). Files are taken as given; a folder gives its image files, or is one DICOM series.

    Image files in a folder whose names end in EXCLUDED_ENDINGS are excluded, with the reason, so that
    a summary can list them; a file named on the command line is always taken. The same file given
    twice (e.g. by name and through its folder) is one case.
    """
    from .io.dicom import looks_like_dicom_folder

    found, excluded, seen = [], [], set()
    for item in inputs:
        if os.path.isdir(item):
            images = []
            for name in sorted(os.listdir(item)):
                stem, suffix = split_suffix(name)
                if suffix not in IMAGE_SUFFIXES or name.startswith("."):
                    continue
                ending = next((e for e in EXCLUDED_ENDINGS if stem.endswith(e)), None)
                if ending:
                    excluded.append(
                        (
                            os.path.join(item, name),
                            f"excluded: {EXCLUDED_ENDINGS[ending]}; name the file itself to deface it",
                        )
                    )
                else:
                    images.append(os.path.join(item, name))
            if images:
                candidates = images
            elif looks_like_dicom_folder(item):
                candidates = [item]
            else:
                candidates = [item]  # reported as a bad case with a clear message
        else:
            candidates = [item]
        for path in candidates:
            key = os.path.normcase(os.path.realpath(path))
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found, excluded


def expand_inputs(inputs: list[str]) -> list[str]:
    """The cases `find_inputs` finds (without the excluded files)."""
    return find_inputs(inputs)[0]


def plan_outputs(cases: list[str], outdir: str, output_format: str | None = None) -> dict[str, dict[str, str]]:
    """Each case's output paths; OutputError (naming both) if two cases would share an output name.

    Policy: output names are `<input name>_defaced...` in ONE folder, so `siteA/scan.nii.gz` and
    `siteB/scan.nii.gz` cannot both go into it; the batch refuses before anything runs rather than
    invent names. Names that differ only in letter case count as the same (one file on macOS and
    Windows). An output name that is one of the inputs is refused too.
    """

    def key(path: str) -> str:
        return os.path.normcase(os.path.realpath(path)).lower()

    inputs = {key(p): p for p in cases}
    owners: dict[str, str] = {}
    plan: dict[str, dict[str, str]] = {}
    for path in cases:
        paths = output_paths(path, outdir, output_format)
        for out in paths.values():
            k = key(out)
            if k in owners and owners[k] != path:
                raise OutputError(
                    f"{owners[k]} and {path} would both be written as {os.path.basename(out)} in "
                    f"{outdir}; deface them into separate output folders (or rename one)."
                )
            if k in inputs:
                raise OutputError(
                    f"The output {out} of {path} would replace the input {inputs[k]}; choose another output folder."
                )
            owners[k] = path
        plan[path] = paths
    return plan


def describe_failure(path: str, err: BaseException) -> str:
    """One sentence for a case that failed; an unexpected error is also logged with its traceback (a bug)."""
    if isinstance(err, DefaceError):
        return str(err)
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":  # torch's GPU one too
        return (
            "There was not enough memory for this case; close other programs, or run it on a machine with "
            "more memory (on a GPU, try --device cpu)."
        )
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        return f"A file could not be read or written: {err.strerror or err}{where}."
    first = (str(err).strip().splitlines() or [""])[0]
    log.error(
        "%s: internal error. This is a bug in ctadeface; please report it with this traceback:\n%s",
        path,
        "".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip(),
    )
    return f"internal error ({type(err).__name__}: {first}); this is a bug, its traceback is in the log above."


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a batch; its message says what of the current case remains."""


def describe_interruption(
    current: str | None, paths: dict[str, str] | None, outdir: str, report: list[BatchRecord]
) -> str:
    """What is true on disk after an interrupted case was cleaned up (write_case removes what it can)."""
    done = sum(r["status"] == "done" for r in report)
    before = f" {done} case(s) finished before it and are complete." if done else ""
    if current is None or paths is None:  # paths is None only when no case started
        return "interrupted before any case started; nothing was written."
    if os.path.lexists(paths["sidecar"]):
        return f"interrupted at {current}; its outputs in {outdir} are complete (its sidecar is there).{before}"
    left = case_leftovers(paths) + own_staging_folders(outdir)
    if left:
        return (
            f"interrupted while defacing {current}; these incomplete files of it remain, and the next run "
            f"into {outdir} removes them: {', '.join(left)}.{before}"
        )
    return f"interrupted while defacing {current}; nothing of it was left in {outdir}.{before}"


def deface_batch(
    inputs: list[str],
    outdir: str,
    settings: DefaceSettings | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    engine: Engine | None = None,
    check: Check | None = None,
    run_case: Callable[[str, dict[str, str], Engine], Sidecar] | None = None,
) -> list[BatchRecord]:
    """Deface many inputs with one loaded engine; a bad case is recorded and the rest still run.

    Before anything runs: the inputs' output names must not collide, and the output folder must
    be creatable and writable (OutputError otherwise). The model loads once, for the first case
    that needs it. Records: status done / skipped / failed with a one-sentence message.
    `run_case(path, paths, engine) -> sidecar`: the per-case step (default `deface_file`); it runs
    after the case is claimed, under the folder lock, and must write exactly `paths` (the Slicer
    batch script passes one that goes through MRML, so both front doors share these rules).
    """
    from tqdm import tqdm

    settings = settings or DefaceSettings()
    cases, excluded = find_inputs(inputs)
    plan = plan_outputs(cases, outdir, settings.output_format)
    prepare_output_folder(outdir)
    report: list[BatchRecord] = [{"input": path, "status": "skipped", "message": reason} for path, reason in excluded]
    with output_folder_lock(outdir):
        remove_stale_temporaries(outdir)
        bar = tqdm(cases, unit="case", disable=not progress or len(cases) < 2, desc="defacing")
        current: str | None = None
        try:
            for path in bar:
                current = path
                record: BatchRecord = {"input": path, "status": None, "message": ""}
                report.append(record)
                try:
                    claim_case(path, plan[path], overwrite=overwrite)
                except OutputsExist:
                    record.update({"status": "skipped", "message": "outputs exist (use --overwrite to redo)"})
                    continue
                except Exception as err:
                    record.update({"status": "failed", "message": describe_failure(path, err)})
                    log.debug("%s: %s", path, record["message"])  # the summary prints it once
                    continue
                # One engine for the whole batch, loaded for the first case that needs it; a model
                # that cannot load stops the batch here (every case would fail the same way).
                if engine is None:
                    log.debug("Loading the %s engine (model %s)", settings.engine, settings.model)
                    engine = engine_for(settings)
                try:
                    if run_case is None:
                        sidecar = deface_file(
                            path, outdir, settings, engine=engine, overwrite=overwrite, check=check, claimed=True
                        )
                    else:
                        sidecar = run_case(path, plan[path], engine)
                except Exception as err:
                    record.update({"status": "failed", "message": describe_failure(path, err)})
                    log.debug("%s: %s", path, record["message"])  # the summary prints it once
                    continue
                record.update(
                    {
                        "status": "done",
                        "outputs": sidecar["outputs"],
                        "mask_volume_ml": sidecar["mask_volume_ml"],
                        "seconds": sidecar["timings_s"].get("total"),
                    }
                )
                if "reidentification_check" in sidecar:
                    record["check"] = sidecar["reidentification_check"]["check"]
                    record["check_reasons"] = sidecar["reidentification_check"].get("reasons", [])
        except KeyboardInterrupt:
            raise BatchInterrupted(
                describe_interruption(current, plan.get(current) if current is not None else None, outdir, report[:-1])
            ) from None
    return report
