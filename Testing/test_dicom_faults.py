"""A DICOM study written to a full disk, or killed mid-write, leaves no study under its final name and the input
untouched; the next run on a good disk writes the whole study (real tmpfs mounts, real processes, kill -9)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from helpers import DICOM_BOX as BOX
from helpers import cli_command, cli_environment, ctadeface, mounted_tmpfs, tree_hashes


@pytest.fixture
def study(phantom_dicom_study):
    return phantom_dicom_study[0]


def finished_studies(out):
    """Study folders and reports under their final names (the staging folder starts with a dot)."""
    return sorted(n for n in os.listdir(out) if not n.startswith(".")) if os.path.isdir(out) else []


def test_full_disk_fails_the_study_in_one_sentence_and_leaves_no_study(study, tmp_path):
    before = tree_hashes(study)
    with mounted_tmpfs(tmp_path / "small", "size=256k") as disk:
        out = disk / "out"
        result = ctadeface("deface", str(study), "-o", str(out), "--deid-key", str(tmp_path / "key"), *BOX)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
        assert len(failed) == 1 and "the disk is full" in failed[0], result.stdout
        assert str(out) in failed[0] and ".ctadeface-tmp" not in failed[0], failed  # the folder, not a temporary
        (name,) = re.findall(r"study (2\.25\.\d+):", failed[0])  # the shareable name, never the original UID
        assert finished_studies(out) == []
        assert not out.exists() or os.listdir(out) == []  # no staging folder left behind either
    assert tree_hashes(study) == before


@pytest.mark.slow  # two runs and a kill
def test_kill_mid_write_leaves_no_study_and_the_next_run_writes_it_whole(study, tmp_path):
    before = tree_hashes(study)
    out, key = tmp_path / "out", tmp_path / "key"
    command = cli_command("deface", study, "-o", out, "--deid-key", key, *BOX)
    child = subprocess.Popen(command, env=cli_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill once the staging folder holds written slices: the study is being written, not yet renamed into place.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        staged = [
            os.path.join(folder, name)
            for folder, _, names in os.walk(out)
            for name in names
            if name.endswith(".dcm") or name.startswith("0")
        ]
        if staged:
            break
        time.sleep(0.005)
    if child.poll() is not None:
        pytest.skip("the run finished before a slice was seen in staging (machine too fast to catch it)")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert finished_studies(out) == []

    rerun = ctadeface("deface", str(study), "-o", str(out), "--deid-key", str(key), *BOX)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    done = finished_studies(out)
    assert len(done) == 2 and done[1] == done[0] + "_deface.json", done
    assert sorted(os.listdir(out / done[0])) == ["001_CT", "002_CT", "003_CT", "004_CT"]
    assert not [n for n in os.listdir(out) if n.startswith(".")], "the killed run's staging is cleaned up"
    assert tree_hashes(study) == before
