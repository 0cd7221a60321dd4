"""What models exist: names, files, sizes, sha256 checksums and where to get them.

A model is an nnU-Net v2 results folder
(`<DatasetNNN_Name>/nnUNetTrainer__nnUNetPlans__3d_fullres/{dataset.json, plans.json, fold_all/...}`).
The registry never holds weights: the official ones are downloaded by the user, the project's own
synthetic test model ships inside the package (it is trained on phantoms, never for clinical use).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ModelError

RESULTS_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to the model's root (the folder that holds DatasetNNN_Name/)
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelEntry:
    name: str
    title: str
    dataset: str  # DatasetNNN_Name
    files: tuple[ModelFile, ...]
    mirrors: tuple[str, ...] = ()  # base URLs: a file's URL is mirror + "/" + file.path
    licence: str = ""
    clinical: bool = False
    bundled: str | None = None  # a zip inside the package, for the synthetic test model
    folds: tuple[str, ...] = ("all",)
    checkpoint: str = "checkpoint_final.pth"
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def results_folder(self) -> str:
        """Path of the nnU-Net results folder relative to the model root."""
        return f"{self.dataset}/{RESULTS_FOLDER}"

    @property
    def checkpoint_file(self) -> ModelFile:
        wanted = f"{self.results_folder}/fold_{self.folds[0]}/{self.checkpoint}"
        return next(f for f in self.files if f.path == wanted)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


_OFFICIAL_FILES = (
    ModelFile(
        "Dataset001_DEFACE/nnUNetTrainer__nnUNetPlans__3d_fullres/dataset.json",
        170,
        "6723dac4952223273ebaeae812543350a2a77412ead02d9b12157600199265dc",
    ),
    ModelFile(
        "Dataset001_DEFACE/nnUNetTrainer__nnUNetPlans__3d_fullres/plans.json",
        11420,
        "f846656355b983726e566b43223ee491dd2eba632931ba710dcad0a24dc07654",
    ),
    ModelFile(
        "Dataset001_DEFACE/nnUNetTrainer__nnUNetPlans__3d_fullres/dataset_fingerprint.json",
        16544,
        "db21a49426cd32e5c7ced3e6cb2fa45b863e3a4b966afc48e9f8abafaa923d9f",
    ),
    ModelFile(
        "Dataset001_DEFACE/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_all/checkpoint_final.pth",
        250036859,
        "265afd7a1592cd4c43d093b40aa7fbe231a759ab900bba45a84798dfea90e1e5",
    ),
)

OFFICIAL = ModelEntry(
    name="cta-deface",
    title="CTA-DEFACE (Mahmutoglu et al., Eur Radiol Exp 2024), nnU-Net v2 3d_fullres, fold all",
    dataset="Dataset001_DEFACE",
    files=_OFFICIAL_FILES,
    mirrors=(
        # Git LFS media of the public repositories that carry the model (same files, same checksums).
        "https://media.githubusercontent.com/media/rapmed/CTA-deface/main/model",
        "https://media.githubusercontent.com/media/CCI-Bonn/CTA-DEFACE/main/model",
        "https://media.githubusercontent.com/media/neuroAI-HD/CTA-DEFACE/main/model",
    ),
    licence=(
        "The upstream repository has no licence file: the weights are not redistributed with this "
        "project; you download them yourself from the authors' repository. Research use; check with "
        "the authors before any other use."
    ),
    clinical=False,
)


def _synthetic_entry() -> ModelEntry | None:
    """The project's own small model, trained on synthetic phantoms; its manifest ships beside it."""
    from .bundled import synthetic_model_entry

    return synthetic_model_entry()


def registry() -> dict[str, ModelEntry]:
    entries = {OFFICIAL.name: OFFICIAL}
    synthetic = _synthetic_entry()
    if synthetic is not None:
        entries[synthetic.name] = synthetic
    return entries


def get_entry(name: str) -> ModelEntry:
    entries = registry()
    if name not in entries:
        raise ModelError(
            f"Unknown model '{name}'; known models: {', '.join(sorted(entries))} "
            "(or give the path of an nnU-Net v2 results folder)."
        )
    return entries[name]


def is_model_folder(path: str) -> bool:
    """A user-supplied nnU-Net v2 results folder: has plans.json, dataset.json and a fold folder."""
    return (
        os.path.isdir(path)
        and os.path.isfile(os.path.join(path, "plans.json"))
        and os.path.isfile(os.path.join(path, "dataset.json"))
        and any(n.startswith("fold_") for n in os.listdir(path))
    )
