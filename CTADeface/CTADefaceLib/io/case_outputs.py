"""One case's files in an output folder: who they belong to, all-or-nothing writing, leftovers, the folder lock.

A case is COMPLETE when its sidecar `<name>_deface.json` exists. Everything is first written into a
staging folder `.ctadeface-tmp-<pid>-<random>` inside the output folder (the same file system, so the
final renames are atomic); then the defaced image and the mask are renamed into place and the sidecar
last. The sidecar records the input (absolute path, sha256) and the sha256 of both outputs, so a later
run can tell "this input's finished outputs" from "another input's outputs" and from files that were
changed or left half-done. Files under the final names without a sidecar are the remains of an
interrupted run; the next run removes them (only this case's output names, nothing else).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile

from ..errors import OutputError
from ..hashing import file_sha256
from .volume import TEMP_PREFIX, input_digest, temp_prefix

log = logging.getLogger(__name__)

# Every temporary file or folder this package makes in an output folder is named by volume.temp_prefix():
# the prefix, the writing process's id and a dash, so a later run can tell a dead run's leftovers from a live run's.
TMP_PREFIX = TEMP_PREFIX

IMAGE_KEYS = ("defaced", "mask")


class OutputsExist(OutputError):
    """The case is complete in the output folder (not an error in a batch: the case is skipped)."""


class ForeignOutputs(OutputError):
    """The output names are taken by another input's outputs, which are never replaced."""


def input_sha256(path: str) -> str | None:
    """The input's sha256, None when there is no such file; for a DICOM folder input, the digest of its series."""
    if not os.path.exists(path):
        return None
    return input_digest(path)


# ---------------------------------------------------------------------------- the output folder
def prepare_output_folder(folder: str) -> None:
    """Create the output folder and prove it takes a file, before any model loads (one sentence if not)."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"The output folder {folder} is a file, not a folder; give an output folder.")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise OutputError(f"The output folder {folder} cannot be created ({err.strerror or err}).") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=temp_prefix(), suffix=".probe", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise OutputError(f"The output folder {folder} is not writable ({err.strerror or err}).") from None


@contextlib.contextmanager
def output_folder_lock(folder: str):
    """Hold an exclusive lock on the output folder while this run writes into it.

    A second run into the same folder refuses at once instead of racing for the same file names.
    The lock is flock(2) on the folder itself (no lock file is left behind) and the kernel releases
    it when the process dies, even by kill -9. Where there is no flock (Windows) or the file system
    does not support it, the run goes on without the lock.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"Another ctadeface run is writing into {folder} now; wait for it to finish "
                    "or choose another output folder."
                ) from None
            log.debug("No lock on %s (%s); going on without it.", folder, err)
        yield
    finally:
        os.close(fd)  # releases the lock


def pid_is_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no safe cheap check here: keep the files (never delete a live run's)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def remove_stale_temporaries(folder: str) -> list[str]:
    """Delete `.ctadeface-tmp-<pid>-*` entries whose process is gone (a crashed or killed run's)."""
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(TMP_PREFIX):
            continue
        pid_text = name[len(TMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or pid_is_running(int(pid_text)):
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError as err:
            log.warning("Could not remove %s left by an earlier run (%s).", path, err.strerror or err)
    if removed:
        log.info("Removed %d temporary file(s) left in %s by an earlier run that did not finish.", len(removed), folder)
    return removed


# ---------------------------------------------------------------------------- JSON
def strict_json(data: dict, what: str) -> str:
    """JSON text that any reader accepts: NaN and infinity are not JSON, so they are an error here."""
    try:
        return json.dumps(data, indent=2, default=str, allow_nan=False) + "\n"
    except ValueError:
        raise OutputError(
            f"{what} cannot be written as JSON: it holds a value that is not a finite number (NaN or infinity)."
        ) from None


def _umask() -> int:
    # Linux reports it without changing it; elsewhere set and restore it at once (umask has no getter).
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(text: str, path: str) -> None:
    """Write a text file through a temporary file and a rename, with the permissions open() would give."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(), suffix=".json")
    try:
        # mkstemp makes 0600; a sidecar is as readable as any other file the user creates.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_json_atomic(data: dict, path: str) -> None:
    write_text_atomic(strict_json(data, path), path)


# ---------------------------------------------------------------------------- whose outputs are these
def _same_path(a: str, b: str) -> bool:
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def examine_case(input_path: str, paths: dict, digest=input_sha256) -> tuple[str, str | list[str] | None]:
    """What the output folder holds under this case's names.

    Returns (state, detail):
      "new"        nothing under this case's names;
      "incomplete" images without a sidecar (an interrupted run); detail = the files;
      "complete"   this input's sidecar, and both outputs match the sha256 it records;
      "changed"    this input's sidecar, but the input or an output changed since; detail = a sentence;
      "foreign"    a sidecar for another input (or not ours at all); detail = a sentence.
    A sidecar is this input's when it records this input's path, or the sha256 of this input's bytes
    (the same scan moved to another folder).
    """
    sidecar_path = paths["sidecar"]
    if not os.path.lexists(sidecar_path):
        leftovers = [paths[k] for k in IMAGE_KEYS if os.path.lexists(paths[k])]
        return ("incomplete", leftovers) if leftovers else ("new", None)
    try:
        with open(sidecar_path, encoding="utf-8") as handle:
            sidecar = json.load(handle)
        recorded = sidecar["input"]
        recorded_path, recorded_sha = recorded.get("path"), recorded.get("sha256")
        hashes = sidecar.get("outputs_sha256") or {}
        if not isinstance(recorded, dict) or not isinstance(hashes, dict):
            raise TypeError("not a sidecar's layout")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "foreign", (
            f"{sidecar_path} exists and is not a ctadeface sidecar for {input_path}; it is never "
            "replaced, so deface this input into another output folder."
        )
    same_path = bool(recorded_path) and _same_path(recorded_path, input_path)
    current_sha = digest(input_path) if recorded_sha else None
    same_bytes = bool(recorded_sha) and current_sha == recorded_sha
    if not same_path and not same_bytes:
        owner = recorded_path or (
            f"the Slicer volume {recorded['slicer_node']}" if recorded.get("slicer_node") else "unknown"
        )
        return "foreign", (
            f"{sidecar_path} holds the outputs of another input ({owner}); "
            "another case's outputs are never replaced, so deface this input into another "
            "output folder."
        )
    if recorded_sha and current_sha and not same_bytes:
        return "changed", (
            f"{input_path} has changed since its outputs in {os.path.dirname(sidecar_path)} were "
            "made (its sha256 differs); pass --overwrite to deface it again."
        )
    for key in IMAGE_KEYS:
        if not os.path.isfile(paths[key]) or (hashes.get(key) and file_sha256(paths[key]) != hashes[key]):
            return "changed", (
                f"{paths[key]} is missing or no longer matches its sidecar; pass --overwrite to deface this case again."
            )
    return "complete", None


def claim_case(input_path: str, paths: dict, *, overwrite: bool, digest=input_sha256) -> None:
    """Make the case's names free to write, or raise: OutputsExist (complete, no --overwrite),
    ForeignOutputs (another input's, even with --overwrite), OutputError (changed, no --overwrite).
    Remains of an interrupted run of this case are removed."""
    state, detail = examine_case(input_path, paths, digest)
    if state == "foreign":
        raise ForeignOutputs(detail)
    if state == "complete" and not overwrite:
        raise OutputsExist(f"{paths['defaced']} already exists; pass --overwrite to replace it.")
    if state == "changed" and not overwrite:
        raise OutputError(detail)
    if state == "incomplete" and isinstance(detail, list):
        for path in detail:
            os.remove(path)
        log.info("Removed %s: left without a sidecar by an interrupted run.", ", ".join(detail))


def case_leftovers(paths: dict) -> list[str]:
    """This case's files under final names that do not make a complete case (no sidecar)."""
    if os.path.lexists(paths["sidecar"]):
        return []
    return [paths[k] for k in IMAGE_KEYS if os.path.lexists(paths[k])]


def own_staging_folders(folder: str) -> list[str]:
    try:
        return [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(temp_prefix())]
    except OSError:
        return []


# ---------------------------------------------------------------------------- writing
def write_case(
    images: dict, sidecar: dict, paths: dict, *, overwrite: bool = False, protect: tuple = (), before_sidecar=None
) -> dict:
    """Write a case all-or-nothing: stage images and sidecar, then rename images, sidecar last.

    `images`: {"defaced": image, "mask": image}; `sidecar`: the provenance, completed here with the
    outputs' paths and sha256; `before_sidecar(sidecar)` may add last values (e.g. the total time).
    """
    from .volume import write_image_atomic

    for key in ("defaced", "mask", "sidecar"):
        target = paths[key]
        if any(os.path.exists(p) and os.path.exists(target) and os.path.samefile(p, target) for p in protect):
            raise OutputError(f"Refusing to write {target}: it is an input file.")
        if not overwrite and os.path.lexists(target):
            raise OutputError(f"{target} already exists; pass --overwrite to replace it.")
    folder = os.path.dirname(os.path.abspath(paths["sidecar"]))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=temp_prefix(), dir=folder)
    placed = []
    try:
        staged = {}
        for key in IMAGE_KEYS:
            target = os.path.join(staging, os.path.basename(paths[key]))
            try:
                staged[key] = write_image_atomic(images[key], target, overwrite=True, shown=paths[key])
            except RuntimeError as err:  # ITK's writer: a full disk, a lost mount, an unwritable format
                reason = str(err).strip().splitlines()[-1].strip() if str(err).strip() else "unknown reason"
                raise OutputError(f"{paths[key]} could not be written ({reason}).") from None
            os.chmod(staged[key], 0o666 & ~_umask())  # temporary files are private; the outputs are not
        sidecar["outputs"] = {k: os.path.abspath(v) for k, v in paths.items()}
        sidecar["outputs_sha256"] = {k: file_sha256(staged[k]) for k in IMAGE_KEYS}
        if before_sidecar:
            before_sidecar(sidecar)
        staged_sidecar = os.path.join(staging, os.path.basename(paths["sidecar"]))
        write_text_atomic(strict_json(sidecar, f"The sidecar of {paths['defaced']}"), staged_sidecar)
        # Commit. The old sidecar goes first: a crash in between leaves a case without a sidecar
        # (incomplete, removed by the next run), never old images with a new sidecar or the reverse.
        if os.path.lexists(paths["sidecar"]):
            os.remove(paths["sidecar"])
        for key in IMAGE_KEYS:
            os.replace(staged[key], paths[key])
            placed.append(paths[key])
        os.replace(staged_sidecar, paths["sidecar"])
        placed = []
    except BaseException:
        for path in placed:  # images of a case whose sidecar never came: not a case, so not left
            with contextlib.suppress(OSError):
                os.remove(path)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sidecar
