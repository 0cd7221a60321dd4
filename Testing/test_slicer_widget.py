"""Both module widgets, as Slicer drives them: setup, enter, exit, scene close, Reload, clicks that cannot run.

The driver (Testing/slicer_env/driver.py) is the Slicer-equivalent tier: `make test-slicer-env` runs it in
venvs that hold exactly the packages Slicer 5.8, 5.10 and main bundle. Here it runs
- in those venvs when they are built (skipped, with the command that builds them, when not), and
- in this test environment, so that `make test` covers the widget flow everywhere.
"""

import glob
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = os.path.join(REPO, "Testing", "slicer_env")
sys.path.insert(0, ENV)
import build_env  # noqa: E402
import driver  # noqa: E402


def _run_driver(python, list_name, tmp_path):
    # Slicer's own process never has VTK_DEFAULT_OPENGL_WINDOW (the driver checks that nothing sets it); the
    # rendering tests set it in this pytest process (CTADefaceEvalLib/render.py, for offscreen VTK), so a full run
    # would hand it to the driver.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VTK_DEFAULT_OPENGL_WINDOW"}
    return subprocess.run(
        [python, "-I", os.path.join(ENV, "driver.py"), "--repo", REPO, "--list", os.path.join(ENV, list_name)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=str(tmp_path),
    )


def test_driver_passes_in_this_environment(tmp_path):
    result = _run_driver(sys.executable, "slicer-5.10.txt", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK Slicer 5.10" in result.stdout
    assert "Select an input volume first." in result.stdout  # a click without a volume says why


@pytest.mark.parametrize("list_name", build_env.LISTS)
def test_driver_passes_with_only_slicers_bundled_packages(list_name, tmp_path):
    folder = build_env.venv_dir(os.path.join(ENV, list_name))
    if not os.path.isfile(os.path.join(folder, ".verified")):
        pytest.skip(f"{folder} is not built: run `make test-slicer-env`")
    result = _run_driver(build_env.venv_python(folder), list_name, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bundled_venvs_hold_exactly_their_list():
    built = [
        name
        for name in build_env.LISTS
        if os.path.isfile(os.path.join(build_env.venv_dir(os.path.join(ENV, name)), ".verified"))
    ]
    if not built:
        pytest.skip("no Slicer-equivalent venv is built: run `make test-slicer-env`")
    for name in built:
        _, pins = build_env.read_list(os.path.join(ENV, name))
        assert build_env.installed(build_env.venv_dir(os.path.join(ENV, name))) == pins
        assert not {"platformdirs", "tqdm", "matplotlib", "seaborn", "torch"} & set(pins)


def test_lists_name_their_slicer_source():
    for name in build_env.LISTS:
        python, pins = build_env.read_list(os.path.join(ENV, name))
        assert python == ("3.9" if "5.8" in name else "3.12")
        lines = [line for line in open(os.path.join(ENV, name)) if line.strip() and not line.startswith("#")]
        assert len(lines) == len(pins) and all("SuperBuild/External_" in line and " @ " in line for line in lines)
    assert build_env.read_list(os.path.join(ENV, "slicer-5.8.txt"))[1]["numpy"] == "1.26.4"
    assert build_env.read_list(os.path.join(ENV, "slicer-5.10.txt"))[1]["simpleitk"] == "2.5.2"


def test_foreign_imports_are_named():
    """What the driver reports when a module file pulls in a package Slicer does not ship."""
    stdlib = {"os", "json"}
    allowed = {"numpy", "vtkmodules", "vtk"}
    imported = {
        "os",
        "json.decoder",
        "numpy.core",
        "platformdirs",
        "tqdm.auto",
        "CTADefaceLib.models",
        "qt",
        "_io",
        "cython_runtime",
    }
    assert driver.foreign_modules(imported, allowed, stdlib) == ["platformdirs", "tqdm"]


def test_model_cache_is_where_platformdirs_puts_it(monkeypatch, tmp_path):
    """The cache folder is found without platformdirs (not bundled with Slicer), at the same place."""
    import platformdirs  # the test extra installs it (Slicer does not bundle it)

    from CTADefaceLib.models import install

    monkeypatch.delenv("CTADEFACE_HOME", raising=False)
    for xdg in (None, str(tmp_path / "xdg")):
        if xdg:
            monkeypatch.setenv("XDG_CACHE_HOME", xdg)
        else:
            monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        assert install.cache_root() == os.path.abspath(platformdirs.user_cache_dir("ctadeface", appauthor=False))


def test_no_stale_partial_venv_is_used():
    """A half-built venv (.partial) is never what the tier runs in."""
    assert not build_env.venv_dir(os.path.join(ENV, "slicer-5.8.txt")).endswith(".partial")
    assert all(
        not path.endswith(".partial") or not os.path.isfile(os.path.join(path, ".verified"))
        for path in glob.glob(os.path.join(build_env.cache_root(), "slicer-env", "*"))
    )
