"""The CTA-DEFACE engine: nnU-Net v2's own predictor, in process, on a SimpleITK image.

No temporary `_0000.nii.gz` files and no subprocess: the image array goes straight into
`nnUNetPredictor.predict_single_npy_array` with its spacing, as nnU-Net's SimpleITK reader
would have given it (axes z, y, x; spacing reversed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
from typing import TYPE_CHECKING

from ...errors import DefaceError, ModelError
from ...settings import DEVICES  # defined once, in settings.py
from ..base import Engine

if TYPE_CHECKING:
    import numpy as np
    import SimpleITK as sitk

    from .region import TilePlan
    from .tiled_predictor import TiledPredictor

log = logging.getLogger(__name__)


def resolve_device(requested: str = "auto") -> str:
    """auto -> cuda, then mps, then cpu; an explicit device that is absent is a user error."""
    import torch

    requested = (requested or "auto").lower()
    if requested not in DEVICES:
        raise DefaceError(f"--device must be one of {', '.join(DEVICES)}, not '{requested}'.")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        raise DefaceError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto.")
    if requested == "mps" and not mps:
        raise DefaceError("--device mps was asked for, but this PyTorch has no Apple GPU support; use --device cpu.")
    return requested


class NnUNetEngine(Engine):
    """Face mask from an nnU-Net v2 results folder (the official CTA-DEFACE model or any compatible one)."""

    name = "nnunet"

    def __init__(
        self,
        model: str = "cta-deface",
        device: str = "auto",
        mirroring: bool = False,
        tile_step: float = 0.5,
        folds: tuple[str, ...] | None = None,
        threads: int | None = None,
        label: int = 1,
        roi: bool = True,
        grow: bool | None = None,
    ) -> None:
        from ...models.install import installed_results_folder, is_registered, sha256_once

        self.results_folder, self.entry = installed_results_folder(model)
        self.model_name = self.entry.name if self.entry else os.path.abspath(model)
        self.folds = tuple(folds) if folds else (self.entry.folds if self.entry else self._folds_on_disk())
        checkpoints = [os.path.join(self.results_folder, f"fold_{f}", "checkpoint_final.pth") for f in self.folds]
        for checkpoint in checkpoints:
            if not os.path.isfile(checkpoint):
                raise ModelError(f"The model has no {checkpoint}.")
        # The sha256 of the file that is loaded, not the registered one (hashed once per process).
        self.model_sha256 = sha256_once(checkpoints[0])
        # Only the registry's own models, whose every file installed_results_folder just checked against the
        # registered sha256, are loaded as nnU-Net loads them (plain pickle); any other checkpoint could run
        # code when unpickled, so it is loaded with PyTorch's restricted unpickler (models/checkpoint.py).
        entry = self.entry if self.entry is not None and is_registered(self.entry) else None
        verified = {f.path for f in entry.files} if entry is not None else ()
        self.trusted = (
            entry is not None
            and bool(verified)
            and all(f"{entry.results_folder}/fold_{f}/checkpoint_final.pth" in verified for f in self.folds)
        )
        if not self.trusted:
            from ...models.checkpoint import check_untrusted_model

            check_untrusted_model(self.results_folder, checkpoints)
        if not 0 < tile_step <= 1:
            raise DefaceError(f"The tile step must be in (0, 1], not {tile_step}.")
        self.requested_device = device
        self.device = resolve_device(device)
        self.mirroring = bool(mirroring)
        self.tile_step = float(tile_step)
        self.threads = threads
        self.label = label
        # roi: run the network only on tiles that cover where the face can be (region.py);
        # tile_step then applies only when no head is found and the whole volume runs.
        self.roi = bool(roi)
        # grow: start with the tiles of an upright face and add tiles where the predicted face goes on
        # (next_tiles); without it every tile of the candidate region runs at once. None = by device:
        # on a CPU a tile costs seconds, and growing runs far fewer tiles than the whole candidate region; on a
        # GPU a tile costs milliseconds, and each extra round (aggregation and export) costs more than the
        # tiles it saves (both measured by Testing/benchmarks/speed.py --compare).
        self.grow_requested = grow
        self.grow = self._grows_on(self.device)
        self.last_plan: TilePlan | None = None
        self.last_tiles: int | None = None
        self._predictor: TiledPredictor | None = None

    def _grows_on(self, device: str) -> bool:
        return (device == "cpu") if self.grow_requested is None else bool(self.grow_requested)

    def _folds_on_disk(self) -> tuple[str, ...]:
        folds = sorted(
            n[len("fold_") :]
            for n in os.listdir(self.results_folder)
            if n.startswith("fold_") and os.path.isfile(os.path.join(self.results_folder, n, "checkpoint_final.pth"))
        )
        if not folds:
            raise ModelError(f"{self.results_folder} has no fold_*/checkpoint_final.pth.")
        return ("all",) if "all" in folds else tuple(folds)

    def _load(self) -> TiledPredictor:
        import torch

        from .tiled_predictor import TiledPredictor

        if self.device == "cpu":
            torch.set_num_threads(self.threads or os.cpu_count() or 1)
        with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net prints a CPU notice unconditionally
            predictor = TiledPredictor(
                tile_step_size=self.tile_step,
                use_gaussian=True,
                use_mirroring=self.mirroring,
                perform_everything_on_device=self.device != "cpu",
                device=torch.device(self.device),
                verbose=False,
                verbose_preprocessing=False,
                allow_tqdm=False,
            )
        folds = tuple(int(f) if f.isdigit() else f for f in self.folds)
        from ...models.checkpoint import weights_only_loading

        with contextlib.nullcontext() if self.trusted else weights_only_loading():
            predictor.initialize_from_trained_model_folder(
                self.results_folder, use_folds=folds, checkpoint_name="checkpoint_final.pth"
            )
        self._predictor = predictor
        return predictor

    def predict(self, image: sitk.Image) -> sitk.Image:
        import numpy as np
        import SimpleITK as sitk
        import torch

        array = sitk.GetArrayViewFromImage(image)  # (z, y, x), no copy: only the part the network sees is copied
        spacing = list(image.GetSpacing())[::-1]
        try:
            face = self._predict_with_safety_net(image, array, spacing)
        except torch.cuda.OutOfMemoryError:
            self._fall_back_to_cpu()
            face = self._predict_with_safety_net(image, array, spacing)
        assert self._predictor is not None  # _predict_with_safety_net loaded it
        self.last_tiles = self._predictor.last_tile_count
        mask = sitk.GetImageFromArray(face.astype(np.uint8))
        mask.CopyInformation(image)
        return mask

    def _predict_with_safety_net(self, image: sitk.Image, array: np.ndarray, spacing: list[float]) -> np.ndarray:
        """Plan the face region, predict it, and predict again on a wider plan when the face reaches its edge."""
        predictor = self._predictor or self._load()
        plan = self.last_plan = self._plan(image, predictor, spacing)
        face = self._predict_rounds(predictor, array, spacing, plan)
        wider = self.wider_plan(plan, face, spacing)
        if wider is not None:
            self.last_plan = wider
            face = self._predict_rounds(predictor, array, spacing, wider)
        return face

    def _plan(self, image: sitk.Image, predictor: TiledPredictor, spacing: list[float]) -> TilePlan | None:
        """The tiles to run (region.TilePlan), or None for the whole volume (roi off)."""
        if not self.roi:
            return None
        from .region import plan_face_tiles

        plan = plan_face_tiles(image, predictor.tile_size_in_input(spacing), grow=self.grow)
        if plan.whole_volume:
            log.warning(
                "Warning: no head found for the face region (%s); running the model on the whole volume.", plan.reason
            )
        return plan

    def _predict_rounds(
        self, predictor: TiledPredictor, array: np.ndarray, spacing: list[float], plan: TilePlan | None
    ) -> np.ndarray:
        """The face (bool, z, y, x): the whole volume, or the plan's tiles, then more tiles while `next_tiles`
        finds the predicted face running into the edge of the tiles run (one round when not growing)."""
        import numpy as np
        import torch

        properties = {"spacing": spacing}
        with torch.inference_mode():
            if plan is None or plan.whole_volume:
                data: np.ndarray = array.astype(np.float32)[None]  # (c=1, z, y, x)
                return np.asarray(predictor.predict_single_npy_array(data, properties)) == self.label
            box = plan.box_slices()
            prepared = predictor.prepare(array[box].astype(np.float32)[None], properties)
            face = np.zeros(array.shape, bool)
            while True:
                starts = [tuple(s - b.start for s, b in zip(start, box)) for start in plan.starts]
                face[box] = predictor.predict_prepared(prepared, starts, plan.tile) == self.label
                added = self.next_tiles(plan, face) if self.grow else []
                if not added:
                    return face
                log.info("The face goes on beyond the tiles run: %d more tiles (round %d).", len(added), plan.rounds)

    def next_tiles(self, plan: TilePlan, face: np.ndarray) -> list:
        """The growth strategy: tiles to add to `plan` (which it records) where `face` goes on; [] when done."""
        from .region import next_tiles

        return next_tiles(plan, face)

    def wider_plan(self, plan: TilePlan | None, face: np.ndarray, spacing: list[float]) -> TilePlan | None:
        """The safety net: a wider plan when the face runs into the edge of the region the network saw, so it may
        go on outside it (an unusual pose or device misled the region finder); None when the face is inside.
        Never leave face behind: when growing, follow the face beyond the region's limits; else the whole volume."""
        if plan is None or plan.whole_volume:
            return None
        from .region import reaches_tile_border, widen

        if not reaches_tile_border(plan, face, spacing):
            return None
        if self.grow and plan.shell is not None:
            log.warning("Warning: the face reaches the edge of the face region; following it beyond (slower).")
            return widen(plan)
        log.warning(
            "Warning: the face reaches the edge of the face region; running the model on the "
            "whole volume to be sure nothing is left (slower)."
        )
        return dataclasses.replace(plan, whole_volume=True, reason="face reached the region's edge")

    def _fall_back_to_cpu(self) -> None:
        """After a GPU out-of-memory: drop the GPU predictor, and plan and grow as on a CPU from now on."""
        import torch

        log.warning("Warning: the GPU ran out of memory; running this case on the CPU instead (slower).")
        self._predictor = None
        torch.cuda.empty_cache()
        self.device = "cpu"
        self.grow = self._grows_on("cpu")

    def describe(self) -> dict:
        return {
            "engine": self.name,
            "model": self.model_name,
            "model_sha256": self.model_sha256,
            "model_folder": self.results_folder,
            "device": self.device,
            "folds": list(self.folds),
            "mirroring": self.mirroring,
            "tile_step": self.tile_step,
            "roi": self.roi,
            "roi_grow": self.grow,
            "tiles": self.last_tiles,
            "rounds": self.last_plan.rounds if self.last_plan is not None and not self.last_plan.whole_volume else None,
        }
