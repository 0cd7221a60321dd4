"""Make the README's pictures from the bundled sample phantom (no patient data, no Slicer needed).

    python Resources/make_figures.py            # writes Resources/Screenshots/*.png

- before_after.png: anterior CT-Muscle renderings of a 1 mm phantom (seed 4242, the bundled sample's
  anatomy at the "medium" resolution: at 2 mm the rendered skin is too coarse for MTCNN) before and
  after defacing with the bundled synthetic test model, with the MTCNN face probability of each,
  plus sagittal slices.
- CTADeface.png: a walkthrough of the Slicer module's steps (load, Deface -> "Face" segment,
  Apply defacing) drawn from the same data; the Slicer application itself is not available here.
"""

from __future__ import annotations

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, "CTADeface"), os.path.join(REPO, "CTADefaceEval")]


def main() -> int:
    import torch  # noqa: F401  (before any VTK render: see docs/facts.md)
    import torchvision  # noqa: F401

    os.environ.setdefault("CTADEFACE_HOME", tempfile.mkdtemp(prefix="ctadeface-figures-"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk

    from CTADefaceEvalLib.faces import detect_face
    from CTADefaceEvalLib.render import render_anterior
    from CTADefaceLib.io.volume import to_canonical
    from CTADefaceLib.models.bundled import SYNTHETIC_NAME
    from CTADefaceLib.models.install import install, is_installed
    from CTADefaceLib.pipeline import DefaceSettings, deface_image
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    if not is_installed(SYNTHETIC_NAME):
        install(SYNTHETIC_NAME, progress=False)
    image = make_phantom(PhantomSpec.random(4242, size="medium")).image
    result = deface_image(image, DefaceSettings(model=SYNTHETIC_NAME, device="cpu"))
    before, after = render_anterior(image, size=512), render_anterior(result.defaced, size=512)
    p_before, p_after = detect_face(before).probability, detect_face(after).probability

    canonical = sitk.GetArrayFromImage(to_canonical(image))
    defaced = sitk.GetArrayFromImage(to_canonical(result.defaced))
    mask = sitk.GetArrayFromImage(to_canonical(result.mask))
    mid_x = canonical.shape[2] // 2

    def sagittal(array):  # rows = superior at top, columns = anterior at left
        return array[::-1, :, mid_x]

    out = os.path.join(HERE, "Screenshots")
    os.makedirs(out, exist_ok=True)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6))
    for ax, picture, title in (
        (axes[0], before, f"before: MTCNN face p = {p_before:.2f}"),
        (axes[1], after, f"after: MTCNN face p = {p_after:.2f}"),
    ):
        ax.imshow(picture)
        ax.set_title(title)
    axes[2].imshow(sagittal(canonical), cmap="gray", vmin=-200, vmax=400, aspect="equal")
    axes[2].contour(sagittal(mask), levels=[0.5], colors="red", linewidths=1)
    axes[2].set_title(f"face mask ({result.provenance['mask_volume_ml']:.0f} ml)")
    axes[3].imshow(sagittal(defaced), cmap="gray", vmin=-200, vmax=400, aspect="equal")
    axes[3].set_title(f"defaced (filled with p10 = {result.provenance['fill_value']:.0f} HU)")
    for ax in axes:
        ax.axis("off")
    fig.suptitle("Synthetic phantom defaced with the synthetic test model (not a patient; not the clinical model)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "before_after.png"), dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2))
    mid_z = int(np.argmax(mask.sum(axis=(1, 2))))
    axes[0].imshow(canonical[mid_z], cmap="gray", vmin=-200, vmax=400)
    axes[0].set_title("1. Select the CTA, press Deface")
    axes[1].imshow(canonical[mid_z], cmap="gray", vmin=-200, vmax=400)
    overlay = np.ma.masked_where(mask[mid_z] == 0, mask[mid_z])
    axes[1].imshow(overlay, cmap="autumn", alpha=0.55, vmin=0, vmax=1)
    axes[1].set_title('2. Segment "Face": correct it in Segment Editor')
    axes[2].imshow(defaced[mid_z], cmap="gray", vmin=-200, vmax=400)
    axes[2].set_title("3. Apply defacing -> new volume; Export")
    for ax in axes:
        ax.axis("off")
    fig.suptitle("CTADeface module workflow (axial slice of phantom 4242 at 1 mm; drawn by Resources/make_figures.py)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "CTADeface.png"), dpi=80)
    plt.close(fig)
    print(
        f"MTCNN face probability before {p_before:.3f}, after {p_after:.3f}; "
        f"mask {result.provenance['mask_volume_ml']:.1f} ml; pictures in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
