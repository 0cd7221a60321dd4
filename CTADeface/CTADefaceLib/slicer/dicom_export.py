"""Export de-identified DICOM from Slicer: a volume loaded from the DICOM database + its (edited) face segment.

    volume's "DICOM.instanceUIDs" -> the database's files -> the core's DICOM study code (dicom.study.deface_study)
    with the CURRENT face segment as the mask -> OUTDIR/<new StudyInstanceUID>/<series>/0001.dcm + the report
    -> optionally DICOMUtils.importDicom on the written study folder

No model runs: the segment is the mask, exactly as a person left it (no post-processing, no plausibility floor).
The core resamples it (nearest neighbour) from the volume's grid onto the series' grid, keeps every stored value
outside it bit-identical and de-identifies the headers with the key and options of the DefaceSettings, as
`ctadeface deface` does. The study is written into a staging folder and renamed into place (deface_study).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable

from ..errors import DefaceError, InputError, OutputError

#: The attribute Slicer's DICOM scalar volume plugin sets on a loaded volume: its SOP instance UIDs, space-separated.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"


def _bridge():
    from . import bridge as slicerbridge  # imports slicer: only on first use

    return slicerbridge


def instance_uids(volume_node) -> list[str]:
    """The volume's SOP instance UIDs (empty when it was not loaded from the DICOM database)."""
    if volume_node is None or not hasattr(volume_node, "GetAttribute"):
        return []
    value = volume_node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE)
    return str(value).split() if value else []


def can_export(volume_node, segmentation_node) -> bool:
    """The widget's enable rule: a volume from the DICOM database and a face segmentation."""
    return segmentation_node is not None and bool(instance_uids(volume_node))


def source_files(volume_node, database) -> list[str]:
    """The DICOM files the volume was loaded from; one sentence if it has none or one is missing."""
    name = _bridge().node_name(volume_node) or "the volume"
    uids = instance_uids(volume_node)
    if not uids:
        raise InputError(
            f'The volume "{name}" was not loaded from the DICOM database, so there is no DICOM series to export; '
            "use Export for a volume file instead."
        )
    files = [database.fileForInstance(uid) if database is not None else "" for uid in uids]
    missing = [f for f in files if not f or not os.path.isfile(f)]
    if missing:
        raise InputError(
            f'{len(missing)} of the {len(files)} DICOM files of "{name}" are missing from the DICOM database '
            "(moved or deleted); import the series again."
        )
    return files


def _inside(folder: str, path: str) -> bool:
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return os.path.commonpath([folder, path]) == folder


def check_output_folder(folder: str, files: list[str]) -> None:
    """New or empty, and not inside a folder that holds the input files (nor holding them)."""
    if not folder:
        raise OutputError("Choose an output folder for the de-identified DICOM.")
    for source in sorted({os.path.dirname(os.path.abspath(f)) for f in files}):
        if _inside(source, folder) or _inside(folder, source):
            raise OutputError(
                f"The output folder {folder} lies inside the folder of the input DICOM files (or holds them); "
                "choose a folder outside it."
            )
    if os.path.isdir(folder) and os.listdir(folder):
        raise OutputError(f"The output folder {folder} is not empty; choose a new or empty folder.")


class _SegmentAsMask:
    """The 'engine' of an export: the mask is the segment, so nothing is loaded or run."""

    def describe(self) -> dict[str, Any]:
        # no node name: Slicer names DICOM volumes after their series description, which may identify
        return {"engine": "slicer segmentation", "model": None, "model_sha256": None, "device": None}


def export_dicom(
    volume_node,
    segmentation_node,
    folder: str,
    settings=None,
    *,
    database=None,
    add_to_database: bool = False,
    import_dicom: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Write the volume's series defaced with the segmentation's face segment and de-identified into `folder`.

    `database`: what answers fileForInstance(uid) (slicer.dicomDatabase, from the bridge, by default).
    `import_dicom(folder)`: DICOMUtils.importDicom (bridge.import_dicom) by default; called on the written study folder when
    `add_to_database`. Returns deface_study's record plus "study_folder" and "imported".
    """
    import SimpleITK as sitk

    from ..dicom.batch import make_deidentifier
    from ..dicom.discover import discover
    from ..dicom.study import deface_study
    from ..io.case_outputs import output_folder_lock, prepare_output_folder
    from ..pipeline import DefaceSettings, deface_image

    bridge = _bridge()
    if segmentation_node is None:
        raise InputError("Segment the face first (Deface), then export.")
    if database is None:
        database = bridge.dicom_database()
    files = source_files(volume_node, database)
    folder = os.path.abspath(folder) if folder else folder
    check_output_folder(folder, files)
    # the segment as it is now, on the volume's grid (before anything is written: a bad segment stops here)
    face = bridge.mask_from_segmentation(segmentation_node, volume_node)
    if not sitk.GetArrayViewFromImage(face).any():
        raise InputError("The face segment is empty; nothing would be defaced.")
    found = discover(files)
    if found.unreadable or len(found.studies) != 1:
        raise InputError("The volume's DICOM files could not all be read as one study; import the series again.")
    (study,) = found.studies.values()
    # exactly what the segment shows: no post-processing, no size floor (a person may have edited it)
    settings = replace(settings or DefaceSettings(), largest_component=False, fill_holes=False, margin_mm=0.0)

    def compute(image, run_settings, engine=None, name="the series"):
        # the segment's grid is the volume's; the series' grid as the core reads it may differ by rounding
        mask = sitk.Resample(face, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        result = deface_image(image, run_settings, mask=mask, name=name)
        result.provenance["engine_details"] = _SegmentAsMask().describe()  # the report: the mask's origin
        return result

    prepare_output_folder(folder)
    deid = make_deidentifier(settings, folder)
    with output_folder_lock(folder):
        record = deface_study(study, folder, settings, deid, engine=_SegmentAsMask(), compute=compute)  # type: ignore[arg-type]
    if record["status"] != "done":
        raise DefaceError(record["message"] or "The series could not be exported.")
    if settings.mapping_file and getattr(deid, "mapping", None) is not None:
        deid.mapping.write(settings.mapping_file)
    record["study_folder"] = os.path.join(folder, record["study"])
    record["imported"] = False
    if add_to_database:
        # Slicer 5.8/5.10 return False on failure instead of raising
        if (import_dicom or bridge.import_dicom)(record["study_folder"]) is False:
            raise DefaceError(
                f"The de-identified series was written to {record['study_folder']}, but Slicer could not add it to "
                "the DICOM database; import that folder with the DICOM module's Import button."
            )
        record["imported"] = True
    return record
