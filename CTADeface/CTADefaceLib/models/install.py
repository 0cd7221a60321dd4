"""Installing and verifying models in the per-user cache.

Layout: <cache>/models/<name>/<DatasetNNN_Name>/nnUNetTrainer__nnUNetPlans__3d_fullres/...
plus <cache>/models/<name>/ctadeface-model.json (what was verified, with sizes and mtimes so
that later checks only re-hash files that changed). Downloads land in <name>.partial/ and
resume from there; the finished folder appears in one rename. Network is touched only here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile

from ..errors import ChecksumError, ModelError
from .registry import ModelEntry, ModelFile, get_entry, is_model_folder, registry

log = logging.getLogger(__name__)

CACHE_ENV = "CTADEFACE_HOME"
MANIFEST = "ctadeface-model.json"
_CHUNK = 1 << 20


def cache_root() -> str:
    """Per-user cache, or $CTADEFACE_HOME; never inside the package or the Slicer extension."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("ctadeface", appauthor=False)
    return os.path.abspath(root)


def models_dir() -> str:
    return os.path.join(cache_root(), "models")


def model_dir(name: str) -> str:
    return os.path.join(models_dir(), name)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- state of installed models
def _read_manifest(folder: str) -> dict | None:
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_manifest(folder: str, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manifest-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, os.path.join(folder, MANIFEST))


def custom_entries() -> dict[str, ModelEntry]:
    """User-supplied models installed from a folder or zip: their manifest is their registry entry."""
    entries = {}
    root = models_dir()
    if not os.path.isdir(root):
        return entries
    for name in sorted(os.listdir(root)):
        manifest = _read_manifest(os.path.join(root, name))
        if manifest and manifest.get("custom"):
            files = tuple(ModelFile(f["path"], f["size"], f["sha256"]) for f in manifest["files"])
            entries[name] = ModelEntry(name=name, title=manifest.get("title", name), dataset=manifest["dataset"],
                                       files=files, licence="user-supplied", folds=tuple(manifest["folds"]))
    return entries


def all_entries() -> dict[str, ModelEntry]:
    entries = dict(custom_entries())
    entries.update(registry())
    return entries


def entry_for(name: str) -> ModelEntry:
    entries = all_entries()
    if name in entries:
        return entries[name]
    return get_entry(name)  # raises the "unknown model" error


def verify_folder(entry: ModelEntry, folder: str, *, full: bool = True) -> None:
    """Check every file's size and sha256; `full=False` re-hashes only files changed since the last check."""
    previous = {f["path"]: f for f in (_read_manifest(folder) or {}).get("files", [])}
    for item in entry.files:
        path = os.path.join(folder, item.path)
        if not os.path.isfile(path):
            raise ModelError(f"The model '{entry.name}' is incomplete: {item.path} is missing; reinstall it with "
                             f"'ctadeface models install {entry.name}'.")
        stat = os.stat(path)
        if stat.st_size != item.size:
            raise ChecksumError(f"The model file {path} has {stat.st_size} bytes, expected {item.size}; "
                                f"reinstall it with 'ctadeface models install {entry.name} --overwrite'.")
        seen = previous.get(item.path, {})
        if not full and seen.get("mtime_ns") == stat.st_mtime_ns and seen.get("sha256") == item.sha256:
            continue
        if sha256_of(path) != item.sha256:
            raise ChecksumError(f"The model file {path} does not match its sha256 checksum; it is corrupted or "
                                f"not the registered file: reinstall with 'ctadeface models install {entry.name} --overwrite'.")


def _record(entry: ModelEntry, folder: str, custom: bool, source: str) -> None:
    files = []
    for item in entry.files:
        stat = os.stat(os.path.join(folder, item.path))
        files.append({"path": item.path, "size": item.size, "sha256": item.sha256, "mtime_ns": stat.st_mtime_ns})
    _write_manifest(folder, {"name": entry.name, "dataset": entry.dataset, "folds": list(entry.folds),
                             "title": entry.title, "custom": custom, "source": source, "files": files})


def is_installed(name: str) -> bool:
    folder = model_dir(name)
    return _read_manifest(folder) is not None


def installed_results_folder(name_or_path: str) -> tuple[str, ModelEntry | None]:
    """The nnU-Net results folder to load, verified; a plain folder path is used as it is (no registry)."""
    if os.path.sep in name_or_path or os.path.isdir(name_or_path):
        if is_model_folder(name_or_path):
            return os.path.abspath(name_or_path), None
        raise ModelError(f"{name_or_path} is not an nnU-Net v2 results folder (it needs plans.json, dataset.json "
                         "and a fold_* folder).")
    entry = entry_for(name_or_path)
    folder = model_dir(entry.name)
    if not is_installed(entry.name):
        how = (f"'ctadeface models install {entry.name}'" if entry.mirrors or entry.bundled
               else f"'ctadeface models install {entry.name} --from FOLDER_OR_ZIP'")
        raise ModelError(f"The model '{entry.name}' is not installed; install it with {how}"
                         + (" (or --from a downloaded zip or folder on a machine without internet)." if entry.mirrors else "."))
    verify_folder(entry, folder, full=False)
    return os.path.join(folder, entry.results_folder), entry


# ---------------------------------------------------------------- installing
def install(name: str, source: str | None = None, *, overwrite: bool = False, progress: bool = True) -> str:
    """Install a model into the cache and verify it; returns the model folder.

    source: None (the registry's bundled copy or mirrors), an http(s) URL of a zip or of a mirror
    base, a local zip, or a local folder (a model root or a results folder).
    """
    known = all_entries()
    entry = known.get(name)
    if entry is None and source is None:
        get_entry(name)  # raises "unknown model"
    final = model_dir(name)
    if is_installed(name) and not overwrite:
        if entry is not None:
            verify_folder(entry, final, full=True)
        log.info("The model '%s' is already installed in %s.", name, final)
        return final
    os.makedirs(models_dir(), exist_ok=True)
    staging = final + ".partial"
    os.makedirs(staging, exist_ok=True)
    custom = entry is None or name in custom_entries()
    if source is None and entry.bundled:
        _extract_zip(entry.bundled, staging, entry)
        source = "bundled"
    elif source is None:
        _download_from_mirrors(entry, staging, progress)
        source = "mirrors"
    elif source.startswith(("http://", "https://")):
        if source.lower().split("?")[0].endswith(".zip"):
            zip_path = os.path.join(staging, ".download.zip")
            from .download import download

            download(source, zip_path, progress=progress)
            entry = entry or _entry_from_zip(name, zip_path)
            _extract_zip(zip_path, staging, entry)
            os.remove(zip_path)
        else:
            if entry is None:
                raise ModelError(f"'{name}' is not a registered model: give --from a zip URL, a zip or a folder.")
            entry = _with_mirrors(entry, (source.rstrip("/"),))
            _download_from_mirrors(entry, staging, progress)
    elif os.path.isfile(source) and zipfile.is_zipfile(source):
        entry = entry if (entry and not custom) else _entry_from_zip(name, source)
        _extract_zip(source, staging, entry)
    elif os.path.isdir(source):
        entry = entry if (entry and not custom) else _entry_from_folder(name, source)
        _copy_folder(source, staging, entry)
    else:
        raise ModelError(f"--from {source} is neither a URL, a zip file nor a folder.")
    verify_folder(entry, staging, full=True)  # a bad file stops here, before anything is installed
    _record(entry, staging, custom=custom, source=str(source))
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(staging, final)
    log.info("Installed and verified the model '%s' in %s.", name, final)
    return final


def _with_mirrors(entry: ModelEntry, mirrors: tuple[str, ...]) -> ModelEntry:
    from dataclasses import replace

    return replace(entry, mirrors=mirrors)


def _download_from_mirrors(entry: ModelEntry, staging: str, progress: bool) -> None:
    from .download import download

    if not entry.mirrors:
        raise ModelError(f"The model '{entry.name}' has no download address; install it with --from FOLDER_OR_ZIP.")
    for item in entry.files:
        target = os.path.join(staging, item.path)
        if os.path.isfile(target) and os.path.getsize(target) == item.size and sha256_of(target) == item.sha256:
            continue  # already fetched by an earlier, interrupted install
        errors = []
        for mirror in entry.mirrors:
            try:
                download(f"{mirror}/{item.path}", target, progress=progress, expected_size=item.size,
                         expected_sha256=item.sha256)
                break
            except ChecksumError:
                raise
            except ModelError as err:
                errors.append(str(err))
        else:
            raise ModelError(f"Could not download {item.path} from any mirror ({'; '.join(errors)}).")


def _locate(names: list[str], wanted: str) -> str | None:
    """Find a registry path inside an archive/folder that may add a prefix (e.g. model/) or start lower."""
    parts = wanted.split("/")
    for start in range(len(parts)):
        tail = "/".join(parts[start:])
        hits = [n for n in names if n == tail or n.endswith("/" + tail)]
        if hits:
            return min(hits, key=len)
    return None


def _extract_zip(zip_path: str, staging: str, entry: ModelEntry) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        for item in entry.files:
            member = _locate(names, item.path)
            if member is None:
                raise ModelError(f"{zip_path} does not contain {item.path}.")
            target = os.path.join(staging, item.path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)


def unpack_verified(zip_path: str, folder: str, entry: ModelEntry) -> str:
    """Unzip `entry`'s files into `folder` (not the cache) and check every sha256; returns the results folder."""
    _extract_zip(zip_path, folder, entry)
    verify_folder(entry, folder, full=True)
    return os.path.join(folder, entry.results_folder)


def _copy_folder(folder: str, staging: str, entry: ModelEntry) -> None:
    names = [os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
             for d, _, files in os.walk(folder) for f in files]
    for item in entry.files:
        member = _locate(names, item.path)
        if member is None:
            raise ModelError(f"{folder} does not contain {item.path}.")
        target = os.path.join(staging, item.path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(folder, member), target)


def _custom_entry(name: str, listing: list[tuple[str, int]], opener) -> ModelEntry:
    """Registry entry for a user-supplied results folder: every fold's final checkpoint plus the json files."""
    plans = [p for p, _ in listing if p.endswith("plans.json") and not p.endswith("dataset_plans.json")]
    if not plans:
        raise ModelError(f"No nnU-Net results folder (plans.json) was found for the model '{name}'.")
    results = os.path.dirname(min(plans, key=len))
    dataset = os.path.basename(os.path.dirname(results)) if "/" in results else "Dataset999_Custom"
    config = os.path.basename(results) or "nnUNetTrainer__nnUNetPlans__3d_fullres"
    keep, folds = [], []
    for path, size in listing:
        rel = os.path.relpath(path, results).replace(os.sep, "/") if results else path
        if rel.startswith(".."):
            continue
        if rel in ("plans.json", "dataset.json", "dataset_fingerprint.json") or (
                rel.startswith("fold_") and rel.endswith("/checkpoint_final.pth")):
            keep.append((path, f"{dataset}/{config}/{rel}", size))
            if rel.startswith("fold_"):
                folds.append(rel.split("/")[0][len("fold_"):])
    if not folds:
        raise ModelError(f"The model '{name}' has no fold_*/checkpoint_final.pth.")
    files = tuple(ModelFile(dest, size, opener(src)) for src, dest, size in keep)
    from .registry import RESULTS_FOLDER

    if config != RESULTS_FOLDER:
        log.info("Note: the model's results folder is %s.", config)
    return ModelEntry(name=name, title=f"user-supplied model {name}", dataset=dataset, files=files,
                      licence="user-supplied", folds=tuple(sorted(folds, key=lambda f: (f != "all", f))))


def _entry_from_zip(name: str, zip_path: str) -> ModelEntry:
    with zipfile.ZipFile(zip_path) as archive:
        listing = [(i.filename, i.file_size) for i in archive.infolist() if not i.is_dir()]

        def digest(member):
            h = hashlib.sha256()
            with archive.open(member) as src:
                for block in iter(lambda: src.read(_CHUNK), b""):
                    h.update(block)
            return h.hexdigest()

        return _custom_entry(name, listing, digest)


def _entry_from_folder(name: str, folder: str) -> ModelEntry:
    listing = []
    for d, _, files in os.walk(folder):
        for f in files:
            full = os.path.join(d, f)
            listing.append((os.path.relpath(full, folder).replace(os.sep, "/"), os.path.getsize(full)))
    return _custom_entry(name, listing, lambda rel: sha256_of(os.path.join(folder, rel)))


def verify(name: str) -> str:
    """Re-hash every file of an installed model; raises ChecksumError naming the bad file."""
    entry = entry_for(name)
    folder = model_dir(name)
    if not is_installed(name):
        raise ModelError(f"The model '{name}' is not installed; install it with 'ctadeface models install {name}'.")
    verify_folder(entry, folder, full=True)
    _record(entry, folder, custom=bool((_read_manifest(folder) or {}).get("custom")),
            source=(_read_manifest(folder) or {}).get("source", ""))
    return folder


def remove(name: str) -> None:
    folder = model_dir(name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
