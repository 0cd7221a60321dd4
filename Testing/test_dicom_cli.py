"""`ctadeface deface` on DICOM studies, as a user runs it: real subprocesses, the real header de-identification."""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest

from dicom_study import PHI, build_phantom_study
from helpers import DICOM_BOX as BOX
from helpers import tree_hashes
from test_cli import assert_one_clear_sentence, ctadeface


@pytest.fixture
def study_folder(phantom_dicom_study):
    return phantom_dicom_study[0]


def test_a_dicom_study_becomes_defaced_deidentified_dicom(study_folder, tmp_path):
    before = tree_hashes(study_folder)
    out, key = tmp_path / "out", tmp_path / "keys" / "deid-key"
    result = ctadeface("deface", str(study_folder), "-o", str(out), "--deid-key", str(key), *BOX)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout and "README.txt: not a DICOM file" in result.stdout
    (folder,) = [n for n in os.listdir(out) if not n.endswith(".json")]
    assert sorted(os.listdir(out)) == [folder, folder + "_deface.json"]  # no mapping unless asked for
    assert folder.startswith("2.25.") and f"done     study {folder}" in result.stdout
    assert sorted(os.listdir(out / folder)) == ["001_CT", "002_CT", "003_CT", "004_CT"]
    for name in ("001_CT", "004_CT"):
        for file in sorted(os.listdir(out / folder / name)):
            raw = open(out / folder / name / file, "rb").read()
            assert raw[:128] == b"\0" * 128
            for value in PHI.values():
                for part in value.split("^"):
                    assert part.encode() not in raw, (file, part)
            ds = pydicom.dcmread(out / folder / name / file)
            assert ds.PatientIdentityRemoved == "YES" and ds.ImageType[0] == "DERIVED"
            assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    report = json.load(open(out / (folder + "_deface.json")))
    assert {s["series_number"]: s["fate"] for s in report["series"]} == {
        1: "defaced",
        2: "defaced",
        3: "defaced",
        4: "defaced",
        5: "left out",
        6: "left out",
        997: "left out",
    }
    assert tree_hashes(study_folder) == before


@pytest.mark.slow  # four runs of the command
def test_same_key_same_uids_other_key_other_uids_and_reruns_skip(study_folder, tmp_path):
    key = tmp_path / "k1"
    first = tmp_path / "one"
    assert ctadeface("deface", str(study_folder), "-o", str(first), "--deid-key", str(key), *BOX).returncode == 0
    again = ctadeface("deface", str(study_folder), "-o", str(first), "--deid-key", str(key), *BOX)
    assert again.returncode == 0 and "skipped  study" in again.stdout
    second = tmp_path / "two"
    assert ctadeface("deface", str(study_folder), "-o", str(second), "--deid-key", str(key), *BOX).returncode == 0
    other = tmp_path / "three"
    assert (
        ctadeface("deface", str(study_folder), "-o", str(other), "--deid-key", str(tmp_path / "k2"), *BOX).returncode
        == 0
    )

    def uids(out):
        (folder,) = [n for n in os.listdir(out) if not n.endswith(".json")]
        ds = pydicom.dcmread(os.path.join(out, folder, "002_CT", "0001.dcm"))
        return folder, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID

    assert uids(first) == uids(second)
    assert not set(uids(first)) & set(uids(other))
    # one frame of reference for every series of the study, as in the input
    (folder,) = [n for n in os.listdir(first) if not n.endswith(".json")]
    frames = {
        pydicom.dcmread(os.path.join(first, folder, s, "0001.dcm")).FrameOfReferenceUID
        for s in os.listdir(first / folder)
    }
    assert len(frames) == 1


def test_mapping_file_only_where_asked_and_never_inside_the_output(study_folder, tmp_path):
    out, key = tmp_path / "out", tmp_path / "key"
    inside = ctadeface(
        "deface",
        str(study_folder),
        "-o",
        str(out),
        "--deid-key",
        str(key),
        "--mapping-file",
        str(out / "map.json"),
        *BOX,
    )
    assert inside.returncode != 0
    assert "re-identifies" in assert_one_clear_sentence(inside)
    key_inside = ctadeface("deface", str(study_folder), "-o", str(out), "--deid-key", str(out / "k"), *BOX)
    assert key_inside.returncode != 0 and "key" in assert_one_clear_sentence(key_inside)
    mapping = tmp_path / "private" / "map.json"
    os.makedirs(mapping.parent)
    done = ctadeface(
        "deface", str(study_folder), "-o", str(out), "--deid-key", str(key), "--mapping-file", str(mapping), *BOX
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert mapping.exists() and os.path.getsize(mapping) > 0
    # the shared report says a key and a mapping were used, never where they are (a path can name the patient)
    for report in out.glob("*_deface.json"):
        text = report.read_text()
        assert str(mapping) not in text and str(key) not in text and str(tmp_path) not in text
    bad = ctadeface("deface", str(study_folder), "-o", str(out), "--deid-option", "no-such-option", *BOX)
    assert bad.returncode != 0
    assert_one_clear_sentence(bad)


def test_the_nifti_output_is_one_option_away(study_folder, tmp_path):
    single = study_folder / "a" / "thin"
    out = tmp_path / "nifti"
    result = ctadeface("deface", str(single), "-o", str(out), "--format", "nii.gz", *BOX)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "thin_defaced.nii.gz").exists()


@pytest.mark.slow
def test_synthetic_nnunet_model_defaces_every_series_of_a_study(tmp_path, synthetic_model):
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    phantom = make_phantom(PhantomSpec.random(8001, size="small"))
    root = tmp_path / "study"
    build_phantom_study(str(root), phantom.image, own_frame=False)
    out = tmp_path / "out"
    result = ctadeface(
        "deface",
        str(root),
        "-o",
        str(out),
        "--model",
        synthetic_model,
        "--device",
        "cpu",
        "--deid-key",
        str(tmp_path / "k"),
        "--no-progress",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (report_name,) = [n for n in os.listdir(out) if n.endswith(".json")]
    report = json.load(open(out / report_name))
    (mask,) = report["masks"]
    assert mask["source_series_number"] == 1 and mask["mask_volume_ml"] > 20
    defaced = [s for s in report["series"] if s["fate"] == "defaced"]
    assert sorted(s["series_number"] for s in defaced) == [1, 2, 3, 4]
    assert all(s["changed_pixels"] > 0 for s in defaced)
    assert report["deidentification"] and mask["engine"]["engine"] == "nnunet"
    assert np.isfinite(mask["fill_hu"])


@pytest.mark.slow  # a CLI start that imports torch and renders the check's small pictures
def test_check_runs_on_a_dicom_study_and_review_exits_3(tmp_path):
    """`--check` on DICOM input: the check runs on the mask source's defaced volume, its verdict is in the report
    (without the thresholds file's path) and in the summary, and REVIEW gives exit status 3 as for NIfTI."""
    pytest.importorskip("vtk")
    pytest.importorskip("facenet_pytorch")
    from builders import make_ct
    from dicom_study import write_series
    from test_eval_exit_status import THRESHOLDS

    study = tmp_path / "private-project" / "ball"
    write_series(make_ct(size=(64, 64, 64), spacing=(3.0, 3.0, 3.0)), str(study), "1.2.826.0.1.3680043.10.543.91", 1)
    thresholds = tmp_path / "private-project" / "t.json"
    thresholds.write_text(json.dumps(THRESHOLDS))
    out = tmp_path / "out"
    done = ctadeface(
        "deface", str(study), "-o", str(out), "--deid-key", str(tmp_path / "key"), *BOX, "--check", thresholds
    )
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("done")]
    assert "check REVIEW" in line and "1 to REVIEW" in done.stdout.splitlines()[-1], done.stdout
    assert "REVIEW: series 1: " in done.stdout and "Traceback" not in done.stderr
    (report_name,) = [n for n in os.listdir(out) if n.endswith(".json")]
    text = (out / report_name).read_text()
    (mask,) = json.loads(text)["masks"]
    assert mask["reidentification_check"]["check"] == "REVIEW" and mask["reidentification_check"]["reasons"]
    assert "private-project" not in text  # the thresholds file's path is not in the shared report
