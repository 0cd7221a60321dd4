"""Defects found by the hostile review (each test fails on the code as reviewed; see the defect named above it)."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from helpers import cli_environment, ctadeface

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "CTADeface", "CTADefaceLib", "data", "sample_phantom.nii.gz")
ENV = cli_environment()


# DEFECT R1: plans.json of an untrusted model (--model PATH, or `models install NAME --from ...`) can run any code:
# check_plans only checks that network_class_name *starts with* "dynamic_network_architectures.", but nnU-Net
# resolves it with pydoc.locate, which follows module attributes ("...unet.torch.hub.load") to any callable.
@pytest.mark.slow  # the quick tier has the same route: test_faults_models.py::...is_checked[network]
def test_r1_plans_json_cannot_reach_torch_hub_load(tmp_path, synthetic_model):
    from CTADefaceLib.models.install import installed_results_folder

    evil = tmp_path / "evil"
    shutil.copytree(installed_results_folder(synthetic_model)[0], evil)
    hub = evil / "hub"
    hub.mkdir()
    marker = tmp_path / "PWNED"
    (hub / "hubconf.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\ndef net(**kw):\n    raise SystemExit(0)\n"
    )
    plans = json.loads((evil / "plans.json").read_text())
    for config in plans["configurations"].values():
        if isinstance(config.get("architecture"), dict):
            config["architecture"] = {
                "network_class_name": "dynamic_network_architectures.architectures.unet.torch.hub.load",
                "arch_kwargs": {"repo_or_dir": str(hub), "model": "net", "source": "local", "trust_repo": True},
                "_kw_requires_import": [],
            }
    (evil / "plans.json").write_text(json.dumps(plans))
    ctadeface("deface", SAMPLE, "-o", str(tmp_path / "out"), "--model", str(evil), "--no-progress")
    assert not marker.exists(), "code named by plans.json ran when the model loaded"


# DEFECT R2: the Slicer batch script (Scripts/deface_batch.py run_batch) has none of the pipeline's output-name
# rules: two inputs with the same file name in one batch -> with --overwrite the second patient's outputs silently
# replace the first's (both reported 'done'); without it the second is 'skipped: outputs exist' though never defaced.
def test_r2_batch_script_never_overwrites_another_patients_outputs(tmp_path):
    pytest.importorskip("slicer")
    for site in ("siteA", "siteB"):
        (tmp_path / site).mkdir()
        shutil.copy(SAMPLE, tmp_path / site / "scan.nii.gz")
    # make the two patients differ
    import SimpleITK as sitk

    b = sitk.ReadImage(str(tmp_path / "siteB" / "scan.nii.gz"))
    sitk.WriteImage(sitk.Flip(b, [True, False, False]), str(tmp_path / "siteB" / "scan.nii.gz"))
    runner = (
        "import runpy, sys\nsys.path.insert(0, sys.argv[1])\nfrom slicer_bootstrap import bootstrap\nbootstrap()\n"
        "import slicer\nslicer.app = object()\nslicer.util.exit = lambda code: sys.exit(code)\n"
        "sys.argv = sys.argv[2:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            runner,
            os.path.join(REPO, "Testing"),
            os.path.join(REPO, "CTADeface", "Scripts", "deface_batch.py"),
            "--",
            str(tmp_path / "siteA" / "scan.nii.gz"),
            str(tmp_path / "siteB" / "scan.nii.gz"),
            "-o",
            str(out),
            "--engine",
            "box",
            "--overwrite",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    reported_done = [line for line in done.stdout.splitlines() if line.startswith("done")]
    assert len(reported_done) < 2, "both patients reported defaced, but only one set of outputs exists:\n" + done.stdout


# DEFECT R3: the sidecar's fill_value is not the value written. --fill 100000 on an Int16 CT writes 32767 (and 3.5
# writes 4), while the sidecar says 100000.0 / 3.5 (deface.apply_mask / pipeline.deface_image provenance).
@pytest.mark.parametrize("fill", ["100000", "3.5"])
def test_r3_sidecar_fill_value_is_the_value_written(tmp_path, fill):
    import SimpleITK as sitk

    out = tmp_path / "out"
    done = ctadeface("deface", SAMPLE, "-o", str(out), "--engine", "box", "--no-progress", f"--fill={fill}")
    if done.returncode != 0:
        return  # refusing an out-of-range fill is a correct answer too
    defaced = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "sample_phantom_defaced.nii.gz")))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "sample_phantom_facemask.nii.gz"))) > 0
    sidecar = json.loads((out / "sample_phantom_deface.json").read_text())
    assert np.unique(defaced[mask]).tolist() == [sidecar["fill_value"]]


# DEFECT R4: a FIFO (or any special file) named like an image hangs the run forever, and SIGTERM cannot stop it
# (volume.read_image hands it to ITK, which blocks in open(); Python's SIGTERM handler never gets to run).
def test_r4_a_fifo_input_does_not_hang(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "b.nii.gz")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "CTADefaceLib.cli",
            "deface",
            str(folder),
            "-o",
            str(tmp_path / "out"),
            "--engine",
            "box",
            "--no-progress",
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
            stopped = "stopped by SIGTERM"
        except subprocess.TimeoutExpired:
            stopped = "not even SIGTERM stopped it"
        process.kill()
        process.wait()
        pytest.fail(f"a FIFO input hung the run for 60 s ({stopped})")


# DEFECT R5: an output name longer than the file system allows is reported as "the disk is full or the write
# failed", naming a hidden staging path (.ctadeface-tmp-...) instead of the output (volume.write_image_atomic).
def test_r5_name_too_long_is_not_reported_as_a_full_disk(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / ("a" * 240 + ".nii.gz"))
    done = ctadeface("deface", str(folder), "-o", str(tmp_path / "out"), "--engine", "box", "--no-progress")
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert failed and "disk is full" not in failed[0] and ".ctadeface-tmp-" not in failed[0], failed
