"""Several views of a head CT around the face's own front, with two transfer functions, from one VTK pipeline.

A check that looks at one picture along the image axes misses a face that is pitched or rolled in the
head holder, and one framing or one transfer function can hide what remains. `render_views` renders a
set of views (front, turned left and right, from above and below) around the face frame that
`pose.estimate_face_frame` finds in the CT, with each of two presets:

- "ct-muscle": 3D Slicer's CT-Muscle preset (render.CT_MUSCLE), the paper's picture;
- "skin": the skin/air boundary as an opaque, shaded surface (SKIN below), the picture a photograph or
  a 3D surface scan would give; bone shows through only where the soft tissue is gone.

What it costs, and why it is fast enough for every case of a cohort (see Testing/benchmarks/render_views.py):
- The volume is cropped to the body and resampled once to `voxel_mm` (1 mm by default): a face does not
  need 0.45 mm, and a 512x512x300 CTA shrinks about tenfold.
- One pipeline (image data, mapper, volume, renderer, window) is built per image; between pictures only
  the camera and the volume property change.
- The mapper is VTK's CPU ray caster (vtkFixedPointVolumeRayCastMapper), multi-threaded over all cores.
  It computes the shading normals once per volume and reuses them for every view and preset; the
  OpenGL ray caster (what render.render_volume uses, the paper's setup) recomputes gradients per sample,
  which under Mesa's software rasteriser (llvmpipe, no GPU) measured about five times slower per view here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .pose import FaceFrame, estimate_face_frame, image_axes_frame
from .render import BODY_HU, CT_MUSCLE

# A skin-surface preset, designed here: none of 3D Slicer's CT presets (presets.xml) shows the skin as a
# surface (CT-Muscle and CT-AAA start their opacity above -160 HU, so fat and muscle tint the picture;
# CT-Soft-Tissue is unshaded). The opacity rises from 0 to 1 across -550..-350 HU, around -500 HU, half way
# between air (-1000) and soft tissue (about 0): the iso-surface of the skin/air boundary, fully opaque, one
# skin colour, lit like CT-Muscle (ambient 0.1 raised to 0.15 so the shadowed side stays visible).
SKIN = {
    "scalar_opacity": [(-3024, 0.0), (-550.0, 0.0), (-350.0, 1.0), (3071, 1.0)],
    "color": [(-3024, 0.89, 0.72, 0.60), (3071, 0.89, 0.72, 0.60)],
    "gradient_opacity": [(0, 1.0), (255, 1.0)],
    "ambient": 0.15,
    "diffuse": 0.85,
    "specular": 0.1,
    "specular_power": 10.0,
}

PRESETS = {"ct-muscle": CT_MUSCLE, "skin": SKIN}

#: (name, yaw, pitch) in degrees around the face's front. Yaw > 0 turns the camera towards the patient's
#: left (it sees the left cheek), pitch > 0 raises it (it looks down on the face).
DEFAULT_VIEWS: tuple = (
    ("front", 0.0, 0.0),
    ("left-30", 30.0, 0.0),
    ("right-30", -30.0, 0.0),
    ("left-60", 60.0, 0.0),
    ("right-60", -60.0, 0.0),
    ("above-20", 0.0, 20.0),
    ("below-20", 0.0, -20.0),
)

VOXEL_MM = 1.0  # resampled grid of the rendered volume
NEAR_MM = 40.0  # objects this close to the body stay in the rendered volume
# The head in the face frame, mm from the frame's origin (about at the nose): what the camera frames.
HEAD_UP_MM = (-130.0, 150.0)
HEAD_SIDE_MM = 120.0


@dataclass(frozen=True)
class View:
    name: str  # e.g. "front", "left-30"
    preset: str  # "ct-muscle" or "skin"
    yaw_deg: float  # relative to the face frame's front
    pitch_deg: float
    rgb: Any  # numpy.ndarray, H x W x 3 uint8
    camera: tuple = ()  # (position, focal point, view-up) in LPS mm and the vertical view angle in degrees

    def project(self, points_lps):
        """Pixel (column, row) of LPS points in this picture (row 0 at the top), for drawing landmarks."""
        import numpy as np

        position, focal, view_up, view_angle = (np.asarray(v, float) for v in self.camera)
        direction = (focal - position) / np.linalg.norm(focal - position)
        up = view_up / np.linalg.norm(view_up)
        right = np.cross(direction, up)
        v = np.asarray(points_lps, float).reshape(-1, 3) - position
        depth = v @ direction
        height, width = self.rgb.shape[:2]
        scale = (height / 2.0) / np.tan(np.radians(view_angle) / 2.0)
        column = width / 2.0 + scale * (v @ right) / depth - 0.5
        row = height / 2.0 - scale * (v @ up) / depth - 0.5
        return np.stack([column, row], axis=1)


def _property(vtk, preset: dict):
    prop = vtk.vtkVolumeProperty()
    opacity = vtk.vtkPiecewiseFunction()
    for x, y in preset["scalar_opacity"]:
        opacity.AddPoint(x, y)
    color = vtk.vtkColorTransferFunction()
    for x, r, g, b in preset["color"]:
        color.AddRGBPoint(x, r, g, b)
    gradient = vtk.vtkPiecewiseFunction()
    for x, y in preset["gradient_opacity"]:
        gradient.AddPoint(x, y)
    prop.SetScalarOpacity(opacity)
    prop.SetColor(color)
    prop.SetGradientOpacity(gradient)
    prop.ShadeOn()
    prop.SetAmbient(preset["ambient"])
    prop.SetDiffuse(preset["diffuse"])
    prop.SetSpecular(preset["specular"])
    prop.SetSpecularPower(preset["specular_power"])
    prop.SetInterpolationTypeToLinear()
    return prop


def prepare_volume(image, voxel_mm: float | None = VOXEL_MM):
    """The image in canonical LPS, cropped to the body and what lies within NEAR_MM of it (+10 mm) and, when `voxel_mm` is given,
    resampled to that isotropic spacing (never finer than the image). Returns (volume, body_points_lps)."""
    import numpy as np
    import SimpleITK as sitk

    from CTADefaceLib.io.volume import to_canonical
    from CTADefaceLib.mask import largest_component

    canonical = to_canonical(image)
    spacing = np.array(canonical.GetSpacing(), float)
    # The body on a coarse grid (about 3 mm) by plain striding: cheap on a 512x512x300 volume.
    step = np.maximum(1, np.round(3.0 / spacing)).astype(int)  # x, y, z
    array = sitk.GetArrayViewFromImage(canonical)
    coarse = array[:: step[2], :: step[1], :: step[0]]
    body = largest_component(coarse > BODY_HU)
    if not body.any():
        body = np.ones_like(coarse, dtype=bool)
    zz, yy, xx = np.nonzero(body)
    index = np.stack([xx, yy, zz], axis=1) * step  # voxel indices (x, y, z) of the full image
    points = np.array(
        [canonical.TransformIndexToPhysicalPoint([int(v) for v in p]) for p in index[:: max(1, len(index) // 20000)]]
    )
    # Crop: the body, plus anything else above BODY_HU within NEAR_MM of it (tissue a defacing mask left as an
    # island in front of the face must stay in the picture; the table beyond is not needed), plus 10 mm.
    near = np.ceil(NEAR_MM / spacing / step).astype(int)  # coarse voxels, x y z
    lo_c = np.maximum(np.array([xx.min(), yy.min(), zz.min()]) - near, 0)
    hi_c = np.array([xx.max(), yy.max(), zz.max()]) + near + 1
    region = coarse[lo_c[2] : hi_c[2], lo_c[1] : hi_c[1], lo_c[0] : hi_c[0]] > BODY_HU
    rz, ry, rx = np.nonzero(region)
    extent = np.stack([rx, ry, rz], axis=1) + lo_c
    lo_i = np.maximum(extent.min(axis=0) * step - np.ceil(10.0 / spacing), 0)
    hi_i = np.minimum(extent.max(axis=0) * step + step + np.ceil(10.0 / spacing), np.array(canonical.GetSize()) - 1)
    lo = np.array(canonical.TransformContinuousIndexToPhysicalPoint([float(v) for v in lo_i]))
    new_spacing = spacing if voxel_mm is None else np.maximum(spacing, float(voxel_mm))
    size = [int(np.floor((hi_i[a] - lo_i[a]) * spacing[a] / new_spacing[a])) + 1 for a in range(3)]
    volume = sitk.Resample(
        canonical,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        tuple(float(v) for v in lo),
        tuple(float(v) for v in new_spacing),
        canonical.GetDirection(),
        -1024.0,
        sitk.sitkFloat32,
    )
    return volume, points


def remove_objects_behind(volume, frame: FaceFrame, *, behind_mm: float = 30.0):
    """Set to air what is not the body and lies well behind its centre along the face's front: the table and
    the head holder, which otherwise frame the face in every view. A holder often touches the head, so the
    body is found after an opening (on a ~3 mm grid, one voxel: shells up to about 6 mm thick, as a cradle is,
    come loose) and regrown by 9 mm into the original mask; what is left over and whose centre lies more
    than `behind_mm` behind the body's centre is cleared (with a 2-voxel margin for partial-volume edges).
    Everything in front stays (glasses, a tube, or tissue that a defacing mask left as an island: a check
    must see it), and so do the ears. Works on a copy; returns it and the number of voxels cleared."""
    import numpy as np
    import SimpleITK as sitk
    from scipy import ndimage

    from CTADefaceLib.mask import largest_component

    array = sitk.GetArrayFromImage(volume)
    spacing = np.array(volume.GetSpacing(), float)
    step = np.maximum(1, np.round(3.0 / spacing)).astype(int)  # x, y, z
    mask = array > BODY_HU
    coarse = mask[:: step[2], :: step[1], :: step[0]]
    core = largest_component(ndimage.binary_opening(coarse))
    if not core.any():
        return volume, 0
    keep = ndimage.binary_dilation(core, iterations=3) & coarse
    residue, count = ndimage.label(coarse & ~keep)
    if count == 0:
        return volume, 0

    def depth(index_zyx) -> np.ndarray:  # coarse (z, y, x) indices -> mm along the face's front
        idx = np.asarray(index_zyx, float).reshape(-1, 3)[:, ::-1] * step
        lps = np.array([volume.TransformContinuousIndexToPhysicalPoint([float(v) for v in i]) for i in idx])
        return lps @ np.asarray(frame.front_lps)

    body_depth = depth(ndimage.center_of_mass(core))[0]
    centres = ndimage.center_of_mass(np.ones_like(residue, dtype=np.uint8), residue, range(1, count + 1))
    far = [i + 1 for i, d in enumerate(depth(centres)) if d < body_depth - behind_mm]
    if not far:
        return volume, 0
    clear = np.isin(residue, far)
    # back to the full grid: each coarse voxel covers `step` voxels per axis
    full = np.zeros_like(mask)
    up = clear.repeat(step[2], 0).repeat(step[1], 1).repeat(step[0], 2)
    full[: up.shape[0], : up.shape[1], : up.shape[2]] = up[: full.shape[0], : full.shape[1], : full.shape[2]]
    keep_full = np.zeros_like(mask)
    kup = keep.repeat(step[2], 0).repeat(step[1], 1).repeat(step[0], 2)
    keep_full[: kup.shape[0], : kup.shape[1], : kup.shape[2]] = kup[: mask.shape[0], : mask.shape[1], : mask.shape[2]]
    full = ndimage.binary_dilation(full, iterations=max(2, int(step.max()))) & ~(keep_full & mask)
    array[full] = -1024.0
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(volume)
    return out, int(full.sum())


class VolumeScene:
    """One offscreen VTK pipeline for one image; `render` changes only the camera and the volume property."""

    def __init__(
        self,
        volume,
        body_points,
        *,
        size: int = 512,
        mapper: str = "cpu",
        sample_distance: float | None = None,
        background=(0.0, 0.0, 0.0),
    ):
        from .render import _image_data, _vtk

        vtk = self._vtk = _vtk()
        self.volume_image = volume
        self.camera: tuple = ()  # of the last picture (see View.camera)
        self.body_points = body_points
        step = float(min(volume.GetSpacing())) / 2 if sample_distance is None else float(sample_distance)
        if mapper == "cpu":
            self.mapper = vtk.vtkFixedPointVolumeRayCastMapper()
            self.mapper.SetImageSampleDistance(1.0)  # one ray per pixel
            self.mapper.SetInteractiveSampleDistance(step)
        elif mapper == "gpu":
            self.mapper = vtk.vtkGPUVolumeRayCastMapper()
        else:
            raise ValueError(f"mapper must be 'cpu' or 'gpu', not {mapper!r}")
        self.mapper.SetAutoAdjustSampleDistances(False)  # the same picture every time, however slow the machine
        self.mapper.SetSampleDistance(step)
        self.mapper.SetInputData(_image_data(volume, vtk))
        self.actor = vtk.vtkVolume()
        self.actor.SetMapper(self.mapper)
        self._properties = {name: _property(vtk, preset) for name, preset in PRESETS.items()}
        self.renderer = vtk.vtkRenderer()
        self.renderer.SetBackground(*background)
        self.renderer.AddVolume(self.actor)
        self.window = vtk.vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetSize(size, size)
        self.window.AddRenderer(self.renderer)

    def framing(self, frame: FaceFrame, *, view_angle: float = 30.0, fill: float = 0.92, head_only: bool = True):
        """(focal point, distance) that centre the body, seen along the frame's front, and fill `fill` of the
        picture. With `head_only`, body parts far below the face (shoulders) or beside it are left out."""
        import numpy as np

        axes = np.array([frame.left_lps, frame.up_lps, frame.front_lps])  # rows: l, u, f
        origin = np.array(frame.origin_lps)
        coords = (np.asarray(self.body_points, float) - origin) @ axes.T
        if head_only:
            keep = (
                (coords[:, 1] > HEAD_UP_MM[0]) & (coords[:, 1] < HEAD_UP_MM[1]) & (np.abs(coords[:, 0]) < HEAD_SIDE_MM)
            )
            if keep.sum() > 100:
                coords = coords[keep]
        lo, hi = coords.min(axis=0), coords.max(axis=0)
        centre = origin + ((lo + hi) / 2) @ axes
        extent = hi - lo
        half = max(extent) / 2.0 / fill
        distance = half / np.tan(np.radians(view_angle / 2)) + extent[2] / 2
        return centre, float(distance)

    def render(
        self,
        frame: FaceFrame,
        yaw: float = 0.0,
        pitch: float = 0.0,
        *,
        preset: str = "ct-muscle",
        view_angle: float = 30.0,
        focal=None,
        distance: float | None = None,
    ):
        """RGB uint8 picture from the frame's front turned by yaw (towards the patient's left) and pitch (up)."""
        import numpy as np

        from .render import _grab

        if preset not in self._properties:
            raise ValueError(f"preset must be one of {sorted(self._properties)}, not {preset!r}")
        if focal is None or distance is None:
            focal, distance = self.framing(frame, view_angle=view_angle)
        self.actor.SetProperty(self._properties[preset])
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*focal)
        camera.SetPosition(*(np.asarray(focal) + np.asarray(frame.front_lps) * distance))
        camera.SetViewUp(*frame.up_lps)
        camera.SetViewAngle(view_angle)
        camera.Azimuth(yaw)  # about view-up: positive moves the camera towards up x front = the patient's left
        camera.Elevation(pitch)
        camera.OrthogonalizeViewUp()
        self.renderer.ResetCameraClippingRange()
        self.window.Render()
        self.camera = (camera.GetPosition(), camera.GetFocalPoint(), camera.GetViewUp(), camera.GetViewAngle())
        return _grab(self.window, self._vtk)

    def close(self) -> None:
        self.window.Finalize()


def render_views(
    image,
    *,
    frame: FaceFrame | None = None,
    views=DEFAULT_VIEWS,
    presets=("ct-muscle", "skin"),
    size: int = 512,
    voxel_mm: float | None = VOXEL_MM,
    sample_distance: float | None = None,
    timings: dict | None = None,
    remove_table: bool = True,
) -> list:
    """Render every (name, yaw, pitch) in `views` with every preset, around `frame` (estimated from the CT when
    None). Returns View objects in the order views x presets. `timings`, when given, receives seconds per stage.
    `remove_table` clears the objects behind the head (remove_objects_behind) before rendering."""
    import time

    for preset in presets:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, not {preset!r}")
    clock = time.perf_counter()
    volume, points = prepare_volume(image, voxel_mm)
    stages = {"prepare_s": time.perf_counter() - clock}
    clock = time.perf_counter()
    if frame is None:
        frame = estimate_face_frame(volume)
    stages["pose_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if remove_table:
        volume, _ = remove_objects_behind(volume, frame)
    stages["table_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    scene = VolumeScene(volume, points, size=size, sample_distance=sample_distance)
    focal, distance = scene.framing(frame)
    stages["pipeline_s"] = time.perf_counter() - clock
    out = []
    try:
        for name, yaw, pitch in views:
            for preset in presets:
                clock = time.perf_counter()
                rgb = scene.render(frame, yaw, pitch, preset=preset, focal=focal, distance=distance)
                stages[f"{name}/{preset}_s"] = time.perf_counter() - clock
                out.append(View(name, preset, float(yaw), float(pitch), rgb, scene.camera))
    finally:
        scene.close()
    if timings is not None:
        timings.update({k: round(v, 3) for k, v in stages.items()})
    return out


__all__ = ["DEFAULT_VIEWS", "PRESETS", "SKIN", "FaceFrame", "View", "VolumeScene", "image_axes_frame", "render_views"]
