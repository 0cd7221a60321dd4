"""Hostile and broken models, as a user meets them through the real `ctadeface` command.

Model names that are paths, zips that write outside the cache, zip bombs, checkpoints whose pickle
runs code, corrupted files that keep their size and mtime, and downloads from a real HTTP server on
127.0.0.1 that break off, lie about their length, ignore Range or send too much, and installs killed
mid-download. Every failure must be one sentence and a non-zero exit, write nothing outside the
cache, and leave no folder under the model's final name unless it was verified.
"""

import hashlib
import http.server
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile

import pytest

from helpers import cli_environment, ctadeface, one_sentence
from test_models_install import RESULTS, make_results_folder, zip_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- the real command, in a private cache
@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private model cache for this test, for the CLI subprocesses and for in-process calls."""
    path = tmp_path / "home"
    monkeypatch.setenv("CTADEFACE_HOME", str(path))
    return path


def listing(folder) -> set:
    """Every path under folder (files and folders), relative to it."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), folder))
    return found


def models_in(home) -> set:
    """The visible (final-name) entries of the model cache."""
    root = home / "models"
    return {n for n in os.listdir(root) if not n.startswith(".")} if root.is_dir() else set()


# ---------------------------------------------------------------- 1: a model name is a name, not a path
@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_model_name_that_is_a_path_deletes_nothing(tmp_path, home, how):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    name = str(victim) if how == "absolute" else os.path.join("..", "..", "victim")  # home/models/../../victim
    source = zip_folder(make_results_folder(tmp_path), tmp_path / "toy.zip")
    for args in (
        ("remove", name),
        ("install", name, "--from", str(source)),
        ("install", name, "--from", str(source), "--overwrite"),
    ):
        line = one_sentence(ctadeface("models", *args))
        assert "not a model name" in line, line
        assert (victim / "precious.txt").read_text() == "keep me"
    assert models_in(home) == set()


def test_folder_that_is_not_our_model_is_never_replaced_or_removed(tmp_path, home):
    mine = home / "models" / "mine"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("not a model")
    source = zip_folder(make_results_folder(tmp_path), tmp_path / "toy.zip")
    for args in (
        ("install", "mine", "--from", str(source)),
        ("install", "mine", "--from", str(source), "--overwrite"),
        ("remove", "mine"),
    ):
        assert "not a model installed by ctadeface" in one_sentence(ctadeface("models", *args))
        assert listing(mine) == {"notes.txt"}


def test_remove_says_when_there_is_nothing_to_remove_and_removes_what_is_there(tmp_path, home):
    line = one_sentence(ctadeface("models", "remove", "never-installed"))
    assert "not installed" in line and "removed the" not in line
    source = zip_folder(make_results_folder(tmp_path), tmp_path / "toy.zip")
    assert ctadeface("models", "install", "toy", "--from", str(source), "--no-progress").returncode == 0
    removed = ctadeface("models", "remove", "toy")
    assert removed.returncode == 0 and "removed the model 'toy'" in removed.stdout
    assert not (home / "models" / "toy").exists()
    assert "not installed" in one_sentence(ctadeface("models", "remove", "toy"))


# ---------------------------------------------------------------- 6: a checkpoint whose pickle runs code
class _Evil:
    """Unpickling this calls open(marker, 'w'): a stand-in for any code an attacker wants run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_evil_checkpoint(path, marker):
    import torch

    torch.save(
        {
            "network_weights": _Evil(str(marker)),
            "init_args": {"configuration": "3d_fullres"},
            "trainer_name": "nnUNetTrainer",
        },
        str(path),
    )


def evil_model(tmp_path, marker):
    model = make_results_folder(tmp_path)
    write_evil_checkpoint(model / RESULTS / "fold_all" / "checkpoint_final.pth", marker)
    return model


def test_the_evil_checkpoint_really_runs_code_when_unpickled(tmp_path):
    """The attack is real: plain torch.load (nnU-Net's weights_only=False) creates the marker."""
    marker = tmp_path / "proof-marker"
    write_evil_checkpoint(tmp_path / "evil.pth", marker)
    code = "import torch, sys; torch.load(sys.argv[1], weights_only=False)"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "evil.pth")], check=True, timeout=120)
    assert marker.exists()


def test_evil_checkpoint_given_as_model_path_runs_nothing(tmp_path, home):
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom, write_phantom

    marker = tmp_path / "marker"
    model = evil_model(tmp_path, marker)
    write_phantom(make_phantom(PhantomSpec.random(8002, size="small")), str(tmp_path / "in"), "case")
    result = ctadeface(
        "deface",
        str(tmp_path / "in" / "case.nii.gz"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(model / RESULTS),
        "--device",
        "cpu",
        "--no-progress",
    )
    line = one_sentence(result)
    assert "not a plain nnU-Net checkpoint" in line, line
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or listing(tmp_path / "out") == set()


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_evil_checkpoint_is_refused_at_install(tmp_path, home, form):
    marker = tmp_path / "marker"
    model = evil_model(tmp_path, marker)
    source = model if form == "folder" else zip_folder(model, tmp_path / "evil.zip")
    line = one_sentence(ctadeface("models", "install", "evil", "--from", str(source), "--no-progress"))
    assert "not a plain nnU-Net checkpoint" in line, line
    assert not marker.exists()
    assert models_in(home) == set()


def test_plans_naming_arbitrary_code_is_refused(tmp_path, home):
    import json

    model = make_results_folder(tmp_path)
    plans_path = model / RESULTS / "plans.json"
    plans = json.loads(plans_path.read_text())
    for config in plans["configurations"].values():
        if "architecture" in config:
            config["architecture"]["network_class_name"] = "os.system"
    plans_path.write_text(json.dumps(plans))
    line = one_sentence(ctadeface("models", "install", "odd", "--from", str(model), "--no-progress"))
    assert "os.system" in line
    assert models_in(home) == set()


def test_real_nnunet_checkpoints_pass_the_restricted_loader(tmp_path):
    """The bundled model's checkpoint and a full training checkpoint written by nnU-Net's own trainer
    (optimizer momentum, training log with numpy scalars) load with weights_only=True."""
    pytest.importorskip("nnunetv2")
    import json

    import numpy as np
    import torch

    from CTADefaceLib.models.bundled import SYNTHETIC_ZIP
    from CTADefaceLib.models.checkpoint import check_checkpoint, weights_only_loading
    from test_models_install import bundled_json

    with zipfile.ZipFile(SYNTHETIC_ZIP) as archive:
        member = next(n for n in archive.namelist() if n.endswith("checkpoint_final.pth"))
        (tmp_path / "bundled.pth").write_bytes(archive.read(member))
    check_checkpoint(str(tmp_path / "bundled.pth"))

    code = """
import json, os, sys, time, numpy as np, torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
plans, dataset = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
plans["continue_training"] = False
trainer = nnUNetTrainer(plans, "3d_fullres", "all", dataset, device=torch.device("cpu"))
trainer.was_initialized = True
trainer.network = trainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager, 1, 2, True)
trainer.optimizer, trainer.lr_scheduler = trainer.configure_optimizers()
for group in trainer.optimizer.param_groups:   # SGD momentum buffers, as a step of training leaves them
    for parameter in group["params"]:
        trainer.optimizer.state[parameter]["momentum_buffer"] = torch.zeros_like(parameter)
for epoch in range(2):
    for key, value in (("mean_fg_dice", np.float64(0.5)), ("dice_per_class_or_region", [np.float64(0.5)]),
                       ("train_losses", np.float32(0.1)), ("val_losses", np.float32(0.1)), ("lrs", 0.01),
                       ("epoch_start_timestamps", time.time()), ("epoch_end_timestamps", time.time())):
        trainer.logger.log(key, value, epoch)
trainer._best_ema = np.float64(0.5)
trainer.save_checkpoint(sys.argv[3])
"""
    (tmp_path / "plans.json").write_bytes(bundled_json("plans.json"))
    (tmp_path / "dataset.json").write_bytes(bundled_json("dataset.json"))
    full = tmp_path / "full.pth"
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "plans.json"), str(tmp_path / "dataset.json"), str(full)],
        check=True,
        capture_output=True,
        timeout=300,
        env=dict(
            cli_environment(), **{k: str(tmp_path / k) for k in ("nnUNet_results", "nnUNet_raw", "nnUNet_preprocessed")}
        ),
    )
    raw = torch.load(str(full), map_location="cpu", weights_only=False)
    assert {"optimizer_state", "logging", "network_weights", "init_args"} <= set(raw)
    assert isinstance(raw["_best_ema"], np.floating)
    check_checkpoint(str(full))
    with weights_only_loading():  # and nnU-Net's own weights_only=False call is forced to the safe loader
        again = torch.load(str(full), map_location="cpu", weights_only=False)
    assert json.dumps(sorted(again)) == json.dumps(sorted(raw))


# ---------------------------------------------------------------- 7: zips that write outside the cache
def set_declared_size(zip_path, member, size):
    """Patch a member's uncompressed size in its local and central headers (what a zip bomb lies about)."""
    data = bytearray(open(zip_path, "rb").read())
    encoded = member.encode()
    for signature, name_len_at, size_at, name_at in ((b"PK\x03\x04", 26, 22, 30), (b"PK\x01\x02", 28, 24, 46)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", data, start + name_len_at)[0]
            if bytes(data[start + name_at : start + name_at + length]) == encoded:
                struct.pack_into("<I", data, start + size_at, size)
            start += 4
    open(zip_path, "wb").write(bytes(data))


def hostile_zip(tmp_path, kind):
    """A working model zip plus one hostile member; returns (zip, where the member would land outside)."""
    model = make_results_folder(tmp_path)
    path = tmp_path / f"{kind}.zip"
    zip_folder(model, path)
    outside = tmp_path / "outside" / "pwned.txt"
    with zipfile.ZipFile(path, "a") as archive:
        if kind == "absolute":
            archive.writestr(str(outside), "written outside")  # zipfile keeps the leading '/'
        elif kind == "dotdot":
            # plans.json at the zip's root makes the results folder the zip's root, and the old installer then
            # wrote Dataset999_Custom/<config>/fold_all/../../../../../../pwned.txt/... : beside the cache
            outside = tmp_path / "pwned.txt"
            archive.writestr("plans.json", (model / RESULTS / "plans.json").read_text())
            archive.writestr("fold_all/../../../../../../pwned.txt/checkpoint_final.pth", "written outside")
        elif kind == "symlink":
            link = zipfile.ZipInfo("download/" + RESULTS + "/fold_1/checkpoint_final.pth")
            link.create_system = 3
            link.external_attr = 0o120777 << 16
            archive.writestr(link, str(outside))
        elif kind in ("bomb", "liar"):
            archive.writestr("download/padding.bin", b"\0" * 200_000, compress_type=zipfile.ZIP_DEFLATED)
    if kind == "bomb":
        set_declared_size(path, "download/padding.bin", 3_000_000_000)  # 3 GB declared, above the 2 GB limit
    if kind == "liar":
        # declares fewer bytes than its data unpacks to: the checkpoint it would install is not what it holds
        set_declared_size(path, "download/" + RESULTS + "/fold_all/checkpoint_final.pth", 1000)
    return path, outside


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "bomb", "liar"])
def test_hostile_zip_is_refused_and_writes_nothing_outside_the_cache(tmp_path, home, kind):
    source, outside = hostile_zip(tmp_path, kind)
    before = listing(tmp_path)
    line = one_sentence(ctadeface("models", "install", "hostile", "--from", str(source), "--no-progress"))
    assert not outside.exists(), line
    assert models_in(home) == set()
    written = {p for p in listing(tmp_path) - before if not p.startswith("home")}
    assert written == set(), written
    expected = {
        "absolute": "outside the model folder",
        "dotdot": "outside the model folder",
        "symlink": "symbolic link",
        "bomb": "zip bomb",
        "liar": "not a usable zip file",
    }[kind]
    assert expected in line, line


# ---------------------------------------------------------------- 10: a corrupted file that keeps size and mtime
def corrupt_keeping_size_and_mtime(path):
    st = os.stat(path)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_corrupted_checkpoint_with_same_size_and_mtime_is_not_used(tmp_path, home):
    from CTADefaceLib.errors import ChecksumError
    from CTADefaceLib.models.bundled import SYNTHETIC_NAME
    from CTADefaceLib.models.install import installed_results_folder
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom, write_phantom

    write_phantom(make_phantom(PhantomSpec.random(8003, size="small")), str(tmp_path / "in"), "case")
    assert ctadeface("models", "install", SYNTHETIC_NAME, "--no-progress").returncode == 0
    results, entry = installed_results_folder(SYNTHETIC_NAME)
    checkpoint = os.path.join(results, "fold_all", "checkpoint_final.pth")
    corrupt_keeping_size_and_mtime(checkpoint)
    for args in (
        ("models", "path", SYNTHETIC_NAME),
        (
            "deface",
            str(tmp_path / "in" / "case.nii.gz"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            SYNTHETIC_NAME,
            "--device",
            "cpu",
            "--no-progress",
        ),
    ):
        line = one_sentence(ctadeface(*args))
        assert "checksum" in line and "checkpoint_final.pth" in line, line
    assert not (tmp_path / "out").exists() or listing(tmp_path / "out") == set()
    with pytest.raises(ChecksumError):  # in process too, although this process hashed the good file before
        installed_results_folder(SYNTHETIC_NAME)


def test_a_verified_file_is_hashed_once_per_process_while_unchanged(tmp_path, home, monkeypatch):
    from CTADefaceLib.models import install as installer

    installer.install("toy", str(make_results_folder(tmp_path)), progress=False)
    hashed = []
    real = installer.sha256_of
    monkeypatch.setattr(installer, "sha256_of", lambda path: hashed.append(path) or real(path))
    installer._HASHED.clear()  # as in a fresh process
    for _ in range(3):
        installer.installed_results_folder("toy")
    assert len(hashed) == len(installer.entry_for("toy").files)  # each file once, not once per use
    os.utime(hashed[0])  # touched: hashed again
    installer.installed_results_folder("toy")
    assert len(hashed) == len(installer.entry_for("toy").files) + 1


def test_engine_records_the_sha256_it_computed_from_the_file(tmp_path, home):
    pytest.importorskip("nnunetv2")
    from CTADefaceLib.engines.nnunet.engine import NnUNetEngine

    model = make_results_folder(tmp_path) / RESULTS
    checkpoint = model / "fold_all" / "checkpoint_final.pth"
    engine = NnUNetEngine(model=str(model), device="cpu")
    assert engine.describe()["model_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert not engine.trusted  # a folder path: loaded with the restricted unpickler
    from CTADefaceLib.models.bundled import SYNTHETIC_NAME
    from CTADefaceLib.models.install import install

    install(SYNTHETIC_NAME, progress=False)
    registered = NnUNetEngine(model=SYNTHETIC_NAME, device="cpu")
    installed = os.path.join(registered.results_folder, "fold_all", "checkpoint_final.pth")
    assert registered.trusted  # the registry's own model, every file verified against its sha256
    assert registered.describe()["model_sha256"] == hashlib.sha256(open(installed, "rb").read()).hexdigest()


# ---------------------------------------------------------------- 11, 20: downloads from a real server on 127.0.0.1
class Server:
    """A local HTTP server whose behaviour a test sets: how much it sends, what it claims, Range or not."""

    def __init__(self, root):
        self.root = root
        self.mode = "normal"
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 20  # a stuck client cannot hold a handler thread for longer

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                path = os.path.join(server.root, self.path.lstrip("/"))
                if not os.path.isfile(path):
                    self.send_error(404)
                    return
                server.respond(self, open(path, "rb").read())

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.watchdog = threading.Timer(300, self.httpd.shutdown)  # stops by itself whatever a test does

    def respond(self, handler, data):
        mode = self.mode
        start = 0
        wanted = handler.headers.get("Range")
        if wanted and mode not in ("no-range", "slow-no-range"):
            start = int(wanted.split("=")[1].split("-")[0])
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        if mode == "truncate":  # claims the whole length, sends 40 %, then hangs up
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) * 2 // 5])
            handler.close_connection = True
            return
        if mode == "short-length":  # Content-Length smaller than the file: the client gets a cut file
            handler.send_header("Content-Length", str(len(body) // 2))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            return
        if mode == "no-length-truncate":  # no Content-Length at all, and the body is cut
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.close_connection = True
            return
        if mode == "extra":  # more bytes than the file: claims and sends them
            body = body + b"X" * 5000
        if mode == "extra-no-length":
            handler.end_headers()
            handler.wfile.write(body + b"X" * 5000)
            handler.close_connection = True
            return
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if mode.startswith("slow"):  # 4 KiB every 50 ms: long enough to be interrupted, bounded in time
            for offset in range(0, len(body), 4096):
                handler.wfile.write(body[offset : offset + 4096])
                handler.wfile.flush()
                time.sleep(0.05)
                if self.mode != mode:
                    break
            return
        handler.wfile.write(body)

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with Server(str(root)) as running:
        yield running


def staging_parts(home, name):
    staging = home / "models" / f".{name}.partial"
    return [os.path.join(staging, p) for p in listing(staging) if p.endswith(".part")] if staging.is_dir() else []


def test_interrupted_zip_download_says_so_keeps_the_part_and_resumes(tmp_path, home, server):
    zip_folder(make_results_folder(tmp_path), os.path.join(server.root, "toy.zip"))
    url = f"{server.url}/toy.zip"
    server.mode = "truncate"
    line = one_sentence(ctadeface("models", "install", "toy", "--from", url, "--no-progress"))
    assert "stopped at" in line and "again to resume" in line, line
    assert models_in(home) == set()
    parts = staging_parts(home, "toy")
    assert len(parts) == 1 and os.path.getsize(parts[0]) > 0
    have = os.path.getsize(parts[0])
    server.mode = "normal"
    done = ctadeface("models", "install", "toy", "--from", url, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert server.requests[-1][1] == f"bytes={have}-"
    assert listing(home / "models" / "toy") >= {"ctadeface-model.json", RESULTS + "/fold_all/checkpoint_final.pth"}
    assert not any(p.endswith((".part", ".zip")) for p in listing(home / "models" / "toy"))
    assert not (home / "models" / ".toy.partial").exists()


@pytest.mark.slow  # three installs; resuming is in the quick tier (test_interrupted_zip_download_...)
def test_server_without_range_support_restarts_the_download(tmp_path, home, server):
    zip_folder(make_results_folder(tmp_path), os.path.join(server.root, "toy.zip"))
    url = f"{server.url}/toy.zip"
    server.mode = "truncate"
    one_sentence(ctadeface("models", "install", "toy", "--from", url, "--no-progress"))
    server.mode = "no-range"
    done = ctadeface("models", "install", "toy", "--from", url, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert server.requests[-1][1] is not None  # it asked to resume, got the whole file, and started over
    assert ctadeface("models", "verify", "toy").returncode == 0


@pytest.mark.parametrize("mode", ["short-length", pytest.param("no-length-truncate", marks=pytest.mark.slow)])
def test_cut_zip_without_a_true_length_is_one_sentence_and_is_deleted(tmp_path, home, server, mode):
    zip_folder(make_results_folder(tmp_path), os.path.join(server.root, "toy.zip"))
    server.mode = mode
    line = one_sentence(ctadeface("models", "install", "toy", "--from", f"{server.url}/toy.zip", "--no-progress"))
    assert "not a usable zip file" in line and "deleted" in line, line
    assert models_in(home) == set()
    assert listing(home / "models" / ".toy.partial") == set()  # no junk left to be moved in later
    server.mode = "normal"
    assert ctadeface("models", "install", "toy", "--from", f"{server.url}/toy.zip", "--no-progress").returncode == 0


def registered_mirror(tmp_path, server, monkeypatch):
    """A registered model (sizes and sha256 known) served file by file from the local server."""
    from CTADefaceLib.models import install as installer

    source = make_results_folder(tmp_path)
    entry = installer._entry_from_folder("toy-registered", str(source))
    for item in entry.files:
        target = os.path.join(server.root, item.path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write((source / item.path).read_bytes())
    entry = installer._with_mirrors(entry, (server.url,))
    monkeypatch.setattr(installer, "registry", lambda: {entry.name: entry})
    return installer, entry


@pytest.mark.parametrize("mode", ["extra", "extra-no-length"])
def test_more_bytes_than_registered_is_refused_and_not_resumed(tmp_path, home, server, monkeypatch, mode):
    from CTADefaceLib.errors import ModelError

    installer, entry = registered_mirror(tmp_path, server, monkeypatch)
    server.mode = mode
    with pytest.raises(ModelError, match="more data than expected") as caught:
        installer.install(entry.name, progress=False)
    assert "resume" not in str(caught.value)
    assert staging_parts(home, entry.name) == []  # the oversized part file is deleted
    assert models_in(home) == set()
    server.mode = "normal"
    installer.install(entry.name, progress=False)
    installer.verify(entry.name)


def test_interrupted_mirror_download_resumes_with_range(tmp_path, home, server, monkeypatch):
    from CTADefaceLib.errors import ModelError

    installer, entry = registered_mirror(tmp_path, server, monkeypatch)
    server.mode = "truncate"
    with pytest.raises(ModelError, match="stopped at .* run the same command again to resume"):
        installer.install(entry.name, progress=False)
    assert models_in(home) == set()
    server.mode = "normal"
    installer.install(entry.name, progress=False)
    assert any(r[1] and r[1] != "bytes=0-" for r in server.requests)
    installer.verify(entry.name)


# ---------------------------------------------------------------- Ctrl-C and kill -9 during an install
@pytest.mark.slow  # over 14 s on 2 shared cores
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_install_killed_mid_download_leaves_no_model_and_a_rerun_completes(tmp_path, home, server, how):
    zip_folder(make_results_folder(tmp_path, checkpoint_bytes=1_200_000), os.path.join(server.root, "toy.zip"))
    url = f"{server.url}/toy.zip"
    server.mode = "slow"
    process = subprocess.Popen(
        [sys.executable, "-m", "CTADefaceLib.cli", "models", "install", "toy", "--from", url, "--no-progress"],
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(os.path.getsize(p) > 20_000 for p in staging_parts(home, "toy")):
            time.sleep(0.05)
        assert process.poll() is None, "the install finished before it could be interrupted"
        process.send_signal(how)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert models_in(home) == set()
    if how == signal.SIGINT:
        assert process.returncode == 130 and "Traceback" not in stderr, stderr
        assert "interrupted" in stderr
    server.mode = "normal"
    done = ctadeface("models", "install", "toy", "--from", url, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert server.requests[-1][1] is not None  # resumed from the part file the killed run left
    assert ctadeface("models", "verify", "toy").returncode == 0


# ---------------------------------------------------------------- review R1: every name plans.json gives nnU-Net
def _hub_with_marker(tmp_path):
    """A torch.hub repository whose hubconf.py creates a marker when torch.hub.load imports it."""
    hub, marker = tmp_path / "hub", tmp_path / "PWNED"
    hub.mkdir()
    (hub / "hubconf.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\ndef net(**kw):\n    raise SystemExit(0)\n"
    )
    return hub, marker


HUB_KWARGS = {"model": "net", "source": "local", "trust_repo": True}


@pytest.mark.parametrize(
    "route",
    # each route is a `ctadeface` child that loads nnU-Net (5 s and more): the quick tier keeps the network class
    # and the trainer name (both lead to torch); `make test` runs every route
    ["network", "trainer_name"]
    + [
        pytest.param(route, marks=pytest.mark.slow)
        for route in (
            "nonlin",
            "preprocessor_name",
            "normalization_schemes",
            "resampling_fn_data",
            "image_reader_writer",
            "label_manager",
            "overwrite_image_reader_writer",
        )
    ],
)
def test_every_name_nnunet_resolves_from_a_model_is_checked(tmp_path, home, route):
    import json

    hub, marker = _hub_with_marker(tmp_path)
    model = make_results_folder(tmp_path)
    plans_path = model / RESULTS / "plans.json"
    plans = json.loads(plans_path.read_text())
    configs = [c for c in plans["configurations"].values() if "architecture" in c]
    expected = {
        "preprocessor_name": "join",
        "normalization_schemes": "np",
        "resampling_fn_data": "resize",
        "image_reader_writer": "os",
        "label_manager": "torch",
        "overwrite_image_reader_writer": "join",
        "trainer_name": "torch",
    }.get(route)
    for config in configs:
        arch = config["architecture"]
        if route == "network":  # pydoc.locate walks through unet's `torch` to torch.hub.load, called with kwargs
            expected = "dynamic_network_architectures.architectures.unet.torch.hub.load"
            config["architecture"] = {
                "network_class_name": expected,
                "_kw_requires_import": [],
                "arch_kwargs": dict(HUB_KWARGS, repo_or_dir=str(hub)),
            }
        elif route == "nonlin":  # the network builds nonlin(**nonlin_kwargs)
            expected = "torch.nn.modules.conv.torch.hub.load"
            arch["arch_kwargs"]["nonlin"] = expected
            arch["arch_kwargs"]["nonlin_kwargs"] = dict(HUB_KWARGS, repo_or_dir=str(hub))
        elif route == "normalization_schemes":
            config[route] = [expected]
        elif route in ("preprocessor_name", "resampling_fn_data"):
            config[route] = expected
    if route in ("image_reader_writer", "label_manager"):
        plans[route] = expected
    plans_path.write_text(json.dumps(plans))
    if route == "overwrite_image_reader_writer":
        dataset = json.loads((model / RESULTS / "dataset.json").read_text())
        (model / RESULTS / "dataset.json").write_text(json.dumps(dict(dataset, **{route: expected})))
    if route == "trainer_name":
        import torch

        path = model / RESULTS / "fold_all" / "checkpoint_final.pth"
        checkpoint = torch.load(str(path), weights_only=True)
        torch.save(dict(checkpoint, trainer_name=expected), str(path))
    line = one_sentence(ctadeface("models", "install", "odd", "--from", str(model), "--no-progress"))
    assert expected in line and ("names code that is not" in line or "not one of nnU-Net's own" in line), line
    assert not marker.exists()
    assert models_in(home) == set()
    if route in ("network", "nonlin"):  # and as --model PATH, straight to the engine
        from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom, write_phantom

        write_phantom(make_phantom(PhantomSpec.random(8003, size="small")), str(tmp_path / "in"), "case")
        line = one_sentence(
            ctadeface(
                "deface",
                str(tmp_path / "in" / "case.nii.gz"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(model / RESULTS),
                "--device",
                "cpu",
                "--no-progress",
            )
        )
        assert expected in line, line
        assert not marker.exists()


def test_real_nnunet_layers_and_moved_networks_are_accepted():
    pytest.importorskip("nnunetv2")
    from CTADefaceLib.models.checkpoint import _class_in

    for name in ("torch.nn.modules.conv.Conv3d", "torch.nn.InstanceNorm3d", "torch.nn.LeakyReLU"):
        assert _class_in(name, "torch.nn", "torch.nn.modules.") is not None, name
    for name in (
        "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet",
    ):
        assert _class_in(name, "dynamic_network_architectures", "dynamic_network_architectures.") is not None
    for name in (
        "torch.nn.modules.conv.torch.hub.load",
        "torch.nn.modules.conv.F",
        "torch.nn.functional.conv3d",
        "torch.hub.load",
    ):
        assert _class_in(name, "torch.nn", "torch.nn.modules.") is None, name


# ---------------------------------------------------------------- review R7/R8: failed installs and their messages
def duplicate_member_zip(tmp_path):
    """A model zip whose checkpoint name appears twice: a tiny member first, the real one after it."""
    path = zip_folder(make_results_folder(tmp_path), tmp_path / "dup.zip")
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("download/" + RESULTS + "/fold_all/checkpoint_final.pth", b"x" * 95)
    return path


# evil-zip: the zip form of the refusal is in the quick tier too (test_evil_checkpoint_is_refused_at_install[zip])
@pytest.mark.parametrize(
    "kind", ["evil-folder", pytest.param("evil-zip", marks=pytest.mark.slow), "duplicate", "absolute"]
)
def test_failed_install_leaves_no_staging_folder(tmp_path, home, kind):
    marker = tmp_path / "marker"
    if kind.startswith("evil"):
        model = evil_model(tmp_path, marker)
        source = model if kind == "evil-folder" else zip_folder(model, tmp_path / "evil.zip")
    elif kind == "duplicate":
        source = duplicate_member_zip(tmp_path)
    else:
        source, _ = hostile_zip(tmp_path, kind)
    line = one_sentence(ctadeface("models", "install", "bad", "--from", str(source), "--no-progress"))
    assert listing(home / "models") == set(), listing(home / "models")  # no .bad.partial, no hostile pickle
    assert ".partial" not in line and "--overwrite" not in line, line
    if kind == "duplicate":
        assert "two members named" in line and "checkpoint_final.pth" in line, line
    if kind.startswith("evil"):
        assert not marker.exists()


def test_pickle_refusal_is_short_and_names_the_global(tmp_path, monkeypatch):
    from CTADefaceLib.errors import ModelError
    from CTADefaceLib.models.checkpoint import check_checkpoint

    write_evil_checkpoint(tmp_path / "evil.pth", tmp_path / "marker")
    for forced in (False, True):
        if forced:
            monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
        with pytest.raises(ModelError) as caught:
            check_checkpoint(str(tmp_path / "evil.pth"), "evil.pth")
        message = str(caught.value)
        assert "it holds Python objects besides data (" in message and "open" in message, message
        assert "PyTorch 2.6" not in message and "Re-running" not in message and "\n" not in message, message
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"not a plain nnU-Net checkpoint: it (cannot be read|holds)"):
        check_checkpoint(str(tmp_path / "garbage.pth"), "garbage.pth")
    assert not (tmp_path / "marker").exists()


def test_checksum_failure_during_install_names_the_file_in_the_model(tmp_path, home, monkeypatch):
    from CTADefaceLib.errors import ChecksumError
    from CTADefaceLib.models import install as installer

    source = make_results_folder(tmp_path)
    entry = installer._entry_from_folder("toy-registered", str(source))
    monkeypatch.setattr(installer, "registry", lambda: {entry.name: entry})
    corrupt_keeping_size_and_mtime(source / RESULTS / "fold_all" / "checkpoint_final.pth")
    with pytest.raises(ChecksumError) as caught:
        installer.install(entry.name, str(source), progress=False)
    message = str(caught.value)
    assert f"{RESULTS}/fold_all/checkpoint_final.pth of the model 'toy-registered'" in message, message
    assert ".partial" not in message and "--overwrite" not in message, message
    assert listing(home / "models") == set()
