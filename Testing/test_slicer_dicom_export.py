"""Export de-identified DICOM from Slicer (slicer-core, real MRML) for a volume loaded from the DICOM database.

A real CT series (pydicom, from the phantom head) stands in the "database" folder; the volume node carries the
"DICOM.instanceUIDs" attribute Slicer's DICOM plugin sets. Stand-ins only for what is Qt/CTK and cannot exist
here: slicer.dicomDatabase (fileForInstance) and DICOMUtils.importDicom.
"""

import os

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
from builders import make_synthetic_head  # noqa: E402
from dicom_study import FRAME_UID, PHI, STUDY_UID, uid, write_series  # noqa: E402
from helpers import tree_hashes  # noqa: E402
from slicer_bootstrap import bootstrap  # noqa: E402

bootstrap()
from CTADefaceLib.dicom.discover import discover  # noqa: E402
from CTADefaceLib.dicom.geometry import series_geometry  # noqa: E402
from CTADefaceLib.dicom.pixels import fill_stored_value, stored_values  # noqa: E402
from CTADefaceLib.dicom.study import read_volume  # noqa: E402
from CTADefaceLib.errors import DefaceError, InputError, OutputError  # noqa: E402
from CTADefaceLib.settings import DefaceSettings  # noqa: E402
from CTADefaceLib.slicer import bridge as slicerbridge  # noqa: E402
from CTADefaceLib.slicer.dicom_export import can_export, export_dicom  # noqa: E402

SERIES_UID = uid("10")
FILL_HU = -1024.0


class StandInDatabase:
    """TEST STAND-IN for slicer.dicomDatabase (a ctkDICOMDatabase): fileForInstance only; "" when unknown."""

    def __init__(self, files):
        self.files = dict(files)

    def fileForInstance(self, sop_uid):
        return self.files.get(sop_uid, "")


class RecordingImport:
    """TEST STAND-IN for DICOMUtils.importDicom: records the folder; returns what it is told (False = failed)."""

    def __init__(self, answer=True):
        self.answer, self.calls = answer, []

    def __call__(self, folder):
        self.calls.append(folder)
        return self.answer


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicomdb")
    head = make_synthetic_head(spacing=8.0)
    paths = write_series(head.image, str(root / "dicom" / "series"), SERIES_UID, 1)
    files = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in paths}
    return root, files, head


def loaded_volume(files, head):
    """What Slicer's DICOM plugin gives: the series as a volume node with its instance UIDs in slice order."""
    (study,) = discover(list(files.values())).studies.values()
    geometry = series_geometry(next(iter(study.series.values())))
    volume = slicerbridge.volume_from_image(read_volume(geometry), "CT head")
    order = [pydicom.dcmread(s.path, stop_before_pixels=True).SOPInstanceUID for s in geometry.slices]
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(order))
    segmentation = slicerbridge.segmentation_from_mask(head.face, volume)
    return volume, segmentation, geometry


def settings_for(tmp_path):
    return DefaceSettings(fill=FILL_HU, deid_key=str(tmp_path / "keys" / "deid-key"))


def written_slices(record):
    (series_folder,) = [e.path for e in os.scandir(record["study_folder"]) if e.is_dir()]
    return [pydicom.dcmread(os.path.join(series_folder, n)) for n in sorted(os.listdir(series_folder))]


def test_export_is_defaced_only_under_the_segment_and_de_identified(database, tmp_path):
    root, files, head = database
    before = tree_hashes(root)
    volume, segmentation, geometry = loaded_volume(files, head)
    imported = RecordingImport()
    record = export_dicom(
        volume,
        segmentation,
        str(tmp_path / "out"),
        settings_for(tmp_path),
        database=StandInDatabase(files),
        add_to_database=True,
        import_dicom=imported,
    )
    assert record["status"] == "done" and record["imported"] is True
    assert imported.calls == [record["study_folder"]]
    face = sitk.GetArrayFromImage(slicerbridge.mask_from_segmentation(segmentation, volume)) > 0
    assert face.any()
    originals = [pydicom.dcmread(s.path) for s in geometry.slices]
    out = written_slices(record)
    assert len(out) == len(originals)
    secret = [STUDY_UID, SERIES_UID, FRAME_UID, *files] + [v for v in PHI.values()]
    for k, (ds, original) in enumerate(zip(out, originals)):
        before_values, after_values = stored_values(original), stored_values(ds)
        fill = fill_stored_value(original, FILL_HU)
        assert np.array_equal(after_values[~face[k]], before_values[~face[k]])  # bit-identical outside
        assert np.all(after_values[face[k]] == fill)
        assert ds.PatientIdentityRemoved == "YES" and ds.ImageType[0] == "DERIVED"
        text = ds.to_json() + ds.file_meta.to_json()
        assert not [s for s in secret if s in text]
        assert PHI["PatientName"] in original.to_json() and original.SOPInstanceUID in files  # there to remove
    changed = sum(int((stored_values(o) != stored_values(d)).sum()) for o, d in zip(originals, out))
    assert changed > 0
    with open(record["report"], encoding="utf-8") as handle:
        report = handle.read()
    assert '"engine": "slicer segmentation"' in report and not [s for s in secret if s in report]
    assert out[0].get("PatientSex", "") == ""  # the Basic Profile alone
    assert tree_hashes(root) == before  # the database's files are never modified


def test_a_hand_edited_segment_changes_exactly_the_added_voxels(database, tmp_path):
    root, files, head = database
    volume, segmentation, geometry = loaded_volume(files, head)
    db = StandInDatabase(files)
    first = export_dicom(volume, segmentation, str(tmp_path / "a"), settings_for(tmp_path), database=db)
    face = sitk.GetArrayFromImage(slicerbridge.mask_from_segmentation(segmentation, volume)) > 0
    edited = face.copy()
    edited[8:14, 10:16, 8:14] = True  # the block an annotator painted into the face segment (inside the head)
    slicer.util.updateSegmentBinaryLabelmapFromArray(
        edited.astype(np.uint8), segmentation, slicerbridge.face_segment_id(segmentation), volume
    )
    second = export_dicom(volume, segmentation, str(tmp_path / "b"), settings_for(tmp_path), database=db)
    originals = [stored_values(pydicom.dcmread(s.path)) for s in geometry.slices]
    a = np.stack([stored_values(ds) for ds in written_slices(first)])
    b = np.stack([stored_values(ds) for ds in written_slices(second)])
    fill = fill_stored_value(pydicom.dcmread(geometry.slices[0].path), FILL_HU)
    expected = edited & ~face & (np.stack(originals) != fill)
    assert expected.sum() > 100
    assert np.array_equal(a != b, expected)
    assert os.path.basename(first["study_folder"]) == os.path.basename(second["study_folder"])  # same key, same UID


def test_a_volume_not_from_the_dicom_database_is_refused(database, tmp_path):
    _, files, head = database
    volume, segmentation, _ = loaded_volume(files, head)
    assert can_export(volume, segmentation) and not can_export(volume, None)
    volume.RemoveAttribute("DICOM.instanceUIDs")
    assert not can_export(volume, segmentation)
    with pytest.raises(InputError, match="was not loaded from the DICOM database"):
        export_dicom(
            volume, segmentation, str(tmp_path / "out"), settings_for(tmp_path), database=StandInDatabase(files)
        )
    assert not (tmp_path / "out").exists()


def test_missing_database_files_are_refused(database, tmp_path):
    _, files, head = database
    volume, segmentation, _ = loaded_volume(files, head)
    partial = dict(list(files.items())[1:])
    with pytest.raises(InputError, match="1 of the .* DICOM files .* are missing"):
        export_dicom(
            volume, segmentation, str(tmp_path / "out"), settings_for(tmp_path), database=StandInDatabase(partial)
        )
    assert not (tmp_path / "out").exists()


def test_output_folder_must_be_new_or_empty_and_outside_the_input(database, tmp_path):
    root, files, head = database
    volume, segmentation, _ = loaded_volume(files, head)
    db = StandInDatabase(files)
    before = tree_hashes(root)
    with pytest.raises(OutputError, match="inside the folder of the input"):
        export_dicom(volume, segmentation, str(root / "dicom" / "series" / "out"), settings_for(tmp_path), database=db)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        export_dicom(volume, segmentation, str(busy), settings_for(tmp_path), database=db)
    assert os.listdir(busy) == ["notes.txt"]
    assert tree_hashes(root) == before


def test_a_failed_import_says_so_and_keeps_the_written_files(database, tmp_path):
    _, files, head = database
    volume, segmentation, _ = loaded_volume(files, head)
    imported = RecordingImport(answer=False)
    with pytest.raises(DefaceError, match="could not add it to the DICOM database") as caught:
        export_dicom(
            volume,
            segmentation,
            str(tmp_path / "out"),
            settings_for(tmp_path),
            database=StandInDatabase(files),
            add_to_database=True,
            import_dicom=imported,
        )
    assert len(imported.calls) == 1 and imported.calls[0] in str(caught.value)
    assert len([n for n in os.listdir(imported.calls[0]) if not n.startswith(".")]) == 1  # the series folder
    # not asked for: no import at all
    again = RecordingImport()
    export_dicom(
        volume,
        segmentation,
        str(tmp_path / "out2"),
        settings_for(tmp_path),
        database=StandInDatabase(files),
        import_dicom=again,
    )
    assert again.calls == []


def test_the_chosen_profile_options_reach_the_headers(database, tmp_path):
    _, files, head = database
    volume, segmentation, _ = loaded_volume(files, head)
    settings = DefaceSettings(
        fill=FILL_HU, deid_key=str(tmp_path / "key"), deid_options=["retain-patient-characteristics"]
    )
    record = export_dicom(volume, segmentation, str(tmp_path / "out"), settings, database=StandInDatabase(files))
    assert {ds.PatientSex for ds in written_slices(record)} == {"F"}
