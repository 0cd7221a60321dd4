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


def synthetic_model_entry():
    from .registry import ModelEntry, ModelFile

    if not (os.path.isfile(SYNTHETIC_MANIFEST) and os.path.isfile(SYNTHETIC_ZIP)):
        return None
    with open(SYNTHETIC_MANIFEST, encoding="utf-8") as handle:
        manifest = json.load(handle)
    return ModelEntry(
        name=SYNTHETIC_NAME,
        title="Synthetic test model: trained on this project's phantoms only - NOT FOR CLINICAL USE",
        dataset=manifest["dataset"],
        files=tuple(ModelFile(f["path"], f["size"], f["sha256"]) for f in manifest["files"]),
        licence="Apache-2.0, part of this project; trained on synthetic data only, never for clinical use.",
        clinical=False,
        bundled=SYNTHETIC_ZIP,
        notes=manifest.get("notes", ""),
    )
