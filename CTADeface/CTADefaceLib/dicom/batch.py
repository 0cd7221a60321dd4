"""`ctadeface deface` for DICOM input: every study under the inputs, one after the other, into one folder.

Layout: OUTDIR/<new StudyInstanceUID>/<series number>_<modality>/0001.dcm ... and the report
OUTDIR/<new StudyInstanceUID>_deface.json beside each study folder. The key file and the mapping file
(--mapping-file, only when asked for: it re-identifies) are refused inside the output folder; the mapping file
gathers the rows of every run that names it (deid/mapping.py).
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Any

from ..errors import DefaceError, OutputError
from ..io.case_outputs import output_folder_lock, prepare_output_folder, remove_stale_temporaries
from ..io.volume import IMAGE_SUFFIXES, split_suffix
from .discover import LINK_OUTSIDE, discover, has_dicom_signature, holds_dicom
from .study import study_folder_name

if TYPE_CHECKING:
    from ..engines.base import Engine
    from ..settings import DefaceSettings

log = logging.getLogger(__name__)


def is_dicom_input(path: str) -> bool:
    """A DICOM file, or a folder with DICOM files (at any depth) and no image files of other formats in it."""
    if os.path.isfile(path):
        return has_dicom_signature(path)
    if not os.path.isdir(path):
        return False
    if any(split_suffix(n)[1] in IMAGE_SUFFIXES for n in os.listdir(path)):
        return False
    return holds_dicom(path)


def _inside(folder: str, path: str) -> bool:
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return os.path.commonpath([folder, path]) == folder


def make_deidentifier(settings: DefaceSettings, outdir: str) -> Any:
    from ..deid import Deidentifier, DeidOptions, UidMapping, default_key_path, key_inside, load_or_create_key

    key_path = settings.deid_key or default_key_path()
    if key_inside(outdir, key_path):
        raise OutputError(
            f"The de-identification key {key_path} lies inside the output folder; it must stay with you, not "
            "with the shared data: choose another --deid-key or output folder."
        )

    if settings.mapping_file and _inside(outdir, settings.mapping_file):
        raise OutputError(
            f"The mapping file {settings.mapping_file} lies inside the output folder; it re-identifies the "
            "patients, so write it somewhere else."
        )
    if settings.mapping_file:
        UidMapping.check(settings.mapping_file)  # a file that is not a table of this tool: refused before any work
    options = DeidOptions.from_names(list(settings.deid_options))
    key = load_or_create_key(key_path)
    return Deidentifier(options, key, mapping=UidMapping() if settings.mapping_file else None)


def deface_dicom(
    inputs: list[str],
    outdir: str,
    settings: DefaceSettings,
    *,
    engine: Engine | None = None,
    overwrite: bool = False,
    deid: Any = None,
    check: Any = None,
) -> list[dict[str, Any]]:
    """Deface and de-identify every study under `inputs`; one record per study (and per skipped file)."""
    from .study import deface_study

    prepare_output_folder(outdir)
    deid = deid if deid is not None else make_deidentifier(settings, outdir)
    found = discover(inputs, exclude=(outdir,))
    records: list[dict[str, Any]] = [
        {"input": path, "status": "skipped", "message": reason} for path, reason in found.skipped
    ]
    with output_folder_lock(outdir):
        remove_stale_temporaries(outdir)
        for study in found.studies.values():
            broken = found.unreadable_beside(study)
            if broken:
                records.append(
                    {
                        "input": os.path.dirname(broken[0]),
                        "status": "failed",
                        "message": (
                            f"{len(broken)} DICOM file(s) in {os.path.dirname(broken[0])} could not be read (first: "
                            f"{os.path.basename(broken[0])}), so a series may be missing slices; copy the series "
                            "again from the source."
                        ),
                    }
                )
                continue
            try:
                record = deface_study(study, outdir, settings, deid, engine=engine, overwrite=overwrite, check=check)
            except Exception as err:  # noqa: BLE001 - one study's failure is one sentence; the others still run
                name = study_folder_name(study, deid)  # the shareable name, never the original UID
                record = {"study": name, "status": "failed", "message": _study_failure(name, outdir, err)}
            record["input"] = f"study {record['study']}"
            records.append(record)
    if settings.mapping_file and getattr(deid, "mapping", None) is not None:
        deid.mapping.write(settings.mapping_file)
    if not found.studies:
        if found.unreadable:
            raise DefaceError(
                f"{len(found.unreadable)} DICOM file(s) could not be read (first: {found.unreadable[0]}) and no "
                "readable DICOM study was found; copy the files again from the source."
            )
        links = sum(reason.startswith(LINK_OUTSIDE) for _, reason in found.skipped)
        if links:
            raise DefaceError(
                f"No DICOM study was found in {', '.join(inputs)}: {links} symbolic link(s) there point outside the "
                "input folders and were not followed; give their targets as inputs."
            )
        raise DefaceError(f"No DICOM study was found in {', '.join(inputs)}.")
    return records


def _study_failure(name: str, outdir: str, err: BaseException) -> str:
    """One sentence for a study that failed. A write error names the output folder, not the staging file inside it
    (the staging folder is removed, so its path means nothing to the user)."""
    from ..pipeline import describe_failure

    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"The study could not be written to {outdir} ({os.strerror(err.errno)}): the disk is full; nothing of it "
            "was left there. Free some space or choose another output folder, then run again."
        )
    if isinstance(err, OSError) and err.filename and str(err.filename).startswith(outdir):
        return f"The study could not be written to {outdir} ({err.strerror or err}); nothing of it was left there."
    return describe_failure(name, err)
