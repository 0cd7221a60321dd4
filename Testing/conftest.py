"""Shared test set-up: import the libraries from this checkout, whatever is installed."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("CTADeface", "CTADefaceEval"):
    path = os.path.join(REPO, sub)
    if path not in sys.path:
        sys.path.insert(0, path)

import tempfile  # noqa: E402

import pytest  # noqa: E402

# Tests never read or write the user's real model cache: one throw-away cache per test run,
# inherited by the CLI subprocesses that tests start.
os.environ["CTADEFACE_HOME"] = tempfile.mkdtemp(prefix="ctadeface-test-cache-")
# ... nor the user's de-identification key (made on first use under $XDG_CONFIG_HOME/ctadeface, or %APPDATA%).
os.environ["XDG_CONFIG_HOME"] = os.environ["APPDATA"] = tempfile.mkdtemp(prefix="ctadeface-test-config-")


@pytest.fixture(scope="session")
def synthetic_model():
    """The bundled synthetic test model, installed (and sha256-verified) into the test cache once."""
    from CTADefaceLib.models.bundled import SYNTHETIC_NAME
    from CTADefaceLib.models.install import install, is_installed

    if not is_installed(SYNTHETIC_NAME):
        install(SYNTHETIC_NAME, progress=False)
    return SYNTHETIC_NAME


@pytest.fixture(scope="session")
def phantom_dicom_study(tmp_path_factory):
    """(folder, written) of the multi-series DICOM study of the synthetic head (dicom_study.build_phantom_study), built
    once. Tests only read it, and those that run on it check that it is unchanged afterwards."""
    from builders import make_synthetic_head
    from dicom_study import build_phantom_study

    root = tmp_path_factory.mktemp("dicom-study") / "export"
    return root, build_phantom_study(str(root), make_synthetic_head(spacing=4.0).image, own_frame=False)


@pytest.fixture(scope="session")
def tiles_model(tmp_path_factory):
    """The tiling test model's results folder (Testing/tiles_model.py): a head needs several of its tiles."""
    pytest.importorskip("nnunetv2")
    from tiles_model import extract_tiles_model

    return extract_tiles_model(str(tmp_path_factory.mktemp("tiles-model")))
