"""The GUI's child-process runner: command building, progress parsing, real cancel, readable errors."""

import sys
import time

from CTADefaceLib.pipeline import DefaceSettings
from CTADefaceLib.slicer.child_process import DefaceProcess, build_deface_command, error_from_output, parse_progress
from helpers import process_alive


def test_command_reproduces_settings():
    """The child parses exactly these settings back (every field: test_settings.py)."""
    from CTADefaceLib.cli import build_parser
    from CTADefaceLib.commands.deface import settings_from_args

    settings = DefaceSettings(
        model="cta-deface",
        fill="air",
        device="cpu",
        mirroring=True,
        tile_step=1.0,
        margin_mm=2.0,
        output_format=".nrrd",
    )
    argv = build_deface_command("/in/a.nii.gz", "/out", settings, python="/py")
    assert argv[:6] == ["/py", "-m", "CTADefaceLib.cli", "deface", "/in/a.nii.gz", "-o"]
    assert argv[-1] == "--overwrite"
    assert settings_from_args(build_parser().parse_args(argv[3:])) == settings
    assert "--fill-holes" not in argv and "--largest-component" not in argv


def test_progress_and_error_parsing():
    assert parse_progress(" 42%|####      | 21/50 [00:03<00:04]") == 0.42
    assert parse_progress("loading model") is None
    assert (
        error_from_output(["x", "ctadeface: error: The model 'm' is not installed."], 2)
        == "The model 'm' is not installed."
    )
    assert (
        error_from_output(["FAILED   /a.nii.gz: The input file /a.nii.gz does not exist."], 1)
        == "The input file /a.nii.gz does not exist."
    )
    assert error_from_output(["ok"], 0) is None


def test_cancel_kills_a_running_process_and_its_children(tmp_path):
    # A long-running child that also starts a grandchild (as nnU-Net's worker processes would).
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); print(' 10%|#', flush=True); time.sleep(60)"
    )
    process = DefaceProcess([sys.executable, "-c", script]).start()
    deadline = time.time() + 20
    while process.progress == 0 and time.time() < deadline:
        process.poll()
        time.sleep(0.05)
    assert process.progress == 0.10 and process.running
    grandchild = int(pid_file.read_text())
    started = time.time()
    process.cancel(grace_s=2)
    assert not process.running and time.time() - started < 5
    assert process.returncode != 0
    assert process.error_message() == "Defacing was cancelled."
    deadline = time.time() + 5
    while process_alive(grandchild) and time.time() < deadline:
        time.sleep(0.05)
    assert not process_alive(grandchild)


def test_cli_user_error_arrives_as_one_sentence(tmp_path):
    """The real `ctadeface deface` in a child: an unusable model folder is a user error, not a traceback."""
    settings = DefaceSettings(model=str(tmp_path / "no-such-model-folder"), device="cpu")
    argv = build_deface_command(str(tmp_path / "missing.nii.gz"), str(tmp_path / "out"), settings)
    process = DefaceProcess(argv).start()
    code = process.wait(timeout=120)
    message = process.error_message()
    assert code == 2
    assert "no-such-model-folder" in message and "nnU-Net" in message
    assert "Traceback" not in "\n".join(process.lines)
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
