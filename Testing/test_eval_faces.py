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


def test_facenet_graph_without_control_inputs_reads_in_the_installed_opencv():
    """Two constants of the shipped graph carry control-dependency inputs ("^node"), which OpenCV 4.9 and later
    refuse; without them the graph reads, and only those two inputs are gone."""
    import cv2

    from CTADefaceLib.errors import DefaceError

    path = faces.facenet_graph_path()
    shipped = open(path, "rb").read()
    cleaned = faces.facenet_graph_bytes(path)

    def nodes(data):
        out = []
        for number, payload, _ in faces._protobuf_fields(data):
            if number == 1:
                fields = list(faces._protobuf_fields(payload))
                out.append(([p for n, p, _ in fields if n == 1][0], [p for n, p, _ in fields if n == 3]))
        return out

    before, after = nodes(shipped), nodes(cleaned)
    assert [name for name, _ in before] == [name for name, _ in after] and len(before) == 793
    dropped = [i for (_, a), (_, b) in zip(before, after) for i in a if i not in b]
    assert len(dropped) == 2 and all(i.startswith(b"^") for i in dropped)
    assert not any(i.startswith(b"^") for _, inputs in after for i in inputs)

    def kept_fields(data):  # every field of every node, byte for byte, but the control inputs
        return [
            [r for n, p, r in faces._protobuf_fields(payload) if not (n == 3 and p.startswith(b"^"))]
            for number, payload, _ in faces._protobuf_fields(data)
            if number == 1
        ]

    assert kept_fields(shipped) == kept_fields(cleaned)
    faces._models.pop("facenet", None)
    if int(cv2.__version__.split(".")[0]) >= 5:  # no TensorFlow reader: one sentence, no traceback
        with pytest.raises(
            DefaceError, match=r"cannot read FaceNet's TensorFlow graph; install 'opencv-python-headless<5'"
        ):
            faces._facenet()
    else:
        assert "embeddings" in faces._facenet().getLayerNames()
        with pytest.raises(cv2.error):  # the graph as shipped: what this function works around
            cv2.dnn.readNetFromTensorflow(path)
