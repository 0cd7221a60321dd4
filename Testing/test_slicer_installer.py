"""The first-use installer (CTADefaceLib/slicer/installer.py) against real Pythons and real pip.

The full install into a Python holding Slicer's own package versions runs with `make test-slicer-full`
(Testing/slicer_env/full_run.sh); these are the fast parts.
"""

import glob
import json
import os
import subprocess
import sys
import tempfile

import pytest

from CTADefaceLib.errors import DefaceError
from CTADefaceLib.slicer import installer as dependencies

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIP_CACHE = os.path.expanduser("~/.cache/ctadeface-ci/pip")


def test_pyproject_and_installer_give_nnunet_the_same_bounds():
    import tomllib

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    nnunet = [r for r in project["optional-dependencies"]["nnunet"] if r.startswith("nnunetv2")]
    assert nnunet == [dependencies.NNUNET_REQUIREMENT]
    assert "<" in dependencies.NNUNET_REQUIREMENT  # an upper bound: a future nnU-Net API is never installed unasked
    # Slicer ships no platformdirs: the core must not need it
    assert not any(r.startswith("platformdirs") for r in project["dependencies"])


def _pip_install_alone(target, requirement):
    """pip installs `requirement` and pip itself into the folder `target`, without their dependencies."""
    argv = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    return subprocess.run(argv + ["--cache-dir", PIP_CACHE, requirement, "pip"], capture_output=True, text=True)


@pytest.fixture(scope="module")
def bare_python_with_nnunet(tmp_path_factory):
    """A Python that has only nnunetv2 (installed --no-deps, as the installer's first step does) and pip."""
    target = tmp_path_factory.mktemp("site")
    done = _pip_install_alone(target, "nnunetv2==2.8.1")
    if done.returncode != 0:
        pytest.skip(f"pip could not fetch nnunetv2 2.8.1: {done.stdout[-300:]}{done.stderr[-300:]}")
    return str(target)


def _in_bare_python(site: str, code: str):
    """Run `code` in this interpreter without its site-packages: only `site` and the library are importable."""
    prelude = f"import sys; sys.path[:0] = [{site!r}, {os.path.join(REPO, 'CTADeface')!r}]; "
    done = subprocess.run([sys.executable, "-S", "-c", prelude + code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_check_reports_what_nnunet_loads_a_model_with(bare_python_with_nnunet):
    report = _in_bare_python(
        bare_python_with_nnunet,
        (
            "import json, dataclasses; from CTADefaceLib.slicer import installer as d; "
            "print(json.dumps({'nnunet': dataclasses.asdict(d.check('nnunet')), "
            "'box': dataclasses.asdict(d.check('box')),"
            " 'torch': d.torch_requirement()}))"
        ),
    )
    missing = report["nnunet"]["missing_nnunet"]
    names = {dependencies.canonical_name(m.split("<")[0].split(">")[0].split("=")[0].split("!")[0]) for m in missing}
    # nnU-Net imports matplotlib and seaborn whenever it loads a model; the child needs tqdm
    assert {"matplotlib", "seaborn", "tqdm"} <= names
    # nnunetv2 itself is there and in range; its own requirements come with its own specifiers
    assert "nnunetv2" not in names
    assert "acvl-utils<0.3,>=0.2.6" in missing and "dynamic-network-architectures<0.5,>=0.4.4" in missing
    # never what Slicer owns, never an extra's requirement
    assert not names & {"torch", "numpy", "simpleitk", "requests", "scipy", "vtk", "pre-commit"}
    assert report["nnunet"]["missing_torch"] and report["nnunet"]["missing_core"]
    assert report["box"]["missing_nnunet"] == ["tqdm"]  # the box engine's child prints progress with tqdm
    assert report["torch"] == "!=2.9.*,>=2.1.2"  # nnunetv2 2.8.1's own torch specifier, for PyTorchUtils


def test_installed_nnunet_out_of_range_is_reported(tmp_path):
    site = tmp_path / "site"
    done = _pip_install_alone(site, "nnunetv2==2.4.2")
    if done.returncode != 0:
        pytest.skip("pip could not fetch nnunetv2 2.4.2")
    report = _in_bare_python(
        str(site),
        "import json; from CTADefaceLib.slicer import installer as d; "
        "print(json.dumps(d.check('nnunet').missing_nnunet))",
    )
    assert dependencies.NNUNET_REQUIREMENT in report


def test_pip_plan_installs_nnunet_without_its_dependencies_and_the_rest_constrained():
    report = dependencies.DependencyReport(missing_nnunet=["nnunetv2>=2.5,<2.9", "matplotlib", "acvl-utils<0.3"])
    commands = dependencies.pip_commands(report, "/slicer/python", "/tmp/c.txt")
    assert commands == [
        ["/slicer/python", "-m", "pip", "install", "--no-deps", "nnunetv2>=2.5,<2.9"],
        [
            "/slicer/python",
            "-m",
            "pip",
            "install",
            "--prefer-binary",
            "-c",
            "/tmp/c.txt",
            "matplotlib",
            "acvl-utils<0.3",
        ],
    ]


@pytest.mark.slow  # a fresh venv and a real pip resolution: over 10 s
def test_run_install_failure_is_one_sentence_and_leaves_no_constraints_file(tmp_path):
    """Real pip in a real venv: an unsatisfiable requirement fails; the constraints file is removed."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "ctadeface-constraints-*")))
    report = dependencies.DependencyReport(missing_nnunet=["tqdm>=999"])
    lines = []
    with pytest.raises(DefaceError) as failure:
        dependencies.run_install(report, python=python, log=lines.append)
    message = str(failure.value)
    assert message.startswith("Installing the Python packages failed") and "\n" not in message
    assert "tqdm>=999" in message
    assert any("pip install" in line for line in lines)  # the commands are logged
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "ctadeface-constraints-*"))) == before


def test_run_install_refuses_nnunet_before_torch():
    report = dependencies.DependencyReport(missing_torch=True, missing_nnunet=["nnunetv2>=2.5,<2.9"])
    with pytest.raises(DefaceError, match="PyTorch must be installed before nnU-Net"):
        dependencies.run_install(report, python="/no/such/python")


def test_python39_resolver_hints_pin_nothing_slicer_owns():
    """Slicer 5.8's Python 3.9 gets known-good versions (pip alone backtracks for minutes and gives up there);
    they never pin a package Slicer owns or torch, and other Pythons get none."""
    from CTADefaceLib.slicer import installer as dependencies

    hints = dependencies.resolver_hints((3, 9))
    names = {dependencies.canonical_name(h.split("==")[0]) for h in hints}
    assert len(hints) > 20 and all("==" in h for h in hints)
    assert {"nnunetv2", "matplotlib", "seaborn", "tqdm"} - names == {"nnunetv2"}
    owned = {dependencies.canonical_name(n) for n in dependencies.SLICER_OWNED} | {"torch"}
    assert not names & owned
    assert dependencies.resolver_hints((3, 12)) == [] and dependencies.resolver_hints((3, 11)) == []
