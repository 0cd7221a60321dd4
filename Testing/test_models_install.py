"""Model installer: local zip, local folder, a local HTTP server (whole zip, per-file mirror, resume), checksums."""

import functools
import hashlib
import http.server
import os
import threading
import zipfile

import numpy as np
import pytest

from CTADefaceLib.errors import ChecksumError, ModelError
from CTADefaceLib.models import install as installer
from CTADefaceLib.models.download import download

RESULTS = "Dataset123_Toy/nnUNetTrainer__nnUNetPlans__3d_fullres"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CTADEFACE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def bundled_json(name):
    """plans.json or dataset.json of the bundled synthetic model: a real nnU-Net v2 plans file."""
    from CTADefaceLib.models.bundled import SYNTHETIC_ZIP

    with zipfile.ZipFile(SYNTHETIC_ZIP) as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith("/" + name)))


def make_results_folder(root, checkpoint_bytes=300_000):
    """A model in nnU-Net's results layout: real plans, a checkpoint of plain data (random weights)."""
    import torch

    base = root / "model" / RESULTS
    (base / "fold_all").mkdir(parents=True)
    (base / "plans.json").write_bytes(bundled_json("plans.json"))
    (base / "dataset.json").write_bytes(bundled_json("dataset.json"))
    weights = {"w": torch.from_numpy(np.random.default_rng(len(str(root))).random(checkpoint_bytes // 4, np.float32))}
    torch.save(
        {"network_weights": weights, "init_args": {"configuration": "3d_fullres"}, "trainer_name": "nnUNetTrainer"},
        base / "fold_all" / "checkpoint_final.pth",
    )
    return root / "model"


def zip_folder(folder, zip_path):
    with zipfile.ZipFile(zip_path, "w") as archive:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                full = os.path.join(dirpath, name)
                archive.write(full, os.path.join("download", os.path.relpath(full, folder)))
    return zip_path


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (resume) and counts requests; quiet."""

    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        RangeHandler.requests.append((self.path, self.headers.get("Range")))
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_install_user_model_from_zip_then_use_path(tmp_path):
    zip_path = zip_folder(make_results_folder(tmp_path), tmp_path / "toy.zip")
    folder = installer.install("toy", str(zip_path), progress=False)
    results, entry = installer.installed_results_folder("toy")
    assert results == os.path.join(folder, RESULTS)
    assert os.path.isfile(os.path.join(results, "fold_all", "checkpoint_final.pth"))
    assert entry.name == "toy" and entry.folds == ("all",)
    assert "toy" in installer.all_entries()
    installer.verify("toy")


def test_install_from_folder_and_corruption_is_caught(tmp_path):
    source = make_results_folder(tmp_path)
    installer.install("toy", str(source), progress=False)
    results, _ = installer.installed_results_folder("toy")
    checkpoint = os.path.join(results, "fold_all", "checkpoint_final.pth")
    data = bytearray(open(checkpoint, "rb").read())
    data[1000] ^= 0xFF  # same size, different content
    open(checkpoint, "wb").write(bytes(data))
    with pytest.raises(ChecksumError, match="checkpoint_final.pth"):
        installer.verify("toy")
    os.utime(checkpoint)  # a changed file is re-hashed before use too
    with pytest.raises(ChecksumError, match="checkpoint_final.pth"):
        installer.installed_results_folder("toy")


def test_install_from_local_http_zip(tmp_path, server):
    root, url = server
    zip_folder(make_results_folder(tmp_path), root / "toy.zip")
    installer.install("toy", f"{url}/toy.zip", progress=False)
    assert installer.is_installed("toy")
    installer.verify("toy")


def test_registered_model_from_http_mirror_verifies_each_file(tmp_path, server, monkeypatch):
    root, url = server
    source = make_results_folder(tmp_path)
    entry = installer._entry_from_folder("toy-registered", str(source))
    for item in entry.files:  # the mirror serves the registry's paths
        target = root / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((source / item.path).read_bytes())
    monkeypatch.setattr(installer, "registry", lambda: {entry.name: installer._with_mirrors(entry, (url,))})
    installer.install("toy-registered", progress=False)
    assert installer.is_installed("toy-registered")
    # A mirror serving a corrupted file: the install fails naming the file, nothing is installed.
    installer.remove("toy-registered")
    bad = root / entry.checkpoint_file.path
    data = bytearray(bad.read_bytes())
    data[10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="checkpoint_final.pth"):
        installer.install("toy-registered", progress=False)
    assert not installer.is_installed("toy-registered")


def test_download_resumes_with_range(tmp_path, server):
    root, url = server
    payload = os.urandom(200_000)
    (root / "blob.bin").write_bytes(payload)
    target = tmp_path / "got" / "blob.bin"
    target.parent.mkdir()
    (tmp_path / "got" / "blob.bin.part").write_bytes(payload[:50_000])  # an interrupted earlier download
    download(
        f"{url}/blob.bin",
        str(target),
        progress=False,
        expected_size=len(payload),
        expected_sha256=hashlib.sha256(payload).hexdigest(),
    )
    assert target.read_bytes() == payload
    assert RangeHandler.requests[-1] == ("/blob.bin", "bytes=50000-")


def test_unreachable_and_missing_downloads_are_clear(tmp_path, server):
    _, url = server
    with pytest.raises(ModelError, match="HTTP 404"):
        download(f"{url}/nothing.bin", str(tmp_path / "x.bin"), progress=False)
    with pytest.raises(ModelError, match="could not be reached"):
        download("http://127.0.0.1:9/x.bin", str(tmp_path / "y.bin"), progress=False)


def test_not_installed_and_unknown_models_say_what_to_do():
    with pytest.raises(ModelError, match="ctadeface models install cta-deface"):
        installer.installed_results_folder("cta-deface")
    with pytest.raises(ModelError, match="Unknown model"):
        installer.installed_results_folder("no-such-model")


def test_official_entry_matches_facts():
    entry = installer.entry_for("cta-deface")
    assert entry.checkpoint_file.size == 250036859
    assert entry.checkpoint_file.sha256 == "265afd7a1592cd4c43d093b40aa7fbe231a759ab900bba45a84798dfea90e1e5"
    assert entry.results_folder == "Dataset001_DEFACE/nnUNetTrainer__nnUNetPlans__3d_fullres"
    assert all(m.startswith("https://") for m in entry.mirrors)


def test_cache_is_outside_the_package(cache):
    import CTADefaceLib

    package = os.path.dirname(os.path.abspath(CTADefaceLib.__file__))
    assert not installer.cache_root().startswith(package)
    assert installer.cache_root() == str(cache)
