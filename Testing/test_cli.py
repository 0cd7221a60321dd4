"""The `ctadeface` command as a user runs it: real subprocesses, real files, the synthetic test model."""

import json
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from builders import flat_image, image_from_array, mri_like
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom, write_phantom
from helpers import ctadeface, sha256
from helpers import one_sentence as assert_one_clear_sentence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDECAR_KEYS = {
    "engine",
    "model",
    "model_sha256",
    "device",
    "fill_value",
    "mask_volume_ml",
    "timings_s",
    "versions",
    "settings",
    "input",
    "outputs",
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    write_phantom(make_phantom(PhantomSpec.random(8001, size="small")), str(folder), "good")
    return folder


def test_help_explains_every_command():
    main = ctadeface("--help")
    assert main.returncode == 0
    for command in ("deface", "models", "phantom", "demo", "eval"):
        assert command in main.stdout
        sub = ctadeface(command, "--help")
        assert sub.returncode == 0 and len(sub.stdout) > 300, command
    for action in ("list", "install", "verify", "path", "remove"):
        assert ctadeface("models", action, "--help").returncode == 0
    assert "10th percentile" in " ".join(ctadeface("deface", "--help").stdout.split())


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_batch_defaces_good_cases_reports_bad_ones_and_never_touches_inputs(cases, tmp_path, synthetic_model):
    inputs = tmp_path / "in"
    shutil.copytree(cases, inputs)
    flat = flat_image(40)
    sitk.WriteImage(flat, str(inputs / "flat.nii.gz"))
    (inputs / "broken.nrrd").write_text("not an image")
    mri = mri_like(900, seed=1)
    sitk.WriteImage(mri, str(inputs / "mri.mha"))
    before = {name: sha256(inputs / name) for name in os.listdir(inputs)}
    out = tmp_path / "out"
    result = ctadeface(
        "deface",
        str(inputs),
        str(inputs / "missing.nii.gz"),
        "-o",
        str(out),
        "--model",
        synthetic_model,
        "--device",
        "cpu",
        "--json",
        "--no-progress",
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    report = {os.path.basename(r["input"]): r for r in json.loads(result.stdout)}
    assert report["good.nii.gz"]["status"] == "done"
    assert "not a 3D volume" in report["flat.nii.gz"]["message"]
    assert "could not be read" in report["broken.nrrd"]["message"]
    assert "does not look like a CT" in report["mri.mha"]["message"]
    assert "does not exist" in report["missing.nii.gz"]["message"]
    assert all(r["status"] == "failed" for n, r in report.items() if n != "good.nii.gz" and "_gt" not in n)
    # the *_gt masks beside the phantom are not taken as inputs: they are listed as skipped, with the reason
    ground_truth = [r for n, r in report.items() if n.endswith("_gt.nii.gz")]
    assert ground_truth and all(r["status"] == "skipped" and "ground-truth" in r["message"] for r in ground_truth)
    assert {name: sha256(inputs / name) for name in os.listdir(inputs)} == before

    image = sitk.ReadImage(str(inputs / "good.nii.gz"))
    defaced = sitk.ReadImage(str(out / "good_defaced.nii.gz"))
    mask = sitk.ReadImage(str(out / "good_facemask.nii.gz"))
    for output in (defaced, mask):
        assert output.GetSize() == image.GetSize() and output.GetSpacing() == image.GetSpacing()
        assert output.GetOrigin() == image.GetOrigin() and output.GetDirection() == image.GetDirection()
    assert defaced.GetPixelID() == image.GetPixelID()
    a, b, m = (sitk.GetArrayFromImage(x) for x in (image, defaced, mask))
    assert np.array_equal(a[m == 0], b[m == 0]) and np.any(a[m == 1] != b[m == 1])
    sidecar = json.load(open(out / "good_deface.json"))
    assert SIDECAR_KEYS <= set(sidecar)
    assert sidecar["engine"] == "nnunet" and sidecar["model"] == synthetic_model and sidecar["device"] == "cpu"
    assert sidecar["input"]["sha256"] == before["good.nii.gz"]
    assert {"load", "predict", "apply", "write", "total"} <= set(sidecar["timings_s"])
    assert 100 < sidecar["mask_volume_ml"] < 600


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_existing_outputs_are_skipped_unless_overwrite(cases, tmp_path, synthetic_model):
    out = tmp_path / "out"
    args = (
        "deface",
        str(cases / "good.nii.gz"),
        "-o",
        str(out),
        "--model",
        synthetic_model,
        "--device",
        "cpu",
        "--fill",
        "air",
        "--no-progress",
    )
    assert ctadeface(*args).returncode == 0
    stamp = os.stat(out / "good_defaced.nii.gz").st_mtime_ns
    again = ctadeface(*args)
    assert again.returncode == 0 and "skipped" in again.stdout
    assert os.stat(out / "good_defaced.nii.gz").st_mtime_ns == stamp
    redo = ctadeface(*args, "--overwrite")
    assert redo.returncode == 0 and "1 defaced" in redo.stdout
    assert json.load(open(out / "good_deface.json"))["fill_value"] == -1024


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_outputs_can_go_next_to_the_input_without_replacing_it(cases, tmp_path, synthetic_model):
    folder = tmp_path / "same"
    folder.mkdir()
    shutil.copy(cases / "good.nii.gz", folder / "good.nii.gz")
    digest = sha256(folder / "good.nii.gz")
    result = ctadeface(
        "deface",
        str(folder / "good.nii.gz"),
        "-o",
        str(folder),
        "--model",
        synthetic_model,
        "--device",
        "cpu",
        "--format",
        ".nrrd",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert sha256(folder / "good.nii.gz") == digest
    assert (folder / "good_defaced.nrrd").exists() and (folder / "good_facemask.nrrd").exists()


def test_model_not_installed_says_how_to_install(cases, tmp_path):
    result = ctadeface(
        "deface",
        str(cases / "good.nii.gz"),
        "-o",
        str(tmp_path),
        "--model",
        "cta-deface",
        env={"CTADEFACE_HOME": str(tmp_path / "empty-cache")},
    )
    assert result.returncode == 2
    line = assert_one_clear_sentence(result)
    assert "not installed" in line and "ctadeface models install cta-deface" in line
    assert not os.listdir(tmp_path / "empty-cache") if (tmp_path / "empty-cache").exists() else True


def test_checksum_mismatch_names_the_file(cases, tmp_path):
    env = {"CTADEFACE_HOME": str(tmp_path / "cache")}
    assert ctadeface("models", "install", "synthetic-test", "--no-progress", env=env).returncode == 0
    path = ctadeface("models", "path", "synthetic-test", env=env).stdout.strip()
    checkpoint = os.path.join(path, "fold_all", "checkpoint_final.pth")
    data = bytearray(open(checkpoint, "rb").read())
    data[-100] ^= 0xFF
    open(checkpoint, "wb").write(bytes(data))
    for result in (
        ctadeface("models", "verify", "synthetic-test", env=env),
        ctadeface(
            "deface", str(cases / "good.nii.gz"), "-o", str(tmp_path / "o"), "--model", "synthetic-test", env=env
        ),
    ):
        assert result.returncode == 2
        assert "checkpoint_final.pth" in assert_one_clear_sentence(result)
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_empty_mask_is_an_error_and_writes_nothing(tmp_path, synthetic_model):
    # A CT of the empty scanner: air and the patient table, no head.
    array = np.full((50, 60, 60), -1000, np.int16)
    array[:, 50:54, :] = 300
    table = image_from_array(array, spacing=(2.0, 2.0, 2.0))
    sitk.WriteImage(table, str(tmp_path / "block.nii.gz"))
    result = ctadeface(
        "deface",
        str(tmp_path / "block.nii.gz"),
        "-o",
        str(tmp_path / "o"),
        "--model",
        synthetic_model,
        "--device",
        "cpu",
        "--no-progress",
    )
    assert result.returncode == 1
    assert "No face was found" in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


def test_bad_options_are_one_sentence(tmp_path):
    result = ctadeface("deface", "x.nii.gz", "-o", str(tmp_path), "--fill", "purple")
    assert result.returncode == 2 and "--fill must be" in assert_one_clear_sentence(result)
    unknown = ctadeface("deface", "x.nii.gz", "-o", str(tmp_path), "--engine", "magic")
    assert unknown.returncode == 2 and "Unknown engine" in assert_one_clear_sentence(unknown)
    listing = ctadeface("models", "list")
    assert listing.returncode == 0 and "cta-deface" in listing.stdout and "synthetic-test" in listing.stdout


@pytest.mark.slow
def test_check_marks_pass_or_review_in_sidecar_and_summary(cases, tmp_path, synthetic_model):
    """--check renders the result and runs MTCNN; the verdict follows the probability and the threshold,
    and travels to both the sidecar and the batch summary."""
    out = tmp_path / "out"
    result = ctadeface(
        "deface",
        str(cases / "good.nii.gz"),
        "-o",
        str(out),
        "--model",
        synthetic_model,
        "--device",
        "cpu",
        "--check",
        "--no-progress",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)[0]
    sidecar = json.load(open(out / "good_deface.json"))
    verdict = sidecar["reidentification_check"]
    assert verdict["check"] in ("PASS", "REVIEW") and verdict["threshold"] == 0.9
    assert record["check"] == verdict["check"] and record["face_probability"] == verdict["face_probability"]
    expected = "REVIEW" if verdict["face_probability"] > 0.9 else "PASS"
    assert verdict["check"] == expected
    print("face probability after defacing:", verdict["face_probability"])
