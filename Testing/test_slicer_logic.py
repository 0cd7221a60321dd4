"""DefaceLogic with slicer-core: deface -> edit segment -> apply / export / ground truth / batch."""

import importlib.util
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
from builders import RAS, StandInFaceEngine, box_ct, engine_mask_for  # noqa: E402
from slicer_bootstrap import bootstrap  # noqa: E402

bootstrap()
from CTADefaceLib.pipeline import DefaceSettings  # noqa: E402
from CTADefaceLib.records import Sidecar  # noqa: E402
from CTADefaceLib.slicer import bridge as slicerbridge  # noqa: E402
from CTADefaceLib.slicer.logic import DefaceLogic  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _defaced_pair(direction=RAS, name="head"):
    # Tiny synthetic blocks: the stand-in engine's masks are far below the 20 ml plausibility floor.
    image = box_ct(direction)
    volume = slicerbridge.volume_from_image(image, name)
    logic = DefaceLogic()
    segmentation = logic.deface(volume, DefaceSettings(engine="stand-in", min_face_ml=0), engine=StandInFaceEngine())
    return logic, image, volume, segmentation


def test_deface_gives_face_segmentation_matching_engine_mask():
    logic, image, volume, segmentation = _defaced_pair()
    mask = slicerbridge.mask_from_segmentation(segmentation, volume)
    assert np.array_equal(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(engine_mask_for(image)))
    assert logic.provenanceBySegmentation[segmentation.GetID()]["engine"] == "stand-in"


def test_edited_segment_is_exactly_what_apply_changes():
    logic, image, volume, segmentation = _defaced_pair()
    original = slicer.util.arrayFromVolume(volume).copy()
    edited = np.zeros(original.shape, np.uint8)
    edited[3:7, 1:4, 2:9] = 1  # what an annotator painted: a different region than the engine's
    slicer.util.updateSegmentBinaryLabelmapFromArray(
        edited, segmentation, slicerbridge.face_segment_id(segmentation), volume
    )
    defaced_node = logic.applyDefacing(volume, segmentation, fill=-1024)
    defaced = slicer.util.arrayFromVolume(defaced_node)
    assert defaced_node is not volume
    assert np.array_equal(slicer.util.arrayFromVolume(volume), original)  # input node untouched
    changed = defaced != original
    assert np.array_equal(changed, (edited > 0) & (original != -1024))
    assert np.all(defaced[edited > 0] == -1024)
    assert defaced.tobytes() == np.where(edited > 0, np.int16(-1024), original).tobytes()  # bit-identical elsewhere
    assert slicerbridge.image_from_volume(defaced_node).GetDirection() == image.GetDirection()


def test_export_writes_defaced_mask_and_sidecar(tmp_path):
    logic, image, volume, segmentation = _defaced_pair(name="exported")
    sidecar = logic.export(volume, segmentation, str(tmp_path), ".nrrd")
    names = sorted(os.listdir(tmp_path))
    assert names == ["exported_deface.json", "exported_defaced.nrrd", "exported_facemask.nrrd"]
    defaced = sitk.ReadImage(str(tmp_path / "exported_defaced.nrrd"))
    assert defaced.GetDirection() == image.GetDirection() and defaced.GetOrigin() == image.GetOrigin()
    on_disk = json.loads((tmp_path / "exported_deface.json").read_text())
    assert on_disk["mask_source"]["engine"] == "stand-in" and on_disk["fill_policy"] == "p10"
    # records.Sidecar names every key the Slicer export writes (mask_source included), and all it requires is there
    assert Sidecar.__required_keys__ <= set(on_disk) <= Sidecar.__required_keys__ | Sidecar.__optional_keys__
    assert sidecar["mask_voxels"] == int(sitk.GetArrayFromImage(engine_mask_for(image)).sum())


def test_ground_truth_folder_is_a_valid_nnunet_dataset_after_three_additions(tmp_path):
    dataset = tmp_path / "Dataset501_FaceCorrections"
    logic = DefaceLogic()
    cases = []
    for seed in range(3):
        image = box_ct(seed=seed)
        volume = slicerbridge.volume_from_image(image, f"head{seed}")
        segmentation = logic.deface(volume, DefaceSettings(min_face_ml=0), engine=StandInFaceEngine())
        cases.append(logic.saveGroundTruth(volume, segmentation, str(dataset)))
    assert cases == ["DEFACE_0001", "DEFACE_0002", "DEFACE_0003"]
    meta = json.loads((dataset / "dataset.json").read_text())
    assert meta["numTraining"] == 3 and meta["labels"] == {"background": 0, "face": 1}
    assert meta["channel_names"] == {"0": "CT"} and meta["file_ending"] == ".nii.gz"
    assert sorted(os.listdir(dataset / "imagesTr")) == [f"{c}_0000.nii.gz" for c in cases]
    if importlib.util.find_spec("nnunetv2") is None:
        pytest.skip("nnunetv2 not installed: its dataset verification cannot run")
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(dataset), num_processes=1)  # raises on any inconsistency


def test_batch_script_logic_defaces_two_inputs(tmp_path):
    import importlib.util as iu

    spec = iu.spec_from_file_location("deface_batch", os.path.join(REPO, "CTADeface", "Scripts", "deface_batch.py"))
    batch = iu.module_from_spec(spec)
    spec.loader.exec_module(batch)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for seed in range(2):
        sitk.WriteImage(box_ct(RAS, seed=seed), str(inputs / f"case{seed}.nii.gz"))

    def data_nodes():
        return sum(
            slicer.mrmlScene.GetNodesByClass(c).GetNumberOfItems()
            for c in (
                "vtkMRMLScalarVolumeNode",
                "vtkMRMLSegmentationNode",
                "vtkMRMLScalarVolumeDisplayNode",
                "vtkMRMLSegmentationDisplayNode",
            )
        )

    nodes_before = data_nodes()
    code = batch.main(
        ["--", str(inputs), "-o", str(tmp_path / "out"), "--engine", "stand-in", "--min-face-ml", "0"],
        engine=StandInFaceEngine(),
    )
    assert code == 0
    out = sorted(os.listdir(tmp_path / "out"))
    assert out == sorted(
        f"case{s}{suffix}" for s in range(2) for suffix in ("_defaced.nii.gz", "_facemask.nii.gz", "_deface.json")
    )
    assert data_nodes() == nodes_before  # nodes are removed after each case
    # A missing input is a failed case and a non-zero exit, not a crash.
    assert batch.main([str(tmp_path / "missing.nii.gz"), "-o", str(tmp_path / "out2")], engine=StandInFaceEngine()) == 1


def test_gui_path_child_process_failure_is_one_readable_error(tmp_path):
    """startDeface runs the real `ctadeface deface` in a child; its user error comes back as DefaceError."""
    from CTADefaceLib.errors import DefaceError

    volume = slicerbridge.volume_from_image(box_ct(), "childhead")
    settings = DefaceSettings(model=str(tmp_path / "absent-model"), device="cpu")
    process = DefaceLogic().startDeface(volume, settings, workFolder=str(tmp_path / "work"))
    assert os.path.isfile(os.path.join(process.workFolder, "input.nii.gz"))  # the volume went to the child as a file
    with pytest.raises(DefaceError, match="absent-model is not an nnU-Net v2 results folder"):
        DefaceLogic().finishDeface(process, volume)
    assert os.listdir(tmp_path / "work") == []  # its copy of the CT is deleted


def test_gui_path_finished_child_outputs_become_the_face_segment(tmp_path):
    """finishDeface reads the child's mask file (NIfTI, rounded geometry) back onto the volume's exact grid."""
    image = box_ct(RAS)
    volume = slicerbridge.volume_from_image(image, "childdone")
    mask = engine_mask_for(image)
    sitk.WriteImage(mask, str(tmp_path / "m.nii.gz"))
    (tmp_path / "s.json").write_text(json.dumps({"engine": "nnunet", "model": "x"}))

    class FinishedChild:  # TEST STAND-IN for a DefaceProcess that has exited successfully
        paths = {"mask": str(tmp_path / "m.nii.gz"), "sidecar": str(tmp_path / "s.json")}

        def wait(self):
            return 0

        def error_message(self):
            return None

    logic = DefaceLogic()
    segmentation = logic.finishDeface(FinishedChild(), volume)
    back = slicerbridge.mask_from_segmentation(segmentation, volume)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    assert logic.provenanceBySegmentation[segmentation.GetID()]["model"] == "x"
