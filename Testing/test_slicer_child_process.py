"""The Slicer module's child process: cancel ends the whole tree, the temporary CT copy is deleted, the
allocator settings follow the device, and the real model child reports progress while it runs."""

import os
import sys
import textwrap
import time

import pytest

from CTADefaceLib import launcher
from CTADefaceLib.pipeline import DefaceSettings
from CTADefaceLib.slicer.child_process import DefaceProcess, build_deface_command, kill_tree_command, parse_progress
from helpers import process_alive

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups and /proc are POSIX")


def _launcher_script(tmp_path, child_ignores_term: bool) -> str:
    """Like Slicer's PythonSlicer (a CTKAppLauncher): starts the real Python as its own child, passes the
    output through (the child inherits the pipe) and waits for it."""
    child = tmp_path / "python_real.py"
    child.write_text(
        textwrap.dedent(f"""
        import os, signal, sys, time
        {"signal.signal(signal.SIGTERM, signal.SIG_IGN)" if child_ignores_term else ""}
        open({str(tmp_path / "child.pid")!r}, "w").write(str(os.getpid()))
        print(" 10%|# tile 1/10", flush=True)
        time.sleep(120)
    """)
    )
    parent = tmp_path / "python_slicer.py"
    parent.write_text(
        textwrap.dedent(f"""
        import subprocess, sys
        sys.exit(subprocess.call([sys.executable, {str(child)!r}]))
    """)
    )
    return str(parent)


@posix_only
@pytest.mark.parametrize("child_ignores_term", [False, True])
def test_cancel_ends_a_launcher_and_the_python_it_started(tmp_path, child_ignores_term):
    process = DefaceProcess([sys.executable, _launcher_script(tmp_path, child_ignores_term)]).start()
    deadline = time.time() + 20
    while process.progress == 0 and time.time() < deadline:
        process.poll()
        time.sleep(0.05)
    assert process.progress == 0.10  # the output of the launcher's child came through
    child = int((tmp_path / "child.pid").read_text())
    assert process_alive(child) and child != process._process.pid
    started = time.time()
    process.cancel(grace_s=1)
    deadline = time.time() + 5
    while (process_alive(child) or not process.finished) and time.time() < deadline:
        process.poll()
        time.sleep(0.05)
    assert not process_alive(child), "the launcher's child (python-real) still runs"
    assert process.finished, "the output pipe did not close"
    assert time.time() - started < 6
    assert process.error_message() == "Defacing was cancelled."


def test_cleanups_run_once_on_cancel(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "input.nii.gz").write_bytes(b"patient data")
    calls = []
    process = DefaceProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    process.add_cleanup(lambda: calls.append(1) or __import__("shutil").rmtree(folder))
    process.start()
    process.cancel(grace_s=1)
    process.cleanup()
    assert calls == [1] and not folder.exists()


def test_windows_tree_kill_command():
    assert kill_tree_command(1234) == ["taskkill", "/F", "/T", "/PID", "1234"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator settings are for Linux")
def test_allocator_settings_follow_the_requested_device(monkeypatch):
    def child_env(device):
        argv = build_deface_command("in.nii.gz", "out", DefaceSettings(device=device))
        return DefaceProcess(argv, env={"PATH": os.environ["PATH"]}).env

    assert "MALLOC_MMAP_MAX_" in child_env("cpu")
    assert "MALLOC_MMAP_MAX_" not in child_env("cuda")
    assert "MALLOC_MMAP_MAX_" not in child_env("mps")
    # auto: CUDA when an NVIDIA driver is loaded (the probe reads /proc; here we set what it answers)
    monkeypatch.setattr(launcher, "cuda_driver_present", lambda: True)
    assert "MALLOC_MMAP_MAX_" not in child_env("auto")
    monkeypatch.setattr(launcher, "cuda_driver_present", lambda: False)
    assert "MALLOC_MMAP_MAX_" in child_env("auto")


# ---------------------------------------------------------------------------- the real model child
def _sample_volume(name):
    pytest.importorskip("slicer")
    import SimpleITK as sitk

    from slicer_bootstrap import bootstrap

    bootstrap()
    from CTADefaceLib.slicer import bridge as slicerbridge

    image = sitk.ReadImage(os.path.join(REPO, "CTADeface", "CTADefaceLib", "data", "sample_phantom.nii.gz"))
    return slicerbridge.volume_from_image(image, name)


@pytest.mark.slow
def test_gui_run_with_the_synthetic_model_reports_progress_and_leaves_no_patient_data(tmp_path, synthetic_model):
    from CTADefaceLib.slicer.bridge import face_segment_id
    from CTADefaceLib.slicer.logic import DefaceLogic

    volume = _sample_volume("progresshead")
    logic = DefaceLogic()
    # the whole volume: two tiles on the small sample (the face region alone is one tile)
    settings = DefaceSettings(model=synthetic_model, device="cpu", roi=False)
    process = logic.startDeface(volume, settings, workFolder=str(tmp_path / "work"))
    assert os.path.isfile(os.path.join(process.workFolder, "input.nii.gz"))
    seen = []
    while not process.finished:
        process.poll()
        seen.append(process.progress)
        time.sleep(0.05)
    process.poll()
    fractions = [parse_progress(line) for line in process.lines if "%| tile" in line]
    assert len(fractions) >= 2, "\n".join(process.lines[-20:])
    assert fractions == sorted(fractions) and 0 < fractions[0] < 1  # the bar moves tile by tile
    assert seen == sorted(seen) and process.progress == 1.0
    segmentation = logic.finishDeface(process, volume)
    assert face_segment_id(segmentation)
    assert os.listdir(tmp_path / "work") == []  # the copy of the CT and the outputs are gone


@pytest.mark.slow
def test_cancelled_gui_run_deletes_its_copy_of_the_ct(tmp_path, synthetic_model):
    from CTADefaceLib.errors import DefaceError
    from CTADefaceLib.slicer.logic import DefaceLogic

    volume = _sample_volume("cancelhead")
    logic = DefaceLogic()
    process = logic.startDeface(
        volume, DefaceSettings(model=synthetic_model, device="cpu", mirroring=True), workFolder=str(tmp_path / "work")
    )
    time.sleep(1.0)
    assert process.running
    process.cancel(grace_s=2)
    assert os.listdir(tmp_path / "work") == []
    with pytest.raises(DefaceError, match="cancelled"):
        logic.finishDeface(process, volume)


def test_failed_gui_run_deletes_its_copy_of_the_ct(tmp_path):
    from CTADefaceLib.errors import DefaceError
    from CTADefaceLib.slicer.logic import DefaceLogic

    volume = _sample_volume("failhead")
    logic = DefaceLogic()
    process = logic.startDeface(
        volume, DefaceSettings(model=str(tmp_path / "absent-model"), device="cpu"), workFolder=str(tmp_path / "work")
    )
    with pytest.raises(DefaceError, match="absent-model"):
        logic.finishDeface(process, volume)
    assert os.listdir(tmp_path / "work") == []


def test_waiting_for_a_process_never_started_says_so(tmp_path):
    """mypy (the whole core checked): wait() on a DefaceProcess not yet started reached into None."""
    process = DefaceProcess([sys.executable, "-c", "pass"], cwd=str(tmp_path))
    with pytest.raises(RuntimeError, match="has not been started"):
        process.wait(1)
    assert process.start().wait(30) == 0
