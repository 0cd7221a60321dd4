"""Fault injection for a batch and its cases: name collisions, other inputs' outputs, broken output folders,
full disks, memory and internal errors, interrupted runs' remains, strict sidecars, concurrent runs.

Real `ctadeface deface` subprocesses on real phantom CTs (the `box` engine: no model, fast), real
mounts for read-only and full file systems (skipped where mounting is not permitted).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import SimpleITK as sitk

from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom
from helpers import BOX, cli_command, ctadeface, mounted_tmpfs, one_sentence, sha256
from helpers import cli_environment as environment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def records(result):
    return {r["input"]: r for r in json.loads(result.stdout)}


def assert_complete_case(out, name, input_path):
    """The sidecar is there, names this input, and both outputs match the sha256 it records."""
    sidecar = json.load(open(os.path.join(out, f"{name}_deface.json")))
    assert sidecar["input"]["path"] == os.path.abspath(input_path)
    assert sidecar["input"]["sha256"] == sha256(input_path)
    for key in ("defaced", "mask"):
        assert sha256(sidecar["outputs"][key]) == sidecar["outputs_sha256"][key]
    return sidecar


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two different small head CTs as plain files: {"a": path, "b": path}."""
    folder = tmp_path_factory.mktemp("scans")
    paths = {}
    for key, seed in (("a", 8101), ("b", 8102)):
        paths[key] = str(folder / f"{key}.nii.gz")
        sitk.WriteImage(make_phantom(PhantomSpec.random(seed, size="small")).image, paths[key], useCompression=True)
    return paths


# ---------------------------------------------------------------------------- names and owners
def test_same_file_name_from_two_folders_is_refused_before_anything_runs(scans, tmp_path):
    for site, key in (("siteA", "a"), ("siteB", "b")):
        os.makedirs(tmp_path / site)
        shutil.copy(scans[key], tmp_path / site / "scan.nii.gz")
    out = tmp_path / "out"
    for inputs in (
        (tmp_path / "siteA" / "scan.nii.gz", tmp_path / "siteB" / "scan.nii.gz"),
        (tmp_path / "siteA", tmp_path / "siteB"),
    ):
        for extra in ((), ("--overwrite",)):
            result = ctadeface("deface", *inputs, "-o", out, *BOX, *extra)
            assert result.returncode == 2, result.stdout + result.stderr
            line = one_sentence(result)
            assert "siteA" in line and "siteB" in line and "separate output folders" in line
            assert not out.exists() or os.listdir(out) == []


def test_outputs_of_another_input_are_never_replaced_even_with_overwrite(scans, tmp_path):
    for site, key in (("siteA", "a"), ("siteB", "b")):
        os.makedirs(tmp_path / site)
        shutil.copy(scans[key], tmp_path / site / "scan.nii.gz")
    first, second = str(tmp_path / "siteA" / "scan.nii.gz"), str(tmp_path / "siteB" / "scan.nii.gz")
    out = tmp_path / "out"
    assert ctadeface("deface", first, "-o", out, *BOX).returncode == 0
    before = {name: sha256(out / name) for name in os.listdir(out)}
    for extra in ((), ("--overwrite",)):
        result = ctadeface("deface", second, "-o", out, *BOX, "--json", *extra)
        assert result.returncode == 1, result.stderr
        record = records(result)[second]
        assert record["status"] == "failed" and "another input" in record["message"] and first in record["message"]
        assert {name: sha256(out / name) for name in os.listdir(out)} == before
    # The same scan moved to another folder is still this case: its outputs exist.
    os.makedirs(tmp_path / "moved")
    shutil.move(first, tmp_path / "moved" / "scan.nii.gz")
    moved = ctadeface("deface", tmp_path / "moved" / "scan.nii.gz", "-o", out, *BOX)
    assert moved.returncode == 0 and "outputs exist" in moved.stdout


def test_a_file_under_the_sidecar_name_that_is_not_ours_is_never_replaced(scans, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_deface.json").write_text("my own notes, not JSON")
    for extra in ((), ("--overwrite",)):
        result = ctadeface("deface", scans["a"], "-o", out, *BOX, "--json", *extra)
        assert result.returncode == 1
        assert "is not a ctadeface sidecar" in records(result)[scans["a"]]["message"]
    assert os.listdir(out) == ["a_deface.json"]
    assert (out / "a_deface.json").read_text() == "my own notes, not JSON"


def test_changed_input_is_not_skipped_and_is_redone_with_overwrite(scans, tmp_path):
    case = tmp_path / "scan.nii.gz"
    shutil.copy(scans["a"], case)
    out = tmp_path / "out"
    assert ctadeface("deface", case, "-o", out, *BOX).returncode == 0
    shutil.copy(scans["b"], case)  # the scan was re-exported under the same name
    stale = ctadeface("deface", case, "-o", out, *BOX, "--json")
    assert stale.returncode == 1
    assert "has changed" in records(stale)[str(case)]["message"]
    redo = ctadeface("deface", case, "-o", out, *BOX, "--overwrite")
    assert redo.returncode == 0 and "1 defaced" in redo.stdout
    assert_complete_case(out, "scan", case)


def test_an_output_name_that_is_an_input_is_refused(scans, tmp_path):
    shutil.copy(scans["a"], tmp_path / "scan.nii.gz")
    shutil.copy(scans["b"], tmp_path / "scan_defaced.nii.gz")  # named explicitly, so taken as an input
    digest = sha256(tmp_path / "scan_defaced.nii.gz")
    result = ctadeface(
        "deface", tmp_path / "scan.nii.gz", tmp_path / "scan_defaced.nii.gz", "-o", tmp_path, *BOX, "--overwrite"
    )
    assert result.returncode == 2 and "would replace the input" in one_sentence(result)
    assert sha256(tmp_path / "scan_defaced.nii.gz") == digest


def test_excluded_files_in_a_folder_are_listed_as_skipped_with_the_reason(scans, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(scans["a"], folder / "scan.nii.gz")
    for name in ("scan_gt.nii.gz", "old_defaced.nii.gz", "old_facemask.nrrd"):
        shutil.copy(scans["b"], folder / name)
    result = ctadeface("deface", folder, "-o", tmp_path / "out", *BOX, "--json")
    assert result.returncode == 0, result.stderr
    report = {os.path.basename(k): v for k, v in records(result).items()}
    assert report["scan.nii.gz"]["status"] == "done"
    for name, reason in (
        ("scan_gt.nii.gz", "ground-truth"),
        ("old_defaced.nii.gz", "defaced output"),
        ("old_facemask.nrrd", "face-mask output"),
    ):
        assert report[name]["status"] == "skipped" and reason in report[name]["message"], report[name]
    text = ctadeface("deface", folder, "-o", tmp_path / "out", *BOX)
    assert "skipped  " + str(folder / "scan_gt.nii.gz") + ": excluded" in text.stdout
    assert "0 defaced, 4 skipped, 0 failed" in text.stdout


# ---------------------------------------------------------------------------- output folders and disks
def test_output_folder_that_is_a_file_is_one_sentence_before_the_model_loads(scans, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    # The model is not installed in this empty cache: the folder must be reported first, not the model.
    for output in (target, target / "sub"):
        result = ctadeface("deface", scans["a"], "-o", output, env={"CTADEFACE_HOME": str(tmp_path / "cache")})
        assert result.returncode == 2
        line = one_sentence(result)
        assert "output folder" in line and "not installed" not in line, line
    assert target.read_text() == "not a folder"


def test_read_only_output_folder_is_one_sentence_before_the_model_loads(scans, tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m"):
        env = {"CTADEFACE_HOME": str(tmp_path / "cache")}
        existing = ctadeface("deface", scans["a"], "-o", tmp_path / "ro", env=env)
        assert existing.returncode == 2 and "is not writable (Read-only file system)" in one_sentence(existing)
        missing = ctadeface("deface", scans["a"], "-o", tmp_path / "ro" / "new", env=env)
        assert missing.returncode == 2 and "cannot be created (Read-only file system)" in one_sentence(missing)


def test_full_disk_fails_each_case_in_one_sentence_and_leaves_nothing(scans, tmp_path):
    inputs = [scans["a"], scans["b"]]
    digests = [sha256(p) for p in inputs]
    with mounted_tmpfs(tmp_path / "full", "size=1m") as out:
        result = ctadeface("deface", *inputs, "-o", out, *BOX, "--json")
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        report = records(result)
        assert [report[p]["status"] for p in inputs] == ["failed", "failed"]
        assert all("No space left on device" in report[p]["message"] for p in inputs), report
        assert os.listdir(out) == []  # no staging folder, no image under a final name
    assert [sha256(p) for p in inputs] == digests


def test_memory_error_in_one_case_is_one_sentence_and_the_next_case_runs(scans, tmp_path):
    """A real MemoryError: the process's address space is capped so that a large CT cannot be defaced
    while a small one can; the large one comes first, the small one must still run."""
    import resource

    big = sitk.Image([560, 560, 400], sitk.sitkInt16)  # 250 MB of voxels: air with a bone block
    big = big - 1000
    big[200:360, 200:360, 100:300] = 700
    big_path = tmp_path / "big.nii.gz"
    sitk.WriteImage(big, str(big_path), useCompression=True)

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # Enough for the interpreter, its libraries and a small case (one BLAS thread keeps the address
    # space small and the same on any machine), far too little for the big one (about 2 GB here).
    limit = 1_400 * 2**20
    result = ctadeface(
        "deface",
        big_path,
        scans["a"],
        "-o",
        tmp_path / "out",
        *BOX,
        "--json",
        env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        preexec_fn=cap_memory,
    )
    try:
        small_done = records(result)[scans["a"]]["status"] == "done"
    except (ValueError, KeyError):
        small_done = False
    if not small_done:
        pytest.skip(f"even a small case does not fit under the cap on this machine: {result.stderr[-300:]}")
    assert result.returncode == 1, result.stderr
    report = records(result)
    assert report[str(big_path)]["status"] == "failed"
    assert "not enough memory" in report[str(big_path)]["message"], report
    assert not os.path.exists(tmp_path / "out" / "big_defaced.nii.gz")
    assert "Traceback" not in result.stderr


def test_internal_error_in_one_case_is_reported_as_a_bug_and_the_rest_run(scans, tmp_path, caplog, capsys):
    """An engine plug-in with a bug (a mask off the image's grid for one scan) must not stop the batch."""
    from CTADefaceLib.commands.deface import print_summary
    from CTADefaceLib.engines.box import BoxEngine
    from CTADefaceLib.pipeline import DefaceSettings, deface_batch

    size_of_a = sitk.ReadImage(scans["a"]).GetSize()

    class OffGridForOneScan(BoxEngine):
        def predict(self, image):
            mask = super().predict(image)
            return mask[:-1, :, :] if sorted(image.GetSize()) == sorted(size_of_a) else mask

    assert sitk.ReadImage(scans["b"]).GetSize() != size_of_a
    report = deface_batch(
        [scans["a"], scans["b"]],
        str(tmp_path / "out"),
        DefaceSettings(engine="box"),
        engine=OffGridForOneScan(),
        progress=False,
    )
    by_input = {r["input"]: r for r in report}
    assert by_input[scans["a"]]["status"] == "failed"
    assert by_input[scans["a"]]["message"].startswith("internal error (")
    assert "this is a bug" in by_input[scans["a"]]["message"]
    assert by_input[scans["b"]]["status"] == "done"
    logged = caplog.text
    assert "This is a bug in ctadeface" in logged and "Traceback (most recent call last)" in logged
    assert print_summary(report) == 1
    assert "1 defaced, 0 skipped, 1 failed" in capsys.readouterr().out


# ---------------------------------------------------------------------------- sidecars
def test_nan_in_the_sidecar_is_one_sentence_and_nothing_is_left(scans, tmp_path):
    from CTADefaceLib.errors import DefaceError, OutputError
    from CTADefaceLib.pipeline import DefaceSettings, deface_file, write_json_atomic

    out = tmp_path / "out"
    out.mkdir()
    # The sidecar writer itself refuses what JSON cannot hold, whatever put it there.
    with pytest.raises(OutputError, match="not a finite number"):
        write_json_atomic({"fill_value": float("nan")}, str(out / "a_deface.json"))
    assert os.listdir(out) == []
    # A NaN fill is stopped before it gets that far: on a float CT, where it could be stored.
    floating = tmp_path / "float.nrrd"
    sitk.WriteImage(sitk.Cast(sitk.ReadImage(scans["a"]), sitk.sitkFloat32), str(floating))
    with pytest.raises(DefaceError, match="finite"):
        deface_file(str(floating), str(out), DefaceSettings(engine="box", fill=float("nan")))
    assert os.listdir(out) == []
    result = ctadeface("deface", floating, "-o", out, *BOX, "--fill", "nan")
    assert result.returncode == 2 and "finite number" in one_sentence(result)


def test_sidecar_is_strict_json_with_the_users_permissions(scans, tmp_path):
    out = tmp_path / "out"
    result = ctadeface("deface", scans["a"], "-o", out, *BOX, preexec_fn=lambda: os.umask(0o027))
    assert result.returncode == 0, result.stderr
    for name in ("a_deface.json", "a_defaced.nii.gz", "a_facemask.nii.gz"):
        assert oct(os.stat(out / name).st_mode & 0o777) == oct(0o640), name
    json.loads((out / "a_deface.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the sidecar"))


# ---------------------------------------------------------------------------- remains of interrupted runs
def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_rerun_finishes_an_interrupted_case_and_removes_only_dead_runs_temporaries(scans, tmp_path):
    out = tmp_path / "out"
    assert ctadeface("deface", scans["a"], "-o", out, *BOX).returncode == 0
    # What a run killed between its renames and its sidecar leaves: both images, no sidecar.
    (out / "a_deface.json").unlink()
    gone = dead_pid()
    (out / f".ctadeface-tmp-{gone}-stage").mkdir()
    (out / f".ctadeface-tmp-{gone}-stage" / "a_defaced.nii.gz").write_bytes(b"half")
    (out / f".ctadeface-tmp-{gone}-x.json").write_text("{")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (out / f".ctadeface-tmp-{live.pid}-busy").mkdir()
        (out / "notes.txt").write_text("mine")
        (out / ".tmp-other-tool").write_text("theirs")
        result = ctadeface("deface", scans["a"], "-o", out, *BOX)
        assert result.returncode == 0, result.stderr
        assert "1 defaced" in result.stdout  # redone, not "already exists" and not skipped
        assert_complete_case(out, "a", scans["a"])
        left = sorted(os.listdir(out))
        assert left == sorted(
            [
                "a_deface.json",
                "a_defaced.nii.gz",
                "a_facemask.nii.gz",
                "notes.txt",
                ".tmp-other-tool",
                f".ctadeface-tmp-{live.pid}-busy",
            ]
        )
    finally:
        live.kill()
        live.wait()


def test_an_output_changed_after_it_was_written_is_not_taken_as_done(scans, tmp_path):
    out = tmp_path / "out"
    assert ctadeface("deface", scans["a"], "-o", out, *BOX).returncode == 0
    shutil.copy(scans["a"], out / "a_defaced.nii.gz")  # someone put the undefaced scan there
    result = ctadeface("deface", scans["a"], "-o", out, *BOX, "--json")
    assert result.returncode == 1 and "no longer matches its sidecar" in records(result)[scans["a"]]["message"]
    assert ctadeface("deface", scans["a"], "-o", out, *BOX, "--overwrite").returncode == 0
    assert_complete_case(out, "a", scans["a"])


# ---------------------------------------------------------------------------- two runs at once
def test_a_second_run_into_a_folder_being_written_refuses(scans, tmp_path):
    folder = tmp_path / "in"  # enough cases that the first run is still writing when the second starts
    folder.mkdir()
    names = [f"{key}{i}" for i in range(4) for key in ("a", "b")]
    for name in names:
        shutil.copy(scans[name[0]], folder / f"{name}.nii.gz")
    out = tmp_path / "out"
    first = subprocess.Popen(
        cli_command("deface", folder, "-o", out, *BOX),
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 300
        while not (out.exists() and any(n.startswith(".ctadeface-tmp-") for n in os.listdir(out))):
            assert first.poll() is None and time.time() < deadline, "the first run ended before writing"
            time.sleep(0.005)
        for extra in ((), ("--overwrite",)):
            second = ctadeface("deface", folder / "a0.nii.gz", "-o", out, *BOX, *extra)
            assert first.poll() is None, "the first run ended before the second one started: no overlap to test"
            assert second.returncode == 2, second.stdout
            assert "Another ctadeface run is writing into" in one_sentence(second)
    finally:
        stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    for name in names:
        assert_complete_case(out, name, str(folder / f"{name}.nii.gz"))
    assert not [n for n in os.listdir(out) if n.startswith(".ctadeface-tmp-")]
