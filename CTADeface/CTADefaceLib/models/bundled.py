"""The synthetic test/demo model that ships inside the package (trained on phantoms only).

Its zip and a manifest (files, sizes, sha256) lie in CTADefaceLib/data/; the manifest is written
by Testing/train_synthetic_model.py when the model is rebuilt.
"""

from __future__ import annotations

import json
import os

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
SYNTHETIC_NAME = "synthetic-test"
SYNTHETIC_ZIP = os.path.join(DATA_DIR, "synthetic-face-model.zip")
SYNTHETIC_MANIFEST = os.path.join(DATA_DIR, "synthetic-face-model.json")
SAMPLE_IMAGE = os.path.join(DATA_DIR, "sample_phantom.nii.gz")


def entry_from_manifest(name: str, title: str, zip_path: str, manifest_path: str, **fields):
    """A ModelEntry for a zipped model whose manifest (files, sizes, sha256) Testing/train_synthetic_model.py
    wrote; None when either file is missing."""
    from .registry import ModelEntry, ModelFile

    if not (os.path.isfile(manifest_path) and os.path.isfile(zip_path)):
        return None
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    return ModelEntry(
        name=name,
        title=title,
        dataset=manifest["dataset"],
        files=tuple(ModelFile(f["path"], f["size"], f["sha256"]) for f in manifest["files"]),
        bundled=zip_path,
        notes=manifest.get("notes", ""),
        **fields,
    )


def synthetic_model_entry():
    return entry_from_manifest(
        SYNTHETIC_NAME,
        "Synthetic test model: trained on this project's phantoms only - NOT FOR CLINICAL USE",
        SYNTHETIC_ZIP,
        SYNTHETIC_MANIFEST,
        licence="Apache-2.0, part of this project; trained on synthetic data only, never for clinical use.",
        clinical=False,
    )
