"""Saving corrected face masks as new training data: an nnU-Net v2 raw dataset that grows case by case.

Layout (what `nnUNetv2_plan_and_preprocess` expects):
    <dataset>/imagesTr/DEFACE_0001_0000.nii.gz   the CT (channel 0)
    <dataset>/labelsTr/DEFACE_0001.nii.gz        the mask (0 background, 1 face)
    <dataset>/dataset.json                       channel_names, labels, numTraining, file_ending
Cases are numbered on from the highest existing one and never overwritten; every file is written
to a temporary name and renamed, and dataset.json last, so an interrupted save leaves no half case
that nnU-Net would count.
"""

from __future__ import annotations

import json
import os
import re

from .errors import DefaceError
from .io.volume import write_image_atomic
from .pipeline import write_json_atomic

CASE_PREFIX = "DEFACE"
FILE_ENDING = ".nii.gz"
LABELS = {"background": 0, "face": 1}
CHANNELS = {"0": "CT"}
_CASE = re.compile(r"^(?P<prefix>.+)_(?P<number>\d{4,})" + re.escape(FILE_ENDING) + "$")


def _check_pair(image, label) -> None:
    """The label must be binary and on the image's exact grid, or nnU-Net training would fail later."""
    import numpy as np

    from .io.volume import same_grid

    if not same_grid(image, label):
        raise DefaceError("The mask is not on the image's voxel grid (size, spacing, origin and direction must match).")
    import SimpleITK as sitk

    values = np.unique(sitk.GetArrayViewFromImage(label))
    if not set(values.tolist()) <= {0, 1}:
        raise DefaceError(f"The mask must hold only 0 and 1 (found {', '.join(str(v) for v in values[:6])}).")
    if values.tolist() == [0]:
        raise DefaceError("The mask is empty: a ground-truth case needs the face marked.")


def existing_cases(dataset_folder: str, prefix: str = CASE_PREFIX) -> list[str]:
    """Case identifiers present in labelsTr (sorted)."""
    labels = os.path.join(dataset_folder, "labelsTr")
    if not os.path.isdir(labels):
        return []
    cases = []
    for name in os.listdir(labels):
        match = _CASE.match(name)
        if match and match.group("prefix") == prefix:
            cases.append(name[: -len(FILE_ENDING)])
    return sorted(cases)


def next_case_id(dataset_folder: str, prefix: str = CASE_PREFIX) -> str:
    """One above the highest number seen in imagesTr or labelsTr (gaps are kept, numbers never reused)."""
    highest = 0
    for sub in ("imagesTr", "labelsTr"):
        folder = os.path.join(dataset_folder, sub)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            match = re.match(re.escape(prefix) + r"_(\d{4,})(_\d{4})?" + re.escape(FILE_ENDING) + "$", name)
            if match:
                highest = max(highest, int(match.group(1)))
    return f"{prefix}_{highest + 1:04d}"


def _dataset_json(dataset_folder: str, count: int) -> dict:
    path = os.path.join(dataset_folder, "dataset.json")
    data = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("labels", LABELS) != LABELS or data.get("file_ending", FILE_ENDING) != FILE_ENDING:
            raise DefaceError(
                f"{path} describes a different dataset (labels {data.get('labels')}); choose another folder."
            )
    data.setdefault("name", os.path.basename(os.path.abspath(dataset_folder)))
    data.setdefault("description", "CTA-DEFACE face masks corrected in 3D Slicer (label 1 = facial soft tissue)")
    data["channel_names"] = dict(CHANNELS)
    data["labels"] = dict(LABELS)
    data["numTraining"] = count
    data["file_ending"] = FILE_ENDING
    return data


def add_case(dataset_folder: str, image, label, *, prefix: str = CASE_PREFIX, source: dict | None = None) -> str:
    """Append one (CT, face mask) pair; returns the new case id (e.g. DEFACE_0003)."""
    import SimpleITK as sitk

    _check_pair(image, label)
    for sub in ("imagesTr", "labelsTr"):
        os.makedirs(os.path.join(dataset_folder, sub), exist_ok=True)
    case = next_case_id(dataset_folder, prefix)
    image_path = os.path.join(dataset_folder, "imagesTr", f"{case}_0000{FILE_ENDING}")
    label_path = os.path.join(dataset_folder, "labelsTr", f"{case}{FILE_ENDING}")
    # overwrite=False: a case that appeared meanwhile (another Slicer saving) raises instead of being replaced.
    write_image_atomic(image, image_path, overwrite=False)
    write_image_atomic(sitk.Cast(label, sitk.sitkUInt8), label_path, overwrite=False)
    if source:
        write_json_atomic(source, os.path.join(dataset_folder, "sources", f"{case}.json"))
    count = len(_all_label_cases(dataset_folder))  # numTraining counts every case, ours and any already there
    write_json_atomic(_dataset_json(dataset_folder, count), os.path.join(dataset_folder, "dataset.json"))
    return case


def _all_label_cases(dataset_folder: str) -> list[str]:
    labels = os.path.join(dataset_folder, "labelsTr")
    return (
        [n[: -len(FILE_ENDING)] for n in os.listdir(labels) if n.endswith(FILE_ENDING)] if os.path.isdir(labels) else []
    )
