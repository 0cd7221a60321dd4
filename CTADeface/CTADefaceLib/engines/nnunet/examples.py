"""Runnable examples of the nnU-Net engine's three parts (see README.md beside this file).

    python -m CTADefaceLib.engines.nnunet.examples [--model NAME_OR_FOLDER] [--device cpu]

With no --model, the project's synthetic test model (trained on phantoms only, shipped inside the package) is
installed into the model cache if needed, without the network, and run on the bundled synthetic head CTA.
Each example prints what it did; none writes anything but the model cache.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import SimpleITK as sitk


def sample_image() -> sitk.Image:
    """The bundled synthetic head CTA, in the engine's canonical orientation (LPS), as the pipeline hands it over."""
    from ...io.volume import read_image, to_canonical
    from ...models.bundled import SAMPLE_IMAGE

    return to_canonical(read_image(SAMPLE_IMAGE))


def the_engine(model: str, device: str) -> None:
    """1. The engine as the pipeline uses it: image in, mask on the same grid out; describe() for the sidecar."""
    import numpy as np
    import SimpleITK as sitk

    from . import engine

    image = sample_image()
    nnunet = engine.NnUNetEngine(model=model, device=device)
    mask = nnunet.predict(image)
    described = nnunet.describe()
    voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    print(
        f"engine: {voxels} face voxels on the {image.GetSize()} grid; {described['tiles']} tiles in "
        f"{described['rounds']} round(s) on {described['device']}"
    )


def the_region(model: str, device: str) -> None:
    """2. The region planner alone: where the face can be, and the tiles of the first round (no network runs)."""
    from . import engine, region

    image = sample_image()
    nnunet = engine.NnUNetEngine(model=model, device=device)
    tile = nnunet._load().tile_size_in_input(list(image.GetSpacing())[::-1])
    plan = region.plan_face_tiles(image, tile, grow=True)
    if plan.whole_volume:
        print(f"region: no head found ({plan.reason}); the engine would run on the whole volume")
        return
    print(
        f"region: tiles of {plan.tile} voxels; {plan.n_tiles} in the first round, {plan.reach_tiles} would cover "
        f"every candidate voxel; nose tip at voxel {plan.nose_tip_index}"
    )


def the_tiled_predictor(model: str, device: str) -> None:
    """3. The tiled predictor, round by round: prepare once, then each call runs only the tiles it has not run."""
    import numpy as np
    import SimpleITK as sitk

    from . import engine, region

    image = sample_image()
    predictor = engine.NnUNetEngine(model=model, device=device)._load()
    spacing = list(image.GetSpacing())[::-1]
    plan = region.plan_face_tiles(image, predictor.tile_size_in_input(spacing), grow=True)
    if plan.whole_volume:
        print("tiled predictor: no head found; nothing to show")
        return
    array = sitk.GetArrayFromImage(image)
    box = plan.box_slices()
    prepared = predictor.prepare(array[box].astype(np.float32)[None], {"spacing": spacing})
    face = np.zeros(array.shape, bool)
    while True:
        starts = [tuple(s - b.start for s, b in zip(start, box)) for start in plan.starts]
        face[box] = predictor.predict_prepared(prepared, starts, plan.tile) == 1
        print(f"tiled predictor: round {plan.rounds}, {predictor.last_tile_count} tiles, {int(face.sum())} face voxels")
        if not region.next_tiles(plan, face):
            break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a registered model name or a results folder")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    args = parser.parse_args(argv)
    model = args.model
    if model is None:
        from ...models.bundled import SYNTHETIC_NAME
        from ...models.install import install, is_installed

        if not is_installed(SYNTHETIC_NAME):
            install(SYNTHETIC_NAME, progress=False)  # from the zip inside the package: no network
        model = SYNTHETIC_NAME
    for example in (the_engine, the_region, the_tiled_predictor):
        example(model, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
