"""The tiling test model: a small nnU-Net trained on the phantoms with a 64^3 patch (128 mm at 2 mm).

The bundled `synthetic-test` model's patch (256 mm) holds a whole small phantom, so with it the face
region's tiles are never put to the test: one tile does everything. This model's patch is about 60% of
a head, so a head needs several tiles, as a CTA does with the official model's 128^3 patch, and the
fast path's tile choice and growth rounds meet a real network. Test data only (Testing/data/), never
installed with the package; rebuilt by Testing/train_synthetic_model.py (its docstring has the command).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
ZIP = os.path.join(DATA, "synthetic-tiles-model.zip")
MANIFEST = os.path.join(DATA, "synthetic-tiles-model.json")


def extract_tiles_model(destination: str) -> str:
    """Unzip the model into `destination` (checking every file's sha256); returns its results folder."""
    with open(MANIFEST, encoding="utf-8") as handle:
        manifest = json.load(handle)
    with zipfile.ZipFile(ZIP) as archive:
        for entry in manifest["files"]:
            data = archive.read(entry["path"])
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise RuntimeError(f"{ZIP}: {entry['path']} does not match its manifest")
            target = os.path.join(destination, entry["path"])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)
    return os.path.dirname(os.path.dirname(os.path.join(destination, manifest["files"][-1]["path"])))
