"""The tiling test model: a small nnU-Net trained on the phantoms with a 64^3 patch (128 mm at 2 mm).

The bundled `synthetic-test` model's patch (256 mm) holds a whole small phantom, so with it the face
region's tiles are never put to the test: one tile does everything. This model's patch is about 60% of
a head, so a head needs several tiles, as a CTA does with the official model's 128^3 patch, and the
fast path's tile choice and growth rounds meet a real network. Test data only (Testing/data/), never
installed with the package; rebuilt by Testing/train_synthetic_model.py (its docstring has the command).
"""

from __future__ import annotations

import os

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
ZIP = os.path.join(DATA, "synthetic-tiles-model.zip")
MANIFEST = os.path.join(DATA, "synthetic-tiles-model.json")


def extract_tiles_model(destination: str) -> str:
    """Unzip the model into `destination` (checking every file's sha256); returns its results folder."""
    from CTADefaceLib.models.bundled import entry_from_manifest
    from CTADefaceLib.models.install import unpack_verified

    entry = entry_from_manifest("synthetic-tiles-test", "Tiling test model (phantoms only, tests only)", ZIP, MANIFEST)
    return unpack_verified(ZIP, destination, entry)


def pad_before(image, shift: int = 16):
    """`image` with `shift` voxels of air (-1024 HU) added before its first voxel on every axis, same spacing and
    direction: nnU-Net's tile grid then falls `shift` voxels further into the anatomy. Crop a mask predicted on
    it with [shift:, shift:, shift:] to compare it with one predicted on `image`."""
    import numpy as np
    import SimpleITK as sitk

    padded = sitk.GetImageFromArray(np.pad(sitk.GetArrayFromImage(image), ((shift, 0),) * 3, constant_values=-1024))
    padded.SetSpacing(image.GetSpacing())
    padded.SetDirection(image.GetDirection())
    return padded
