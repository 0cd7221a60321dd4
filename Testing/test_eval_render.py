"""Rendering: the LPS- and RAS-stored copies of one head give one picture.

The face is found, and gone after defacing.
"""

import numpy as np
import pytest

pytest.importorskip("vtk")
pytest.importorskip("facenet_pytorch")

from builders import as_ras_stored, make_synthetic_head  # noqa: E402

SIZE = 320


@pytest.fixture(scope="module")
def head():
    return make_synthetic_head(spacing=2.0)


@pytest.fixture(scope="module")
def pictures(head):
    from CTADefaceEvalLib import render  # imports torch/torchvision before VTK renders (see render.py)

    lps = render.render_volume(head.image, size=SIZE)[0]
    ras = render.render_volume(as_ras_stored(head.image), size=SIZE)[0]
    return lps, ras


def test_lps_and_ras_copies_render_the_same_picture(pictures):
    lps, ras = pictures
    assert lps.shape == (SIZE, SIZE, 3) and lps.dtype == np.uint8
    assert lps.mean() > 10  # something was drawn
    assert np.abs(lps.astype(int) - ras.astype(int)).mean() < 0.5


def test_head_is_centred_and_fills_the_frame(pictures):
    rows, cols = np.nonzero(pictures[0].sum(axis=2) > 30)
    assert abs((cols.min() + cols.max()) / 2 - SIZE / 2) < SIZE * 0.1
    assert (rows.max() - rows.min()) > 0.6 * SIZE


def test_same_detection_from_both_copies(pictures):
    from CTADefaceEvalLib import faces

    lps, ras = (faces.detect_face(p) for p in pictures)
    assert lps.probability > 0.9 and abs(lps.probability - ras.probability) < 1e-3
    assert (
        faces.embedding_distance(faces.face_embedding(pictures[0], lps.box), faces.face_embedding(pictures[1], ras.box))
        < 0.05
    )


@pytest.mark.slow  # two heads, 14 views each
def test_check_defaced_without_teeth_is_reviewed_for_that_reason(head, tmp_path):
    """This test head has no teeth, which place the residual measure's regions: the check cannot show that the
    facial tissue is gone, so it asks for review and says why, even though the face was removed."""
    from CTADefaceEvalLib import render
    from CTADefaceEvalLib.cohort import check_defaced
    from CTADefaceLib.pipeline import deface_image

    defaced = deface_image(head.image, mask=head.face).defaced
    result = check_defaced(defaced, head.image, size=SIZE)
    assert result["check"] == "REVIEW" and result["verifiable"], result
    assert any(r.startswith("residual tissue cannot be measured") for r in result["reasons"]), result["reasons"]
    render.save_png(render.render_anterior(defaced, size=128), str(tmp_path / "defaced.png"))
    assert (tmp_path / "defaced.png").stat().st_size > 1000
