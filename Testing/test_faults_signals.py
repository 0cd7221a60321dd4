"""A real `ctadeface deface` process killed (SIGKILL) or interrupted (SIGINT, SIGTERM) at each stage of a case.

After each: the input's bytes are unchanged; no file is under a final name unless the case is complete
(sidecar present and both outputs match the sha256 it records); an interrupted run says only what is
true; a rerun completes. Stages are found from the process itself: the `-v` log line each stage
prints, the model checkpoint open among its file descriptors, the staging folder appearing.
"""

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import SimpleITK as sitk

from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom
from helpers import BOX, cli_command, ctadeface, sha256
from helpers import cli_environment as environment

TMP = ".ctadeface-tmp-"


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("scan") / "head.nii.gz")
    sitk.WriteImage(make_phantom(PhantomSpec.random(8201, size="small")).image, path, useCompression=True)
    return path


class Run:
    """A `ctadeface -v deface` child whose stderr lines are collected as they come."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            cli_command("-v", "deface", *args),
            env=environment(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_until(self, condition, what, timeout=600):
        deadline = time.time() + timeout
        while not condition():
            assert self.process.poll() is None, f"the run ended before {what}:\n" + "\n".join(self.lines[-20:])
            assert time.time() < deadline, f"no {what} within {timeout} s"
            time.sleep(0.005)

    def logged(self, text):
        return lambda: any(text in line for line in self.lines)

    def has_open(self, name):
        def check():
            folder = f"/proc/{self.process.pid}/fd"
            try:
                return any(os.readlink(os.path.join(folder, fd)).endswith(name) for fd in os.listdir(folder))
            except OSError:
                return False

        return check

    def finish(self):
        self.process.wait(timeout=600)
        self.reader.join(timeout=10)
        return self.process.returncode, "\n".join(self.lines)


def staging(out):
    return lambda: os.path.isdir(out) and any(n.startswith(TMP) for n in os.listdir(out))


def assert_no_incomplete_outputs(out, name):
    """A file under a final name only as part of a complete case whose outputs verify."""
    finals = [os.path.join(out, f"{name}_defaced.nii.gz"), os.path.join(out, f"{name}_facemask.nii.gz")]
    sidecar_path = os.path.join(out, f"{name}_deface.json")
    if os.path.exists(sidecar_path):
        sidecar = json.load(open(sidecar_path))
        for key, path in zip(("defaced", "mask"), finals):
            assert sha256(path) == sidecar["outputs_sha256"][key]
    else:
        assert not [p for p in finals if os.path.exists(p)]


def reach_stage(run, stage, out):
    if stage == "model-loading":
        # The nnU-Net model loads on the first prediction: right after this line, long before it is ready.
        run.wait_until(run.logged("finding the face"), "the prediction step")
        time.sleep(0.5)
    elif stage == "predicting":
        # The checkpoint is read while the model loads; once it is closed again, the network is running.
        run.wait_until(run.has_open("checkpoint_final.pth"), "the checkpoint being read")
        run.wait_until(lambda: not run.has_open("checkpoint_final.pth")(), "the checkpoint being closed")
        time.sleep(1.0)
        assert not staging(out)(), "the prediction ended before the signal: the stage was not reached"
    else:
        run.wait_until(staging(out), "the staging folder")


def interrupt_and_check(scan, tmp_path, stage, signum, model_args):
    out = str(tmp_path / "out")
    digest = sha256(scan)
    run = Run(scan, "-o", out, "--no-progress", *model_args)
    reach_stage(run, stage, out)
    run.process.send_signal(signum)
    returncode, stderr = run.finish()
    assert sha256(scan) == digest
    assert_no_incomplete_outputs(out, "head")
    if signum == signal.SIGKILL:
        assert returncode == -signal.SIGKILL
    else:
        assert returncode == 128 + signum, stderr
        assert "Traceback" not in stderr, stderr
        last = [line for line in stderr.splitlines() if line.startswith("ctadeface: ")][-1]
        # What it says is what is on disk: nothing of the case, and no staging folder, is left.
        assert last == f"ctadeface: interrupted while defacing {scan}; nothing of it was left in {out}.", last
        assert not os.path.exists(out) or os.listdir(out) == []
    # The rerun is not blocked by anything the killed run left, and removes its temporary files.
    # (The box engine: what is tested is the output folder, not the model, and it keeps reruns fast.)
    rerun = ctadeface("deface", scan, "-o", out, *BOX)
    assert rerun.returncode == 0 and "1 defaced" in rerun.stdout, rerun.stdout + rerun.stderr
    assert_no_incomplete_outputs(out, "head")
    assert sorted(os.listdir(out)) == ["head_deface.json", "head_defaced.nii.gz", "head_facemask.nii.gz"]
    assert sha256(scan) == digest


# SIGTERM takes SIGINT's path (the same handler): the quick tier runs kill -9 and SIGINT, `make test` all three
@pytest.mark.parametrize(
    "signum",
    [signal.SIGKILL, signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["kill-9", "int", "term"],
)
def test_signal_while_writing(scan, tmp_path, signum):
    interrupt_and_check(scan, tmp_path, "writing", signum, BOX)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["model-loading", "predicting"])
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "int"])
def test_signal_while_the_model_works(scan, tmp_path, synthetic_model, stage, signum):
    interrupt_and_check(scan, tmp_path, stage, signum, ("--model", synthetic_model, "--device", "cpu"))


def test_interrupt_during_an_overwrite_keeps_no_mix_of_old_and_new(scan, tmp_path):
    """An --overwrite run killed while writing: the old case is either still whole or gone, never mixed."""
    out = str(tmp_path / "out")
    assert ctadeface("deface", scan, "-o", out, *BOX, "--fill", "air").returncode == 0
    run = Run(scan, "-o", out, "--no-progress", "--overwrite", *BOX)
    reach_stage(run, "writing", out)
    run.process.send_signal(signal.SIGKILL)
    run.finish()
    assert_no_incomplete_outputs(out, "head")
    rerun = ctadeface("deface", scan, "-o", out, *BOX, "--overwrite")
    assert rerun.returncode == 0
    assert json.load(open(os.path.join(out, "head_deface.json")))["fill_policy"] == "p10"
    assert_no_incomplete_outputs(out, "head")
    assert not [n for n in os.listdir(out) if n.startswith(TMP)]
