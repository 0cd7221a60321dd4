"""The one defacing pipeline every front door calls (CLI, Slicer module, batch script, evaluation).

    image -> canonical orientation -> engine mask -> back on the input grid -> post-processing
          -> fill -> outputs + provenance sidecar

`deface_image` works on SimpleITK images in memory (what Slicer uses); `deface_file` adds
reading, atomic writing and the sidecar; `deface_batch` runs many files and keeps going past a
bad one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass

from . import __version__
from .deface import apply_mask, fill_value, parse_fill
from .errors import DefaceError, OutputError
from .mask import binary_face, mask_volume_ml, mask_voxels, postprocess, require_face
from .settings import DefaceSettings  # noqa: F401  (defined once, in settings.py)
from .volume import IMAGE_SUFFIXES, from_canonical, read_image, same_grid, split_suffix, to_canonical, write_image_atomic

log = logging.getLogger(__name__)

OUTPUT_TAGS = ("_defaced", "_facemask", "_deface")


@dataclass
class DefaceResult:
    defaced: object  # SimpleITK image, input grid and pixel type
    mask: object  # SimpleITK UInt8 image, input grid
    provenance: dict


def package_versions() -> dict:
    from importlib import metadata

    versions = {"ctadeface": __version__}
    for name in ("SimpleITK", "numpy", "torch", "nnunetv2", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def compute_mask(image, settings: DefaceSettings, engine=None, timings: dict | None = None):
    """The engine's face mask on `image`'s exact grid (engines work in the canonical orientation)."""
    timings = {} if timings is None else timings
    engine = engine or settings.create_engine()
    start = time.perf_counter()
    canonical = to_canonical(image)
    timings["orient"] = time.perf_counter() - start
    start = time.perf_counter()
    mask = engine.predict(canonical)
    timings["predict"] = time.perf_counter() - start
    return from_canonical(binary_face(mask), image), engine


def deface_image(image, settings: DefaceSettings | None = None, *, engine=None, mask=None,
                 name: str = "the image") -> DefaceResult:
    """Deface an in-memory image. Give `mask` (e.g. a corrected segmentation) to skip the engine."""
    settings = settings or DefaceSettings()
    policy = parse_fill(settings.fill)
    timings: dict[str, float] = {}
    described: dict = {"engine": "mask", "model": None, "model_sha256": None, "device": None}
    min_ml = 0.0
    if mask is None:
        min_ml = settings.min_face_ml
        mask, engine = compute_mask(image, settings, engine, timings)
        described = engine.describe()
    elif not same_grid(mask, image):
        raise DefaceError(f"The given mask is not on {name}'s voxel grid (size, spacing, origin and direction must match).")
    start = time.perf_counter()
    mask = postprocess(binary_face(mask, "any"), largest_component=settings.largest_component,
                       fill_holes=settings.fill_holes, margin_mm=settings.margin_mm)
    require_face(mask, name, min_ml)
    timings["postprocess"] = time.perf_counter() - start
    start = time.perf_counter()
    value = fill_value(image, policy)
    defaced = apply_mask(image, mask, value)
    timings["apply"] = time.perf_counter() - start
    provenance = {
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


def output_paths(input_path: str, outdir: str, output_format: str | None = None) -> dict:
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


def file_sha256(path: str) -> str | None:
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(data: dict, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.write("\n")
    os.replace(tmp, path)


def write_outputs(result: DefaceResult, paths: dict, *, overwrite: bool = False, protect: tuple = (),
                  extra: dict | None = None) -> dict:
    """Write defaced image, mask and sidecar atomically; the sidecar is written last (it marks completion)."""
    for key in ("defaced", "mask", "sidecar"):
        target = os.path.abspath(paths[key])
        if any(os.path.exists(p) and os.path.exists(target) and os.path.samefile(p, target) for p in protect):
            raise OutputError(f"Refusing to write {paths[key]}: it is an input file.")
    start = time.perf_counter()
    write_image_atomic(result.defaced, paths["defaced"], overwrite=overwrite, protect=protect)
    write_image_atomic(result.mask, paths["mask"], overwrite=overwrite, protect=protect)
    result.provenance["timings_s"]["write"] = round(time.perf_counter() - start, 3)
    sidecar = dict(result.provenance)
    sidecar["outputs"] = {k: os.path.abspath(v) for k, v in paths.items()}
    sidecar.update(extra or {})
    write_json_atomic(sidecar, paths["sidecar"])
    return sidecar


def reidentification_check(defaced, threshold: float) -> dict:
    """Render the defaced image from the front and run MTCNN: PASS (no face above threshold) or REVIEW."""
    try:
        from CTADefaceEvalLib.cohort import check_defaced  # imports torch before VTK renders (see FACTS)
    except ImportError as err:
        raise DefaceError(f"--check needs the evaluation extra ({err.name} is missing); install it with "
                          "'pip install ctadeface[eval]' or run without --check.") from None
    return check_defaced(defaced, threshold=threshold)


def deface_file(input_path: str, outdir: str, settings: DefaceSettings | None = None, *, engine=None,
                overwrite: bool = False, check: float | None = None) -> dict:
    """Deface one file (or DICOM folder) into outdir; returns the sidecar dict.

    `check`: a face-probability threshold; when given, the result is rendered and scored by MTCNN
    and the verdict (PASS/REVIEW) is stored in the sidecar under `reidentification_check`.
    """
    settings = settings or DefaceSettings()
    paths = output_paths(input_path, outdir, settings.output_format)
    if not overwrite:
        existing = [p for p in paths.values() if os.path.exists(p)]
        if existing:
            raise OutputError(f"{existing[0]} already exists; pass --overwrite to replace it.")
    start = time.perf_counter()
    image = read_image(input_path)
    load_s = time.perf_counter() - start
    result = deface_image(image, settings, engine=engine, name=input_path)
    result.provenance["timings_s"] = {"load": round(load_s, 3), **result.provenance["timings_s"]}
    protect = (input_path,) if os.path.isfile(input_path) else ()
    input_info = {
        "path": os.path.abspath(input_path),
        "sha256": file_sha256(input_path),
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "pixel_type": image.GetPixelIDTypeAsString(),
    }
    extra = {"input": input_info}
    if check is not None:
        started = time.perf_counter()
        extra["reidentification_check"] = reidentification_check(result.defaced, check)
        result.provenance["timings_s"]["check"] = round(time.perf_counter() - started, 3)
    sidecar = write_outputs(result, paths, overwrite=overwrite, protect=protect, extra=extra)
    sidecar["timings_s"]["total"] = round(time.perf_counter() - start, 3)
    write_json_atomic(sidecar, paths["sidecar"])
    return sidecar


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given; a folder gives its image files (not our own outputs nor *_gt masks), or is one DICOM series."""
    from .dicom import looks_like_dicom_folder

    found = []
    for item in inputs:
        if os.path.isdir(item):
            images = sorted(
                os.path.join(item, n) for n in os.listdir(item)
                if split_suffix(n)[1] in IMAGE_SUFFIXES and not n.startswith(".")
                and not split_suffix(n)[0].endswith(OUTPUT_TAGS + ("_gt",))
            )
            if images:
                found.extend(images)
            elif looks_like_dicom_folder(item):
                found.append(item)
            else:
                found.append(item)  # reported as a bad case with a clear message
        else:
            found.append(item)
    return found


def deface_batch(inputs: list[str], outdir: str, settings: DefaceSettings | None = None, *,
                 overwrite: bool = False, progress: bool = True, engine=None,
                 check: float | None = None) -> list[dict]:
    """Deface many inputs with one loaded engine; a bad case is recorded and the rest still run."""
    from tqdm import tqdm

    settings = settings or DefaceSettings()
    cases = expand_inputs(inputs)
    report = []
    # One engine for the whole batch (the model loads once); a missing model stops the batch here.
    engine = engine or settings.create_engine()
    bar = tqdm(cases, unit="case", disable=not progress or len(cases) < 2, desc="defacing")
    for path in bar:
        record = {"input": path, "status": None, "message": ""}
        paths = output_paths(path, outdir, settings.output_format)
        if not overwrite and all(os.path.exists(p) for p in paths.values()):
            record.update(status="skipped", message="outputs exist (use --overwrite to redo)")
            report.append(record)
            continue
        try:
            sidecar = deface_file(path, outdir, settings, engine=engine, overwrite=overwrite, check=check)
            record.update(status="done", outputs=sidecar["outputs"], mask_volume_ml=sidecar["mask_volume_ml"],
                          seconds=sidecar["timings_s"].get("total"))
            if "reidentification_check" in sidecar:
                record["check"] = sidecar["reidentification_check"]["check"]
                record["face_probability"] = sidecar["reidentification_check"]["face_probability"]
        except DefaceError as err:
            record.update(status="failed", message=str(err))
            log.error("%s: %s", path, err)
        report.append(record)
    return report
