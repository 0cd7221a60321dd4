"""Offscreen volume rendering of a head CT from the patient's anterior, as the paper did in Slicer.

The paper rendered each CT in 3D Slicer with the "CT-Muscle" preset from an anterior viewpoint
and gave the picture to MTCNN/FaceNet. This module reproduces that picture without Slicer or a
display: VTK renders offscreen through EGL (Mesa llvmpipe on machines without a GPU).

Orientation: the image is first reoriented with `CTADefaceLib.io.volume.to_canonical` (axis
permutations and flips only, no resampling), so an LPS-stored and a RAS-stored copy of the same
scan give the same picture. The camera is then placed in physical LPS space: it stands at the
patient's anterior (-y in LPS) looking posteriorly (+y), view-up superior (+z). Patient's right is
on the picture's left, as when facing the person.

Crash to know about (docs/facts.md): in one process, importing torch AFTER VTK has rendered through
Mesa segfaults; measured here, importing torchvision (facenet_pytorch imports it) after a render
segfaults too. `render_volume` therefore imports torch and torchvision (when installed) before its
first render;
code that renders and then uses MTCNN in the same process is safe as long as it renders through
this module. If you use VTK yourself first, import torch before that, or render in a subprocess.
"""

from __future__ import annotations

import os

from CTADefaceLib.mask import BODY_HU  # above this: the body (skin and everything inside)

# CT-Muscle, copied from 3D Slicer's presets.xml (ships in the trame-slicer wheel as
# trame_slicer/resources/presets.xml; values recorded in docs/facts.md).
CT_MUSCLE = {
    "scalar_opacity": [(-3024, 0.0), (-155.407, 0.0), (217.641, 0.676471), (419.736, 0.833333), (3071, 0.803922)],
    "color": [
        (-3024, 0.0, 0.0, 0.0),
        (-155.407, 0.54902, 0.25098, 0.14902),
        (217.641, 0.882353, 0.603922, 0.290196),
        (419.736, 1.0, 0.937033, 0.954531),
        (3071, 0.827451, 0.658824, 1.0),
    ],
    "gradient_opacity": [(0, 1.0), (255, 1.0)],
    "ambient": 0.1,
    "diffuse": 0.9,
    "specular": 0.2,
    "specular_power": 10.0,
}

#: Extra viewpoints for a robustness check: (yaw, pitch) in degrees from the anterior view.
EXTRA_ANGLES = [(-60, 0), (-30, 0), (30, 0), (60, 0), (0, 20)]


_torch_checked = False


def import_torch_before_vtk() -> None:
    """Import torch and torchvision (if installed) before the first VTK render: the reverse order segfaults."""
    global _torch_checked
    if _torch_checked:
        return
    _torch_checked = True
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401  (MTCNN needs it; importing it after a render segfaulted here)
    except Exception:  # missing or broken: rendering does not need them
        pass


def _vtk():
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # no X display needed
    import_torch_before_vtk()
    import vtk

    return vtk


def body_bounds_lps(canonical) -> tuple:
    """(xmin, xmax, ymin, ymax, zmin, zmax) in mm (LPS) of the largest body component, or of the whole image."""
    import numpy as np
    import SimpleITK as sitk

    from CTADefaceLib.mask import largest_component

    array = sitk.GetArrayViewFromImage(canonical)
    body = largest_component(array > BODY_HU)
    if not body.any():
        idx = np.array([[0, 0, 0], np.array(array.shape) - 1])
    else:
        zz, yy, xx = np.nonzero(body)
        idx = np.array([[zz.min(), yy.min(), xx.min()], [zz.max(), yy.max(), xx.max()]])
    corners = []
    for z in idx[:, 0]:
        for y in idx[:, 1]:
            for x in idx[:, 2]:
                corners.append(canonical.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z))))
    corners = np.array(corners)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])


def _image_data(canonical, vtk):
    import numpy as np
    import SimpleITK as sitk
    from vtk.util import numpy_support

    array = np.ascontiguousarray(sitk.GetArrayViewFromImage(canonical), dtype=np.float32)
    data = vtk.vtkImageData()
    size = canonical.GetSize()
    data.SetDimensions(*size)
    data.SetSpacing(*canonical.GetSpacing())
    data.SetOrigin(*canonical.GetOrigin())
    # Canonical images are LPS up to a small obliquity; VTK's mappers honour the direction matrix.
    data.SetDirectionMatrix(list(canonical.GetDirection()))
    scalars = numpy_support.numpy_to_vtk(array.ravel(), deep=True, array_type=vtk.VTK_FLOAT)
    data.GetPointData().SetScalars(scalars)
    return data


def render_volume(
    image,
    *,
    size: int = 512,
    angles=((0, 0),),
    view_angle: float = 30.0,
    fill: float = 0.92,
    background=(0.0, 0.0, 0.0),
) -> list:
    """Render `image` (SimpleITK CT in HU, any orientation) once per (yaw, pitch) in `angles`, CT-Muscle.

    The paper's setup: the camera is fixed to the image axes (not to the face: views.render_views is the
    pose-aware check) and the volume is rendered at its own resolution by VTK's OpenGL ray caster.
    (0, 0) is the anterior view; yaw turns the camera about the superior axis (positive = towards
    the patient's left), pitch tilts it up (positive = from above). The body's bounding box is
    centred and its larger frontal extent fills `fill` of the frame. Returns RGB uint8 arrays (size x size x 3).
    One pipeline serves every angle (views.VolumeScene).
    """
    import numpy as np

    from CTADefaceLib.io.volume import to_canonical

    from .pose import image_axes_frame
    from .views import VolumeScene

    canonical = to_canonical(image)
    xmin, xmax, ymin, ymax, zmin, zmax = body_bounds_lps(canonical)
    corners = np.array([[x, y, z] for x in (xmin, xmax) for y in (ymin, ymax) for z in (zmin, zmax)])
    frame = image_axes_frame(corners.mean(axis=0))
    scene = VolumeScene(canonical, corners, size=size, mapper="gpu", background=background)
    try:
        focal, distance = scene.framing(frame, view_angle=view_angle, fill=fill, head_only=False)
        return [
            scene.render(frame, yaw, pitch, view_angle=view_angle, focal=focal, distance=distance)
            for yaw, pitch in angles
        ]
    finally:
        scene.close()


def _grab(window, vtk):
    import numpy as np
    from vtk.util import numpy_support

    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    out = grab.GetOutput()
    width, height, _ = out.GetDimensions()
    rgb = numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(height, width, 3)
    return np.ascontiguousarray(rgb[::-1])  # VTK's first row is the bottom of the picture


def render_anterior(image, size: int = 512) -> numpy.ndarray:  # noqa: F821
    """The paper's picture: one anterior CT-Muscle rendering, RGB uint8."""
    return render_volume(image, size=size)[0]


def save_png(rgb, path: str) -> str:
    """Write an RGB uint8 array as PNG (matplotlib's writer: no extra dependency)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.image as mpimg

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mpimg.imsave(path, rgb)
    return path
