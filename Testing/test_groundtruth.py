"""Pure-core helpers of the Slicer module: ground-truth dataset growth and first-use dependency plans."""

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from CTADefaceLib import groundtruth
from CTADefaceLib.errors import DefaceError
from CTADefaceLib.slicer import installer as dependencies


def _pair(value=1):
    image = sitk.GetImageFromArray(np.full((4, 5, 6), -1000, np.int16))
    image.SetSpacing((0.5, 0.6, 1.5))
    label_array = np.zeros((4, 5, 6), np.uint8)
    label_array[1:3, 1:3, 1:3] = value
    label = sitk.GetImageFromArray(label_array)
    label.CopyInformation(image)
    return image, label


def test_cases_continue_numbering_and_never_overwrite(tmp_path):
    image, label = _pair()
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "imagesTr").mkdir()
    sitk.WriteImage(label, str(tmp_path / "labelsTr" / "DEFACE_0007.nii.gz"))  # an earlier case, kept
    assert groundtruth.add_case(str(tmp_path), image, label) == "DEFACE_0008"
    assert groundtruth.add_case(str(tmp_path), image, label) == "DEFACE_0009"
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["numTraining"] == 3
    assert not [n for n in os.listdir(tmp_path / "imagesTr") if n.startswith(".tmp")]


def test_label_must_be_binary_on_the_grid_and_not_empty(tmp_path):
    image, label = _pair(value=2)
    with pytest.raises(DefaceError, match="only 0 and 1"):
        groundtruth.add_case(str(tmp_path), image, label)
    image, label = _pair()
    label.SetOrigin((1.0, 0.0, 0.0))
    with pytest.raises(DefaceError, match="grid"):
        groundtruth.add_case(str(tmp_path), image, label)
    image, label = _pair(value=0)
    with pytest.raises(DefaceError, match="empty"):
        groundtruth.add_case(str(tmp_path), image, label)
    assert not (tmp_path / "dataset.json").exists()


def test_other_dataset_is_refused(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tumour": 1}}))
    image, label = _pair()
    with pytest.raises(DefaceError, match="different dataset"):
        groundtruth.add_case(str(tmp_path), image, label)


def test_missing_packages_become_selective_pip_commands():
    """(check() against real Pythons: test_slicer_installer.py.)"""
    report = dependencies.DependencyReport(missing_torch=True, missing_nnunet=["nnunetv2>=2.5,<2.9", "acvl-utils"])
    assert "PyTorch" in report.summary() and "nnU-Net" in report.summary()
    commands = dependencies.pip_commands(report, "/slicer/python", "/tmp/c.txt")
    assert commands == [
        ["/slicer/python", "-m", "pip", "install", "--no-deps", "nnunetv2>=2.5,<2.9"],
        ["/slicer/python", "-m", "pip", "install", "--prefer-binary", "-c", "/tmp/c.txt", "acvl-utils"],
    ]
    flat = " ".join(" ".join(c) for c in commands)
    for owned in ("torch", "SimpleITK", "numpy", "requests"):
        assert f" {owned}" not in flat
    assert dependencies.check("box").complete  # this environment has the core and tqdm


def test_owned_constraints_pin_what_is_installed():
    pins = dependencies.owned_constraints()
    assert any(p.startswith("numpy==") for p in pins) and any(p.startswith("SimpleITK==") for p in pins)
