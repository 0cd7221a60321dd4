"""What the model needs that this Python lacks, and the pip commands that add it without breaking Slicer.

Slicer ships its own numpy, SimpleITK, requests, ... built for it; a plain `pip install nnunetv2`
would upgrade or replace some of them and can leave Slicer unable to start. So: torch comes from the
PyTorch extension (it picks the right CUDA build), nnunetv2 is installed with --no-deps, and only its
missing dependencies are installed, never the packages Slicer owns.
Nothing here imports the packages it checks (find_spec only), so checking is instant.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from ..errors import DefaceError

#: The nnU-Net releases this code is written and tested against (2.5.1-2.8.1): the installer and pyproject.toml
#: give the same range, so a future nnU-Net with another API is never installed by surprise.
NNUNET_REQUIREMENT = "nnunetv2>=2.5,<2.9"
#: What the newest nnU-Net in that range (2.8.1) states for torch. torch_requirement() reads the installed
#: nnunetv2's own metadata; this is for the first install, when PyTorch must come before nnU-Net.
NNUNET_TORCH_FALLBACK = "!=2.9.*,>=2.1.2"
#: Distributions every nnU-Net run needs, checked even before nnunetv2's own metadata can be read: nnU-Net
#: 2.5.1-2.8.1 imports matplotlib and seaborn (its training logger) whenever it loads a trained model, and the
#: child process (`ctadeface deface`) shows its batch progress with tqdm.
NNUNET_RUNTIME = ("matplotlib", "seaborn", "tqdm")
#: What the child process needs for any engine (the box engine included) besides the core.
CHILD_REQUIREMENTS = ("tqdm",)
#: Packages Slicer ships and owns: never installed or upgraded from here (as SlicerNNUnet does).
#: torch (and torchvision) come from the PyTorch extension, which picks the right CUDA or CPU build.
SLICER_OWNED = ("SimpleITK", "numpy", "requests", "torch", "scipy", "vtk")
#: Needed by the core itself; Slicer has them, a bare Python may not.
CORE_REQUIREMENTS = {"SimpleITK": "SimpleITK", "numpy": "numpy", "scipy": "scipy"}
# A plug-in (the evaluation) states its own requirements and asks check_plugin what is missing of them.


def is_available(import_name: str) -> bool:
    try:
        return importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class DependencyReport:
    missing_torch: bool = False
    missing_core: list[str] = field(default_factory=list)  # pip names of owned packages that are absent
    missing_nnunet: list[str] = field(default_factory=list)  # pip requirements to install
    missing_plugin: list[str] = field(default_factory=list)  # pip requirements of a plug-in (check_plugin)
    missing_plugin_no_deps: list[str] = field(default_factory=list)  # ... of those, installed with --no-deps
    missing_torchvision: bool = False  # MTCNN needs it; it must match torch, so the PyTorch extension installs it
    engine: str = "nnunet"  # what it was checked for: an engine name, or a plug-in's name (check_plugin)
    #: a plug-in's request, kept so that run_install can check it again: {"label", "requirements", "no_deps",
    #: "torchvision"} as passed to check_plugin
    plugin: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not (
            self.missing_torch
            or self.missing_core
            or self.missing_nnunet
            or self.missing_plugin
            or self.missing_plugin_no_deps
            or self.missing_torchvision
        )

    def summary(self) -> str:
        """One or two sentences for the confirmation dialog."""
        if self.complete:
            return "All packages the face model needs are installed."
        parts = []
        if self.missing_torch:
            parts.append("PyTorch")
        if self.missing_nnunet:
            parts.append("nnU-Net v2 (" + ", ".join(self.missing_nnunet) + ")")
        if self.missing_core:
            parts.append(", ".join(self.missing_core))
        if self.missing_torchvision:
            parts.append("torchvision")
        plugin = self.missing_plugin_no_deps + self.missing_plugin
        if plugin:
            parts.append(self.plugin.get("label", self.engine) + " (" + ", ".join(plugin) + ")")
        return (
            "The face model needs Python packages that are not installed yet: "
            + "; ".join(parts)
            + ". Installing them downloads a few hundred MB (PyTorch with GPU support can be several GB)."
        )


def canonical_name(name: str) -> str:
    """PEP 503 normal form: 'scikit_image' and 'Scikit-Image' are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """{canonical distribution name: version} of what this Python has installed (metadata only, no imports)."""
    from importlib import metadata

    importlib.invalidate_caches()  # a pip run in a child process may just have added some
    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(canonical_name(name), dist.version)
    return versions


def _packaging():
    """packaging's Requirement and Version: the standalone package if present, else the copy every pip vendors
    (Slicer's Python always has pip)."""
    try:
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.version import Version
    return Requirement, Version


def _unmet(requirement: str, versions: dict[str, str]) -> bool:
    Requirement, Version = _packaging()
    wanted = Requirement(requirement)
    have = versions.get(canonical_name(wanted.name))
    if have is None:
        return True
    try:
        return not wanted.specifier.contains(Version(have), prereleases=True)
    except ValueError:  # an unparsable local version: present is good enough
        return False


def nnunet_requirements(versions: dict[str, str] | None = None) -> list[str]:
    """nnunetv2's own requirements (with their version specifiers) for this Python, as its installed metadata
    states them, less what Slicer owns; [] when nnunetv2 is not installed."""
    from importlib import metadata

    Requirement, _ = _packaging()
    versions = installed_versions() if versions is None else versions
    if "nnunetv2" not in versions:
        return []
    owned = {canonical_name(n) for n in SLICER_OWNED} | {"torchvision"}
    wanted = []
    for line in metadata.requires("nnunetv2") or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra (dev, intel-macos) or another platform's requirement
        if canonical_name(requirement.name) not in owned:
            requirement.marker = None
            wanted.append(str(requirement))
    return wanted


def torch_requirement() -> str | None:
    """nnunetv2's own torch version specifier (e.g. '!=2.9.*,>=2.1.2'), for the PyTorch extension's
    PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=...), which appends it to
    'torch'. From the installed nnunetv2's metadata, else what the newest nnunetv2 in range states."""
    from importlib import metadata

    Requirement, _ = _packaging()
    try:
        lines = metadata.requires("nnunetv2") or []
    except metadata.PackageNotFoundError:
        return NNUNET_TORCH_FALLBACK
    for line in lines:
        requirement = Requirement(line)
        if canonical_name(requirement.name) == "torch" and (
            requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        ):
            return str(requirement.specifier) or None
    return None


def check(engine: str = "nnunet") -> DependencyReport:
    """What is missing for `engine` (engines other than nnunet need the core and the child's own packages).

    Reads installed metadata only, nothing is imported: checking takes a fraction of a second.
    """
    versions = installed_versions()
    report = DependencyReport(engine=engine)
    report.missing_core = [pip for name, pip in CORE_REQUIREMENTS.items() if not is_available(name)]
    wanted = list(CHILD_REQUIREMENTS)
    if engine == "nnunet":
        report.missing_torch = not is_available("torch")
        wanted = [NNUNET_REQUIREMENT, *NNUNET_RUNTIME, *nnunet_requirements(versions), *wanted]
    seen, missing = set(), []
    for requirement in wanted:
        name = canonical_name(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])
        if name not in seen:
            seen.add(name)
            if _unmet(requirement, versions):
                missing.append(requirement)
    report.missing_nnunet = missing
    return report


def check_plugin(
    name: str, requirements: dict, no_deps: dict | None = None, torchvision: bool = False, label: str | None = None
) -> DependencyReport:
    """What is missing for a plug-in: the core, torch (and torchvision when asked), and the plug-in's own
    requirements ({import name: pip requirement}); those in `no_deps` are installed with --no-deps."""
    no_deps = dict(no_deps or {})
    report = DependencyReport(
        engine=name,
        plugin={
            "label": label or name,
            "requirements": dict(requirements),
            "no_deps": no_deps,
            "torchvision": torchvision,
        },
    )
    report.missing_core = [pip for name, pip in CORE_REQUIREMENTS.items() if not is_available(name)]
    report.missing_torch = not is_available("torch")
    report.missing_torchvision = torchvision and not is_available("torchvision")
    report.missing_plugin_no_deps = [pip for module, pip in no_deps.items() if not is_available(module)]
    report.missing_plugin = [pip for module, pip in requirements.items() if not is_available(module)]
    return report


def owned_constraints() -> list[str]:
    """`name==version` for each Slicer-owned package present: a pip constraints file that keeps them as they are."""
    from importlib import metadata

    pins = []
    for name in SLICER_OWNED:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return pins


#: Python versions on which pip cannot resolve nnunetv2's requirements by itself in reasonable time, and the file
#: of known-good versions (in CTADefaceLib/data/) added to the constraints there. On Python 3.9 (Slicer 5.8) pip
#: backtracks for many minutes until "resolution-too-deep"; with the hints it resolves at once (docs/facts.md).
RESOLVER_HINTS = {(3, 9): "resolver-hints-py39.txt"}


def resolver_hints(python_version: tuple[int, int] | None = None) -> list[str]:
    """Extra `name==version` constraints for `python_version` (default: this Python), usually none."""
    major, minor = (python_version or sys.version_info)[:2]
    version = (major, minor)
    name = RESOLVER_HINTS.get(version)
    if not name:
        return []
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", name)
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def _python_version(python: str) -> tuple[int, int]:
    if python == sys.executable:
        return sys.version_info[:2]
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
        **_hidden_window(),
    ).stdout.split()
    return (int(out[0]), int(out[1])) if len(out) == 2 else (0, 0)


def _hidden_window() -> dict:
    from .child_process import hidden_window_options

    return hidden_window_options()


def pip_commands(
    report: DependencyReport, python: str | None = None, constraints_file: str | None = None
) -> list[list[str]]:
    """argv lists to run in order; torch is not here (the PyTorch extension installs it).

    `constraints_file` (lines from owned_constraints()) stops the dependencies' own requirements from upgrading
    Slicer's packages. nnunetv2 itself goes in with --no-deps (its metadata would pull torch, SimpleITK, numpy,
    requests over Slicer's own); its requirements are read from its metadata afterwards (run_install), so a plan
    made before nnunetv2 is installed holds only the requirements known then.
    """
    python = python or sys.executable
    # --prefer-binary: the newest release that has a wheel for this Python rather than a newer source archive to
    # build (Slicer users have no compiler; on Python 3.9 the newest python-gdcm, pulled by nnunetv2 2.6's
    # dicom2nifti, is source only and fails to build)
    constrain = ["--prefer-binary", *(["-c", constraints_file] if constraints_file else [])]
    commands = []
    if report.missing_core:
        commands.append([python, "-m", "pip", "install", *report.missing_core])
    wanted = list(report.missing_nnunet)
    nnunet = [r for r in wanted if _is_nnunet(r)]
    others = [r for r in wanted if r not in nnunet]
    if nnunet:
        commands.append([python, "-m", "pip", "install", "--no-deps", *nnunet])
    if others:
        commands.append([python, "-m", "pip", "install", *constrain, *others])
    if report.missing_plugin_no_deps:
        commands.append([python, "-m", "pip", "install", "--no-deps", *report.missing_plugin_no_deps])
    if report.missing_plugin:
        commands.append([python, "-m", "pip", "install", *constrain, *report.missing_plugin])
    return commands


def _is_nnunet(requirement: str) -> bool:
    return canonical_name(re.split(r"[<>=!~; \[]", requirement, maxsplit=1)[0]) == "nnunetv2"


def run_install(report: DependencyReport, python: str = sys.executable, log=print) -> DependencyReport:
    """Install what `report` lists, without touching the packages Slicer owns; returns the report after.

    This is what the Slicer widgets call after the user agreed (torch must already be there: it comes from
    the PyTorch extension). Steps: pin Slicer's own packages in a constraints file; install nnunetv2 itself
    with --no-deps; then read ITS metadata and install its requirements, with their version specifiers, under
    the constraints. Raises DefaceError (one sentence) when pip fails. The console window stays hidden on
    Windows. The report after is made for the same engine or plug-in as `report`.
    """
    from .child_process import hidden_window_options

    if report.missing_nnunet and report.missing_torch:
        raise DefaceError("PyTorch must be installed before nnU-Net: install it with the PyTorch extension first.")
    fd, constraints = tempfile.mkstemp(prefix="ctadeface-constraints-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(owned_constraints() + resolver_hints(_python_version(python))) + "\n")
        window = hidden_window_options()
        if report.missing_core:
            _run_pip([python, "-m", "pip", "install", *report.missing_core], log, window)
        first = [r for r in report.missing_nnunet if _is_nnunet(r)]
        rest = [r for r in report.missing_nnunet if not _is_nnunet(r)]
        if first:
            # --no-deps: nnunetv2's metadata would pull torch, SimpleITK, numpy, requests over Slicer's own
            _run_pip([python, "-m", "pip", "install", "--no-deps", *first], log, window)
            # now nnunetv2 is in: what ITS metadata asks for (read in the Python pip installed into), all in one
            # pip run with the rest, so pip resolves them together
            rest += [r for r in _requirements_of_nnunet(python) if r not in rest]
        plan = dataclasses.replace(report, missing_core=[], missing_nnunet=rest)
        for argv in pip_commands(plan, python, constraints):
            _run_pip(argv, log, window)
    finally:
        os.remove(constraints)
    if python != sys.executable:
        return report  # another interpreter's state cannot be read from here; its own check() tells
    if report.plugin:
        return check_plugin(
            report.engine,
            report.plugin["requirements"],
            report.plugin["no_deps"],
            report.plugin["torchvision"],
            report.plugin["label"],
        )
    return check(report.engine)


def _requirements_of_nnunet(python: str) -> list[str]:
    """nnunetv2's unmet requirements in `python` (this interpreter, or another one: asked in a child)."""
    if python == sys.executable:
        versions = installed_versions()
        return [r for r in nnunet_requirements(versions) if _unmet(r, versions)]
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from CTADefaceLib.slicer import installer as d; "
        "v = d.installed_versions(); print(json.dumps([r for r in d.nnunet_requirements(v) if d._unmet(r, v)]))"
    )
    import json

    library_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds CTADefaceLib
    done = subprocess.run([python, "-c", code, library_parent], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DefaceError(f"Could not read nnU-Net's requirements in {python}: {_last_line(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_pip(argv: list[str], log, window: dict) -> None:
    log(" ".join(argv))
    done = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        check=False,
        **window,
    )
    for line in done.stdout.splitlines():
        log(line)
    if done.returncode != 0:
        raise DefaceError(
            f"Installing the Python packages failed (pip exit status {done.returncode}): {_last_line(done.stdout)}"
        )


def _last_line(text: str) -> str:
    """pip's own explanation: its last 'ERROR:' line, else its last line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]


def torch_install_hint() -> str:
    return (
        "PyTorch is missing. Install the 'PyTorch' extension from the Extensions Manager (it picks the right "
        "CUDA or CPU build), restart Slicer, and try again."
    )


def restart_needed(before: DependencyReport, after: DependencyReport) -> bool:
    """A package that was imported before installation (none of ours is) or torch needs a fresh Slicer."""
    return before.missing_torch and not after.missing_torch and "torch" in sys.modules
