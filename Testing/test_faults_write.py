"""Writing images when things go wrong: a real full disk, a real read-only mount, a process killed mid-write.

A final name only ever holds a complete file that was read back and compared; a failure raises one
sentence and leaves nothing behind (no final name, no temporary file). Outputs get the user's normal
file mode and carry none of the input's meta-data (patient name, IDs).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk

from builders import image_from_array, make_ct
from CTADefaceLib.errors import OutputError
from CTADefaceLib.io.volume import TEMP_PREFIX, read_image, write_image_atomic
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom
from helpers import REPO, ctadeface, mounted_tmpfs, sha256

FORMATS = [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".nhdr"]


def noisy_ct(size=(160, 160, 80)):
    """Noise does not compress: about 4 MB in every format."""
    array = np.random.default_rng(7).integers(-1000, 2000, size[::-1], dtype=np.int16)
    return image_from_array(array, spacing=(0.8, 0.8, 1.5))


@pytest.mark.parametrize("suffix", FORMATS)
def test_full_disk_leaves_nothing_and_says_so(tmp_path, suffix):
    with mounted_tmpfs(tmp_path / "small", "size=1m") as disk:
        target = disk / f"case{suffix}"
        with pytest.raises(OutputError, match=r"could not be written \(.*\): the disk is full or the write failed"):
            write_image_atomic(noisy_ct(), str(target))
        assert os.listdir(disk) == []  # no final name, no data file of a pair, no temporary file


def test_full_disk_after_the_header_still_leaves_nothing(tmp_path):
    """Room for a NIfTI header and part of the data: the writer itself does not notice (it prints
    'wrote only ... bytes'); the read-back does."""
    with mounted_tmpfs(tmp_path / "small", "size=2m") as disk:
        (disk / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 64 * 1024))
        with pytest.raises(OutputError, match="the disk is full or the write failed"):
            write_image_atomic(noisy_ct(), str(disk / "case.nii"))
        assert sorted(os.listdir(disk)) == ["filler"]


def test_read_only_disk_leaves_nothing(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "size=4m,ro") as disk:
        for path in (disk / "case.nii.gz", disk / "sub" / "case.nrrd", disk / "case.mhd"):
            with pytest.raises(OutputError, match=r"\(Read-only file system\): the disk is full or the write failed"):
                write_image_atomic(make_ct(), str(path))
        assert os.listdir(disk) == []


def test_cli_on_a_full_disk_is_one_sentence_and_leaves_no_output(tmp_path):
    head = make_phantom(PhantomSpec.random(8001, size="small")).image
    source = tmp_path / "head.nii.gz"
    sitk.WriteImage(head, str(source))
    before = sha256(source)
    with mounted_tmpfs(tmp_path / "full", "size=64k") as disk:
        result = ctadeface("deface", str(source), "-o", str(disk / "out"), "--engine", "box", "--no-progress")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
        failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
        assert len(failed) == 1 and "the disk is full or the write failed" in failed[0], result.stdout
        leftovers = os.listdir(disk / "out") if (disk / "out").exists() else []
        assert not [n for n in leftovers if n.startswith("head_")], leftovers
        assert not [n for n in leftovers if n.startswith(TEMP_PREFIX)], leftovers
    assert sha256(source) == before


@pytest.mark.parametrize("suffix", [".mhd", ".nhdr"])
def test_header_and_data_pairs_are_written_whole(tmp_path, suffix):
    image = make_ct()
    path = write_image_atomic(image, str(tmp_path / f"pair{suffix}"))
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2 and f"pair{suffix}" in names, names  # header + data, no temporary left
    assert np.array_equal(sitk.GetArrayFromImage(read_image(path)), sitk.GetArrayFromImage(image))
    data = next(n for n in names if n != f"pair{suffix}")
    with pytest.raises(OutputError, match="already exists"):
        write_image_atomic(image, str(tmp_path / f"pair{suffix}"))
    os.remove(path)  # the header's name is free but its data file's is not: still refused
    with pytest.raises(OutputError, match=f"{data} already exists"):
        write_image_atomic(image, str(tmp_path / f"pair{suffix}"))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_get_the_users_normal_file_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        for suffix in (".nii.gz", ".nrrd", ".mhd"):
            write_image_atomic(make_ct(), str(tmp_path / f"m{umask:o}{suffix}"))
    finally:
        os.umask(old)
    for name in os.listdir(tmp_path):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask, name


def test_a_killed_writer_leaves_only_a_temporary_named_with_its_pid(tmp_path):
    """SIGKILL in the middle of a long write: no final name, and the leftover says which process made it."""
    out = tmp_path / "out"
    out.mkdir()
    script = (
        "import numpy as np, SimpleITK as sitk\n"
        "from CTADefaceLib.io.volume import write_image_atomic\n"
        "a = np.random.default_rng(1).integers(-1000, 2000, (600, 512, 512), dtype=np.int16)\n"
        "i = sitk.GetImageFromArray(a); i.SetSpacing((0.5, 0.5, 0.5))\n"
        "print('writing', flush=True)\n"
        f"write_image_atomic(i, {str(out / 'big.nii.gz')!r})\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "CTADeface"))
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        deadline = time.time() + 60
        while time.time() < deadline:
            staged = [n for n in os.listdir(out) if n.startswith(TEMP_PREFIX)]
            if staged and os.listdir(out / staged[0]):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the writer never started its temporary file")
        time.sleep(0.3)
        assert child.poll() is None, "the write finished before it could be interrupted"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    names = os.listdir(out)
    assert names == staged and names[0].startswith(f"{TEMP_PREFIX}{child.pid}-"), names
    assert not (out / "big.nii.gz").exists()


def test_identifying_metadata_never_reaches_outputs(tmp_path):
    """An .nrrd input with PatientName/PatientID in its header: neither is in any output's raw bytes."""
    head = make_phantom(PhantomSpec.random(8001, size="small")).image
    for key, value in (("PatientName", "Doe^Jane"), ("PatientID", "ID-4711-SECRET"), ("0010|0010", "Doe^Jane")):
        head.SetMetaData(key, value)
    source = tmp_path / "head.nrrd"
    sitk.WriteImage(head, str(source))
    raw = open(source, "rb").read()
    assert b"Doe^Jane" in raw and b"ID-4711-SECRET" in raw  # the input really carries them
    before = sha256(source)
    for fmt in (".nrrd", ".mha", ".nii"):
        out = tmp_path / f"out{fmt}"
        result = ctadeface("deface", str(source), "-o", str(out), "--engine", "box", "--format", fmt, "--no-progress")
        assert result.returncode == 0, result.stdout + result.stderr
        images = [n for n in os.listdir(out) if not n.endswith(".json")]
        assert len(images) == 2, images
        for name in images:
            data = open(out / name, "rb").read()
            assert b"Doe^Jane" not in data and b"ID-4711" not in data and b"PatientName" not in data, name
    assert sha256(source) == before


def test_in_memory_metadata_is_dropped_in_every_format(tmp_path):
    image = make_ct()
    for key in ("PatientName", "ITK_FileNotes", "aux_file", "descrip", "intent_name"):
        image.SetMetaData(key, "SECRET-" + key)
    for suffix in FORMATS:
        path = write_image_atomic(image, str(tmp_path / f"m{suffix}"))
        for name in os.listdir(tmp_path):
            assert b"SECRET-" not in open(tmp_path / name, "rb").read(), name
        assert path
    assert image.GetMetaData("PatientName") == "SECRET-PatientName"  # the caller's image is not changed
