"""Installing and verifying models in the per-user cache.

Layout: <cache>/models/<name>/<DatasetNNN_Name>/nnUNetTrainer__nnUNetPlans__3d_fullres/...
plus <cache>/models/<name>/ctadeface-model.json (what was verified). Downloads land in
.<name>.partial/ and resume from there; the finished folder appears in one rename, holding only
files whose size and sha256 were checked. Network is touched only here.

A model name is only a name (never a path), and only folders that hold our manifest are ever
replaced or deleted. Zips and folders given with --from are hostile until checked (archive.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile

from ..errors import ChecksumError, ModelError
from ..hashing import file_sha256, stream_sha256
from .archive import BrokenZipError, copy_member, join_inside, open_zip, safe_relative
from .registry import ModelEntry, ModelFile, get_entry, is_model_folder, registry

log = logging.getLogger(__name__)

CACHE_ENV = "CTADEFACE_HOME"
MANIFEST = "ctadeface-model.json"
# A model name becomes one folder name in the cache: letters, digits, '-', '_' and '.', no leading dot
# (hidden names are the installer's own staging folders), so it can never be a path.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelError(
            f"'{name}' is not a model name: use up to 64 letters, digits, '-', '_' or '.', not starting "
            "with a dot (a folder or zip goes after --from)."
        )
    return name


def cache_root() -> str:
    """Per-user cache, or $CTADEFACE_HOME; never inside the package or the Slicer extension."""
    root = os.environ.get(CACHE_ENV) or _user_cache_dir("ctadeface")
    return os.path.abspath(root)


def _user_cache_dir(app: str) -> str:
    """platformdirs.user_cache_dir(app, appauthor=False), in the standard library: Slicer does not bundle
    platformdirs, and the Slicer module lists the installed models as it loads."""
    import sys

    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")
        return os.path.join(base, app, "Cache")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~/Library/Caches"), app)
    return os.path.join(os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache"), app)


def models_dir() -> str:
    return os.path.join(cache_root(), "models")


def model_dir(name: str) -> str:
    return os.path.join(models_dir(), check_name(name))


def staging_dir(name: str) -> str:
    """Where an install is assembled (and an interrupted download waits to resume): never the final name."""
    return os.path.join(models_dir(), f".{check_name(name)}.partial")


def sha256_of(path: str) -> str:
    return file_sha256(path)  # a name of its own here: tests count the files the installer hashes


# sha256 of files hashed in this process, keyed by what changes whenever the content may have changed
# (a write or os.utime always moves st_ctime, which no user can set back): each file is hashed once per
# process, and a file changed behind our back is hashed again.
_HASHED: dict[tuple, str] = {}


def _stat_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def sha256_once(path: str) -> str:
    """sha256 of the file as it is now, hashed at most once per process while it is unchanged."""
    key = _stat_key(path)
    if key not in _HASHED:
        digest = sha256_of(path)
        if _stat_key(path) == key:  # not changed while it was read
            _HASHED[key] = digest
        return digest
    return _HASHED[key]


# ---------------------------------------------------------------- state of installed models
def _read_manifest(folder: str) -> dict | None:
    path = os.path.join(folder, MANIFEST)
    if os.path.islink(folder) or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def _write_manifest(folder: str, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manifest-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, os.path.join(folder, MANIFEST))


def custom_entries() -> dict[str, ModelEntry]:
    """User-supplied models installed from a folder or zip: their manifest is their registry entry."""
    entries: dict[str, ModelEntry] = {}
    root = models_dir()
    if not os.path.isdir(root):
        return entries
    for name in sorted(os.listdir(root)):
        if not _NAME.match(name):
            continue  # staging folders and anything else that is not a model name
        manifest = _read_manifest(os.path.join(root, name))
        if manifest and manifest.get("custom"):
            files = tuple(ModelFile(f["path"], f["size"], f["sha256"]) for f in manifest["files"])
            entries[name] = ModelEntry(
                name=name,
                title=manifest.get("title", name),
                dataset=manifest["dataset"],
                files=files,
                licence="user-supplied",
                folds=tuple(manifest["folds"]),
            )
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


def verify_folder(entry: ModelEntry, folder: str, *, full: bool = True, installing: bool = False) -> None:
    """Check every file's size and sha256; `full=False` skips files already hashed in this process, unchanged.

    installing: the folder is an install's staging folder, which means nothing to the user, and reinstalling
    from the same source cannot help, so the file is named inside the model and the source is blamed."""
    for item in entry.files:
        path = join_inside(folder, item.path, f"The model '{entry.name}'")
        shown = f"{item.path} of the model '{entry.name}'" if installing else path
        if not os.path.isfile(path):
            raise ModelError(
                f"The model '{entry.name}' is incomplete: {item.path} is missing; reinstall it with "
                f"'ctadeface models install {entry.name}'."
            )
        stat = os.stat(path)
        if stat.st_size != item.size:
            raise ChecksumError(
                f"The model file {shown} has {stat.st_size} bytes, expected {item.size}; "
                + (
                    _BAD_SOURCE
                    if installing
                    else f"reinstall it with 'ctadeface models install {entry.name} --overwrite'."
                )
            )
        digest = sha256_once(path) if not full else sha256_of(path)
        if full:
            _HASHED[_stat_key(path)] = digest
        if digest != item.sha256:
            raise ChecksumError(
                f"The model file {shown} does not match its sha256 checksum; "
                + (
                    _BAD_SOURCE
                    if installing
                    else "it is corrupted or not the registered file: reinstall with "
                    f"'ctadeface models install {entry.name} --overwrite'."
                )
            )


_BAD_SOURCE = (
    "the source given does not hold the expected file (or it changed while it was read), so nothing was installed."
)


def _record(entry: ModelEntry, folder: str, custom: bool, source: str) -> None:
    files = []
    for item in entry.files:
        stat = os.stat(os.path.join(folder, item.path))
        files.append({"path": item.path, "size": item.size, "sha256": item.sha256, "mtime_ns": stat.st_mtime_ns})
    _write_manifest(
        folder,
        {
            "name": entry.name,
            "dataset": entry.dataset,
            "folds": list(entry.folds),
            "title": entry.title,
            "custom": custom,
            "source": source,
            "files": files,
        },
    )


def is_installed(name: str) -> bool:
    """A folder of ours under that name: a real folder (not a link) holding our manifest."""
    return _read_manifest(model_dir(name)) is not None


def is_registered(entry: ModelEntry) -> bool:
    """One of the registry's own models (its files' sha256 come with this package), not a user-supplied one."""
    return registry().get(entry.name) == entry


def installed_results_folder(name_or_path: str) -> tuple[str, ModelEntry | None]:
    """The nnU-Net results folder to load, verified; a plain folder path is used as it is (no registry)."""
    if os.path.sep in name_or_path or os.path.isdir(name_or_path):
        if is_model_folder(name_or_path):
            return os.path.abspath(name_or_path), None
        raise ModelError(
            f"{name_or_path} is not an nnU-Net v2 results folder (it needs plans.json, dataset.json "
            "and a fold_* folder)."
        )
    entry = entry_for(name_or_path)
    folder = model_dir(entry.name)
    if not is_installed(entry.name):
        how = (
            f"'ctadeface models install {entry.name}'"
            if entry.mirrors or entry.bundled
            else f"'ctadeface models install {entry.name} --from FOLDER_OR_ZIP'"
        )
        raise ModelError(
            f"The model '{entry.name}' is not installed; install it with {how}"
            + (" (or --from a downloaded zip or folder on a machine without internet)." if entry.mirrors else ".")
        )
    verify_folder(entry, folder, full=False)
    return os.path.join(folder, entry.results_folder), entry


# ---------------------------------------------------------------- installing
def install(name: str, source: str | None = None, *, overwrite: bool = False, progress: bool = True) -> str:
    """Install a model into the cache and verify it; returns the model folder.

    source: None (the registry's bundled copy or mirrors), an http(s) URL of a zip or of a mirror
    base, a local zip, or a local folder (a model root or a results folder).
    """
    check_name(name)
    known = all_entries()
    entry = known.get(name)
    if entry is None and source is None:
        get_entry(name)  # raises "unknown model"
    final = model_dir(name)
    if os.path.lexists(final) and not is_installed(name):
        raise ModelError(
            f"{final} exists but is not a model installed by ctadeface, so it was left alone; move it "
            "away or choose another name."
        )
    if is_installed(name) and not overwrite:
        if entry is not None:
            verify_folder(entry, final, full=True)
        log.info("The model '%s' is already installed in %s (--overwrite reinstalls it).", name, final)
        return final
    os.makedirs(models_dir(), exist_ok=True)
    staging = staging_dir(name)
    downloads = (source is None and not (entry and entry.bundled)) or str(source).startswith(("http://", "https://"))
    if os.path.lexists(staging) and (not downloads or not os.path.isdir(staging) or os.path.islink(staging)):
        _delete(staging)  # only a download resumes; any other install starts from an empty folder
    os.makedirs(staging, exist_ok=True)
    mirrors = (
        entry if (entry is not None and downloads and not str(source).lower().split("?")[0].endswith(".zip")) else None
    )
    try:
        custom = entry is None or name in custom_entries()
        if source is None:
            assert entry is not None, "no source: a registered model (get_entry above refused any other name)"
            if entry.bundled:
                _extract_zip(entry.bundled, staging, entry)
                source = "bundled"
            else:
                _download_from_mirrors(entry, staging, progress)
                source = "mirrors"
        elif source.startswith(("http://", "https://")):
            if source.lower().split("?")[0].endswith(".zip"):
                entry = _download_zip(name, source, staging, None if custom else entry, progress)
            else:
                if entry is None or custom:
                    raise ModelError(f"'{name}' is not a registered model: give --from a zip URL, a zip or a folder.")
                entry = _with_mirrors(entry, (source.rstrip("/"),))
                _download_from_mirrors(entry, staging, progress)
        elif os.path.isdir(source):
            entry = entry if (entry and not custom) else _entry_from_folder(name, source)
            _copy_folder(source, staging, entry)
        elif os.path.isfile(source):
            if not zipfile.is_zipfile(source):
                raise ModelError(f"--from {source} is not a zip file (give a zip, a folder or a URL).")
            entry = entry if (entry and not custom) else _entry_from_zip(name, source)
            _extract_zip(source, staging, entry)
        else:
            raise ModelError(f"--from {source} is neither a URL, a zip file nor a folder.")
        verify_folder(entry, staging, full=True, installing=True)  # a bad file stops here, before anything is installed
        if custom:
            _check_loadable(entry, staging)
        _keep_only(entry, staging)  # downloads, part files and anything else unverified never reach the cache
        _record(entry, staging, custom=custom, source=str(source))
        _put_in_place(staging, final)
    except BaseException:
        # A failed install leaves nothing behind but what lets the same command resume: the .part files of
        # interrupted downloads and, for a registered model fetched file by file, the files already fetched that
        # match their registered sha256. Anything a refused zip, folder or checkpoint put there is deleted.
        _clean_failed(staging, mirrors if downloads else None, keep_parts=downloads)
        raise
    log.info("Installed and verified the model '%s' in %s.", name, final)
    return final


def _check_loadable(entry: ModelEntry, staging: str) -> None:
    """A user-supplied model is refused at install when loading it would run code it holds (checkpoint.py)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return  # without PyTorch nothing can load it here; the engine checks again before loading
    from .checkpoint import check_untrusted_model

    checkpoints = [os.path.join(staging, f.path) for f in entry.files if f.path.endswith("/" + entry.checkpoint)]
    check_untrusted_model(
        os.path.dirname(os.path.dirname(checkpoints[0])), checkpoints, label=f"the model '{entry.name}'"
    )


def _clean_failed(staging: str, registered: ModelEntry | None, keep_parts: bool) -> None:
    """Delete a failed install's staging folder, except what a rerun of a download resumes from."""
    if not keep_parts:
        _delete(staging)
        return
    keep = set()
    for item in registered.files if registered is not None else ():
        path = os.path.normpath(os.path.join(staging, *item.path.split("/")))
        with contextlib.suppress(OSError):
            if _holds(path, item):
                keep.add(path)
    _prune(staging, lambda path: path.endswith(".part") or path in keep)
    if os.path.isdir(staging) and not os.listdir(staging):
        os.rmdir(staging)


def _holds(path: str, item: ModelFile) -> bool:
    """The file at path is the registry's `item`: its size and sha256 (a partial or foreign file is not)."""
    return os.path.isfile(path) and os.path.getsize(path) == item.size and sha256_of(path) == item.sha256


def _prune(folder: str, keep) -> None:
    """Delete each file below folder whose normalised path keep(path) rejects, then links and empty folders."""
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = os.path.normpath(os.path.join(dirpath, name))
            if not keep(path):
                os.remove(path)
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                os.remove(path)
            elif not os.listdir(path):
                os.rmdir(path)


def _delete(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _put_in_place(staging: str, final: str) -> None:
    """The verified folder takes the final name in one rename; an older install of ours is moved aside first."""
    old = None
    if os.path.lexists(final):
        old = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.old-{os.getpid()}")
        _delete(old)
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _keep_only(entry: ModelEntry, staging: str) -> None:
    """Delete everything in staging that is not one of the entry's (verified) files."""
    wanted = {os.path.normpath(os.path.join(staging, item.path)) for item in entry.files}
    _prune(staging, wanted.__contains__)


def _download_zip(name: str, url: str, staging: str, entry: ModelEntry | None, progress: bool) -> ModelEntry:
    """Fetch a model zip into staging (resuming a part file of the same URL), then unpack what it holds."""
    import hashlib as _hashlib

    from .download import download

    zip_path = os.path.join(staging, f".download-{_hashlib.sha256(url.encode()).hexdigest()[:16]}.zip")
    if not os.path.isfile(zip_path):
        download(url, zip_path, progress=progress)
    try:
        entry = entry or _entry_from_zip(name, zip_path, label=f"The zip downloaded from {url}")
        _extract_zip(zip_path, staging, entry, label=f"The zip downloaded from {url}")
    except BrokenZipError as err:
        os.remove(zip_path)  # a broken download must not be used again: the next run fetches it anew
        raise ModelError(
            f"{str(err).rstrip('.')}; it was deleted: run the same command again to download it anew."
        ) from None
    except ModelError:
        os.remove(zip_path)
        raise
    os.remove(zip_path)
    return entry


def _with_mirrors(entry: ModelEntry, mirrors: tuple[str, ...]) -> ModelEntry:
    from dataclasses import replace

    return replace(entry, mirrors=mirrors)


def _download_from_mirrors(entry: ModelEntry, staging: str, progress: bool) -> None:
    from .download import download

    if not entry.mirrors:
        raise ModelError(f"The model '{entry.name}' has no download address; install it with --from FOLDER_OR_ZIP.")
    for item in entry.files:
        target = join_inside(staging, item.path, f"The model '{entry.name}'")
        if _holds(target, item):
            continue  # already fetched by an earlier, interrupted install
        errors = []
        for mirror in entry.mirrors:
            try:
                download(
                    f"{mirror}/{item.path}",
                    target,
                    progress=progress,
                    expected_size=item.size,
                    expected_sha256=item.sha256,
                )
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


def _extract_zip(zip_path: str, staging: str, entry: ModelEntry, label: str | None = None) -> None:
    """Unpack the entry's files (only those) from a checked zip into staging."""
    label = label or zip_path
    with open_zip(zip_path, label) as (archive, members):
        by_name = {info.filename: info for info in members}
        for item in entry.files:
            member = _locate(list(by_name), item.path)
            if member is None:
                raise ModelError(f"{label} does not contain {item.path}.")
            target = join_inside(staging, item.path, label)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            copy_member(archive, by_name[member], target, label)


def unpack_verified(zip_path: str, folder: str, entry: ModelEntry) -> str:
    """Unzip `entry`'s files into `folder` (not the cache) and check every sha256; returns the results folder."""
    _extract_zip(zip_path, folder, entry)
    verify_folder(entry, folder, full=True)
    return os.path.join(folder, entry.results_folder)


def _copy_folder(folder: str, staging: str, entry: ModelEntry) -> None:
    names = [
        os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
        for d, _, files in os.walk(folder)
        for f in files
    ]
    for item in entry.files:
        member = _locate(names, item.path)
        if member is None:
            raise ModelError(f"{folder} does not contain {item.path}.")
        target = join_inside(staging, item.path, folder)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(folder, member), target)


def _custom_entry(name: str, listing: list[tuple[str, int]], opener) -> ModelEntry:
    """Registry entry for a user-supplied results folder: every fold's final checkpoint plus the json files."""
    plans = [p for p, _ in listing if p.endswith("plans.json") and not p.endswith("dataset_plans.json")]
    if not plans:
        raise ModelError(f"No nnU-Net results folder (plans.json) was found for the model '{name}'.")
    for path, _ in listing:
        safe_relative(path, f"The model '{name}'")  # a hostile name is refused before it becomes a path
    results = os.path.dirname(min(plans, key=len))
    dataset = os.path.basename(os.path.dirname(results)) if "/" in results else "Dataset999_Custom"
    config = os.path.basename(results) or "nnUNetTrainer__nnUNetPlans__3d_fullres"
    for part in (dataset, config):
        if not _NAME.match(part):
            raise ModelError(
                f"The model '{name}' has a results folder named '{part}', which is not a plain folder "
                "name; it was refused."
            )
    keep, folds = [], []
    for path, size in listing:
        rel = os.path.relpath(path, results).replace(os.sep, "/") if results else path
        if rel.startswith(".."):
            continue
        if rel in ("plans.json", "dataset.json", "dataset_fingerprint.json") or (
            rel.startswith("fold_") and rel.endswith("/checkpoint_final.pth")
        ):
            keep.append((path, f"{dataset}/{config}/{rel}", size))
            if rel.startswith("fold_"):
                folds.append(rel.split("/")[0][len("fold_") :])
    if not folds:
        raise ModelError(f"The model '{name}' has no fold_*/checkpoint_final.pth.")
    files = tuple(ModelFile(dest, size, opener(src)) for src, dest, size in keep)
    from .registry import RESULTS_FOLDER

    if config != RESULTS_FOLDER:
        log.info("Note: the model's results folder is %s.", config)
    return ModelEntry(
        name=name,
        title=f"user-supplied model {name}",
        dataset=dataset,
        files=files,
        licence="user-supplied",
        folds=tuple(sorted(folds, key=lambda f: (f != "all", f))),
    )


def _entry_from_zip(name: str, zip_path: str, label: str | None = None) -> ModelEntry:
    with open_zip(zip_path, label) as (archive, members):
        listing = [(i.filename, i.file_size) for i in members]

        def digest(member):
            with archive.open(member) as src:
                return stream_sha256(src)

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
    _record(
        entry,
        folder,
        custom=bool((_read_manifest(folder) or {}).get("custom")),
        source=(_read_manifest(folder) or {}).get("source", ""),
    )
    return folder


def remove(name: str) -> str:
    """Delete an installed model (and any interrupted install of it); only folders of ours are deleted."""
    folder, staging = model_dir(name), staging_dir(name)
    if os.path.lexists(folder) and not is_installed(name):
        raise ModelError(f"{folder} is not a model installed by ctadeface, so it was left alone.")
    found = os.path.lexists(folder) or os.path.lexists(staging)
    if not found:
        raise ModelError(f"The model '{name}' is not installed in {models_dir()}; nothing was removed.")
    if os.path.lexists(folder):
        shutil.rmtree(folder)
    _delete(staging)
    return folder
