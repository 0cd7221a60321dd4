"""Views around the face's own front, two presets, one VTK pipeline.

A head pitched 15 degrees chin-down and rolled 8 degrees (a common pose in CTA head holders) is seen
frontally and upright in the estimated frame's front view, not from above and askew as from the image axes.
"""

import math

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("vtk")

SIZE = 256
TILT = (15.0, 8.0, 0.0)  # chin down, rolled


def _tilted(spacing=2.0, shape=(128, 128, 144), seed=3, orientation="RAS"):
    from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

    spec = PhantomSpec(seed=seed, shape=shape, spacing=(spacing,) * 3, pose_deg=TILT, orientation=orientation)
    return make_phantom(spec)


@pytest.fixture(scope="module")
def tilted():
    return _tilted()


@pytest.fixture(scope="module")
def rendered(tilted):
    from CTADefaceEvalLib import views

    # importing views imports render, which imports torch before VTK renders (render.py says why)
    timings: dict = {}
    out = views.render_views(
        tilted.image, views=(("front", 0.0, 0.0), ("left-30", 30.0, 0.0)), size=SIZE, timings=timings
    )
    return out, timings


def _eye_roll_deg(view, landmarks) -> float:
    """Angle of the line between the eyes in the picture, in degrees (0 = level)."""
    (xl, yl), (xr, yr) = view.project([landmarks["eye_r"], landmarks["eye_l"]])
    return math.degrees(math.atan2(yr - yl, xr - xl))


def test_views_come_in_order_with_both_presets(rendered):
    out, timings = rendered
    assert [(v.name, v.preset) for v in out] == [
        ("front", "ct-muscle"),
        ("front", "skin"),
        ("left-30", "ct-muscle"),
        ("left-30", "skin"),
    ]
    for v in out:
        assert v.rgb.shape == (SIZE, SIZE, 3) and v.rgb.dtype == np.uint8
        assert (v.rgb.sum(axis=2) > 30).mean() > 0.15  # a head fills the picture
    assert {"prepare_s", "pose_s", "pipeline_s", "front/skin_s"} <= set(timings)


def test_the_two_presets_differ_and_skin_is_one_opaque_skin_coloured_surface(rendered):
    out, _ = rendered
    muscle, skin = out[0].rgb.astype(float), out[1].rgb.astype(float)
    assert np.abs(muscle - skin).mean() > 10
    fg = skin.sum(axis=2) > 60
    r, g, b = (np.median(skin[..., c][fg]) for c in range(3))
    assert r > g > b  # skin tone, lit: brightness varies, hue does not
    # one surface colour: the hue (r:g:b ratio) barely varies over the head, unlike CT-Muscle's colour ramp
    ratio = skin[..., 1][fg] / np.maximum(skin[..., 0][fg], 1)
    mfg = muscle.sum(axis=2) > 60
    muscle_ratio = muscle[..., 1][mfg] / np.maximum(muscle[..., 0][mfg], 1)
    assert ratio.std() < 0.05 < muscle_ratio.std()


def test_front_view_sees_the_tilted_face_upright_and_from_the_front(rendered, tilted):
    """In the estimated frame the eyes are level and the nose tip lies between them; from the image axes the
    8-degree roll tilts the eye line and the 15-degree pitch puts the nose tip far below the eyes' midpoint."""
    from CTADefaceEvalLib import views
    from CTADefaceEvalLib.pose import image_axes_frame

    front = rendered[0][0]
    lm = tilted.landmarks
    assert abs(_eye_roll_deg(front, lm)) < 3.0
    (ex_r, _), (ex_l, _), (nx, _) = front.project([lm["eye_r"], lm["eye_l"], lm["nose_tip"]])
    assert abs(nx - (ex_r + ex_l) / 2) < 0.05 * abs(ex_l - ex_r)

    axes = views.render_views(
        tilted.image, frame=image_axes_frame(), views=(("front", 0.0, 0.0),), presets=("skin",), size=SIZE
    )[0]
    assert abs(_eye_roll_deg(axes, lm)) > 6.0


def test_yaw_turns_the_camera_to_the_patients_left(rendered, tilted):
    """left-30 sees the left cheek: the nose tip moves towards the picture's left (the patient's right side)."""
    out, _ = rendered
    front, left = out[0], out[2]
    lm = tilted.landmarks
    shift = [
        v.project([lm["nose_tip"]])[0, 0] - v.project([lm["eye_r"], lm["eye_l"]])[:, 0].mean() for v in (front, left)
    ]
    assert shift[1] < shift[0] - 10


def test_project_agrees_with_vtk(tilted):
    """View.project (numpy, from the camera) against VTK's own world-to-display transform."""
    from CTADefaceEvalLib import views
    from CTADefaceEvalLib.pose import estimate_face_frame

    volume, points = views.prepare_volume(tilted.image, voxel_mm=3.0)
    scene = views.VolumeScene(volume, points, size=128)
    try:
        frame = estimate_face_frame(volume)
        rgb = scene.render(frame, 20.0, -10.0, preset="skin")
        view = views.View("x", "skin", 20.0, -10.0, rgb, scene.camera)
        pts = [tilted.landmarks[k] for k in ("nose_tip", "eye_l", "menton", "vertex")]
        ours = view.project(pts)
        for p, (col, row) in zip(pts, ours):
            scene.renderer.SetWorldPoint(*p, 1.0)
            scene.renderer.WorldToDisplay()
            x, y, _ = scene.renderer.GetDisplayPoint()
            assert abs(col - x) < 1.0 and abs(row - (128 - 1 - y)) < 1.0, (p, col, row, x, y)
    finally:
        scene.close()


def test_one_pipeline_per_image(tilted, monkeypatch):
    """Seven views x two presets: one VolumeScene (image data, mapper, volume, renderer, window)."""
    from CTADefaceEvalLib import views

    built = []
    original = views.VolumeScene.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(views.VolumeScene, "__init__", counting)
    out = views.render_views(tilted.image, frame=views.image_axes_frame(), size=48, voxel_mm=4.0)
    assert len(out) == len(views.DEFAULT_VIEWS) * 2 and len(built) == 1
    assert len({v.rgb.tobytes() for v in out}) == len(out)  # every picture differs


def test_table_is_cleared_and_tissue_in_front_is_kept(tilted):
    """The head holder and table (behind the head) go; an island of soft tissue in front of the face (what a
    poor defacing mask can leave) stays, and so does every voxel of the face."""
    from CTADefaceEvalLib import views
    from CTADefaceEvalLib.pose import estimate_face_frame
    from CTADefaceLib.synthetic import anatomy

    image = sitk.Cast(tilted.image, sitk.sitkInt16)
    array = sitk.GetArrayFromImage(image)
    # a 12 mm cube of soft tissue floating 20 mm in front of the nose tip
    tip = np.array(tilted.landmarks["nose_tip"])
    frame0 = estimate_face_frame(image)
    centre = tip + 20.0 * np.array(frame0.front_lps)
    idx = np.round(image.TransformPhysicalPointToContinuousIndex(tuple(centre))).astype(int)
    array[idx[2] - 3 : idx[2] + 3, idx[1] - 3 : idx[1] + 3, idx[0] - 3 : idx[0] + 3] = 40
    island = sitk.GetImageFromArray(array)
    island.CopyInformation(image)

    volume, _ = views.prepare_volume(island, voxel_mm=None)
    cleared, count = views.remove_objects_behind(volume, frame0)
    assert count > 0

    def on_volume(label_image):
        return sitk.GetArrayFromImage(sitk.Resample(label_image, volume, sitk.Transform(), sitk.sitkNearestNeighbor))

    before, after = sitk.GetArrayFromImage(volume), sitk.GetArrayFromImage(cleared)
    table = on_volume(tilted.labels) == anatomy.TABLE
    assert table.any()
    assert (after[table] > views.BODY_HU).mean() < 0.1 < (before[table] > views.BODY_HU).mean()
    face = on_volume(tilted.face) > 0
    assert np.array_equal(before[face], after[face])
    cube = volume.TransformPhysicalPointToIndex(tuple(centre))
    assert after[cube[2], cube[1], cube[0]] == before[cube[2], cube[1], cube[0]] > 0


def test_unknown_preset_is_refused(tilted):
    from CTADefaceEvalLib import views

    with pytest.raises(ValueError, match="preset"):
        views.render_views(tilted.image, presets=("bone",), size=32)


@pytest.mark.slow
def test_mtcnn_finds_the_tilted_face_in_the_front_view():
    """A 1 mm phantom (2 mm renders too coarsely for MTCNN), tilted 15 degrees chin-down and rolled 8: MTCNN
    finds the face in the estimated frame's front view, with the eyes level."""
    pytest.importorskip("facenet_pytorch")
    from CTADefaceEvalLib import faces, render, views

    phantom = _tilted(spacing=1.0, shape=(240, 256, 250))
    front = views.render_views(phantom.image, views=(("front", 0.0, 0.0),), size=512)
    axes = render.render_anterior(phantom.image, size=512)
    found = {v.preset: faces.detect_face(v.rgb).probability for v in front}
    p_axes = faces.detect_face(axes).probability
    print(f"MTCNN p in the face frame: {found}; from the image axes: {p_axes:.3f}")
    assert max(found.values()) > 0.9
    from CTADefaceEvalLib.detectors import find_faces

    best = find_faces(front[int(np.argmax(list(found.values())))].rgb, ["mtcnn"])[0]  # best finding first
    eyes = [best.landmarks["left_eye"], best.landmarks["right_eye"]]
    assert abs(math.degrees(math.atan2(eyes[1][1] - eyes[0][1], eyes[1][0] - eyes[0][0]))) < 4.0
