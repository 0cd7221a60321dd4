"""MTCNN and FaceNet on real photographs that ship with scikit-image (no download).

Faces used: skimage.data.astronaut() (Eileen Collins) and skimage.data.camera() (the
"cameraman", a different person, grayscale).
"""

import numpy as np
import pytest

pytest.importorskip("facenet_pytorch")
pytest.importorskip("cv2")
skdata = pytest.importorskip("skimage.data")

from CTADefaceEvalLib import faces  # noqa: E402


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


def test_mtcnn_finds_the_astronaut(astronaut):
    found = faces.detect_face(astronaut)
    assert found.probability > 0.95
    x1, y1, x2, y2 = found.box
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # her face, upper middle of the photo


def test_mtcnn_finds_nothing_in_a_blank_picture():
    found = faces.detect_face(np.full((256, 256, 3), 128, np.uint8))
    assert found.probability == 0.0 and found.box is None
    assert faces.face_embedding(np.zeros((200, 200, 3), np.uint8)) is None


@pytest.mark.slow  # over 14 s on 2 shared cores
def test_facenet_distances(astronaut):
    reference = faces.face_embedding(astronaut)
    assert reference.shape == (512,) and abs(np.linalg.norm(reference) - 1) < 1e-6
    assert faces.embedding_distance(reference, faces.face_embedding(astronaut)) == pytest.approx(0, abs=1e-6)
    flipped = faces.embedding_distance(reference, faces.face_embedding(astronaut[:, ::-1]))
    shifted = faces.embedding_distance(reference, faces.face_embedding(np.roll(astronaut, (6, 8), axis=(0, 1))))
    other = faces.embedding_distance(reference, faces.face_embedding(skdata.camera()))
    assert flipped < 0.6 and shifted < 0.6  # measured 0.29 and 0.19
    assert other > 1.0  # measured 1.32: a different person
    assert faces.embedding_distance(reference, None) is None


def test_prewhiten_has_zero_mean_unit_std():
    x = faces.prewhiten(np.arange(300, dtype=np.uint8).reshape(10, 10, 3))
    assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-4


def test_facenet_loads_or_says_in_one_sentence_that_this_opencv_cannot_read_it():
    """OpenCV 5 removed the TensorFlow importer that reads FaceNet's graph, and 4.9 to 4.14 refuse the graph: with
    such an OpenCV the user gets one sentence (a DefaceError), not an AttributeError or a cv2.error traceback."""
    from CTADefaceLib.errors import DefaceError

    faces._models.pop("facenet", None)
    try:
        net = faces._facenet()
    except DefaceError as err:
        assert str(err).startswith("OpenCV ") and "cannot read FaceNet's graph graph_final.pb" in str(err)
        assert str(err).count(". ") == 0 and str(err).endswith(".")
    else:
        assert net.getLayerNames()
