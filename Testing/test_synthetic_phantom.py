"""Synthetic CTA phantoms: anatomy, ground truth, determinism, orientation, files and CLI."""

import argparse
import os
import time

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")

from CTADefaceLib.synthetic import anatomy as A  # noqa: E402
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom, write_phantom  # noqa: E402


@pytest.fixture(scope="module")
def small():
    spec = PhantomSpec(
        seed=11, shape=(112, 128, 128), spacing=(2.0, 2.0, 2.0), pose_deg=(0, 0, 0), devices=("glasses",), noise_hu=15.0
    )
    return make_phantom(spec)


@pytest.fixture(scope="module")
def posed():
    return make_phantom(PhantomSpec.random(23, "small"))


def arr(im):
    return sitk.GetArrayFromImage(im)


def physical_points(image, mask):
    """Physical LPS coordinates (N, 3) of the voxels where mask (z, y, x) is set."""
    k, j, i = np.nonzero(mask)
    idx = np.stack([i, j, k], 1).astype(float)
    d = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    return idx @ d.T + np.array(image.GetOrigin())


def test_types_and_grid(small):
    assert small.image.GetPixelID() == sitk.sitkInt16
    for m in (small.face, small.intracranial, small.arteries):
        assert m.GetPixelID() == sitk.sitkUInt8
        assert m.GetSize() == small.image.GetSize() and m.GetOrigin() == small.image.GetOrigin()
        assert set(np.unique(arr(m))) <= {0, 1}
    ct = arr(small.image)
    assert ct.min() < -900 and ct.max() > 1000
    assert abs(np.median(ct[arr(small.labels) == A.AIR]) + 1000) < 5


def test_face_mask_excludes_bone_brain_arteries(small, posed):
    for ph in (small, posed):
        face = arr(ph.face).astype(bool)
        assert face.any()
        assert not (face & (arr(ph.clean) > 300)).any()
        assert not (face & ph.bone_mask()).any()
        assert not (face & arr(ph.intracranial).astype(bool)).any()
        assert not (face & arr(ph.arteries).astype(bool)).any()
        assert not (face & (arr(ph.labels) == A.EAR)).any()


def test_face_volume_realistic(small, posed):
    for ph in (small, posed):
        vol = arr(ph.face).sum() * np.prod(ph.face.GetSpacing()) / 1000
        assert 150 < vol < 450, vol
        icv = arr(ph.intracranial).sum() * np.prod(ph.face.GetSpacing()) / 1000
        assert 900 < icv < 2000, icv


def test_face_between_brow_and_chin_and_anterior(small, posed):
    for ph in (small, posed):
        q = ph.anatomical(physical_points(ph.face, arr(ph.face) > 0))
        lm = A.build(ph.identity, ph.spec.devices)[2]
        assert q[:, 2].max() <= lm["sinus_top"][2] + 8.5
        assert q[:, 2].min() >= lm["menton"][2] - 8.5
        # the face lies in front of the brain, in the physical frame too (pose <= 20 degrees)
        face_y = physical_points(ph.face, arr(ph.face) > 0)[:, 1].mean()
        brain_y = physical_points(ph.intracranial, arr(ph.intracranial) > 0)[:, 1].mean()
        assert face_y < brain_y - 40
        nose = ph.landmarks["nose_tip"]
        assert nose[1] < brain_y - 80


def test_arteries_contrast(small):
    clean, ct = arr(small.clean), arr(small.image)
    a = arr(small.arteries) > 0
    assert a.sum() * 8 / 1000 > 5  # ml
    assert 300 <= np.median(clean[a]) <= 500
    assert 280 <= np.median(ct[a]) <= 520
    brain = arr(small.labels) == A.WM
    assert 15 < np.median(ct[brain]) < 45
    assert np.std(ct[brain]) > 8  # scanner noise


def test_determinism_and_seed_variation():
    spec = PhantomSpec(seed=5, shape=(64, 64, 64), spacing=(4.0, 4.0, 4.0))
    a, b = make_phantom(spec), make_phantom(PhantomSpec(**vars(spec)))
    assert np.array_equal(arr(a.image), arr(b.image))
    assert np.array_equal(arr(a.face), arr(b.face))
    c = make_phantom(PhantomSpec(seed=6, shape=(64, 64, 64), spacing=(4.0, 4.0, 4.0)))
    assert not np.array_equal(arr(a.clean), arr(c.clean))
    assert a.identity != c.identity and a.pose_deg != c.pose_deg
    assert PhantomSpec.random(5, "small") == PhantomSpec.random(5, "small")


def test_lps_and_ras_store_the_same_anatomy():
    base = dict(seed=3, shape=(80, 96, 88), spacing=(2.5, 2.5, 3.0), pose_deg=(8, -5, 12))
    lps = make_phantom(PhantomSpec(orientation="LPS", **base))
    ras = make_phantom(PhantomSpec(orientation="RAS", **base))
    assert ras.image.GetDirection() == (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    assert not np.array_equal(arr(lps.image), arr(ras.image))  # stored differently...
    for name in ("image", "face", "intracranial", "arteries"):
        back = sitk.Resample(getattr(ras, name), getattr(lps, name), sitk.Transform(), sitk.sitkNearestNeighbor)
        assert np.array_equal(arr(back), arr(getattr(lps, name))), name  # ...same physical content
    p = lps.landmarks["nose_tip"]
    assert p == ras.landmarks["nose_tip"]
    il, ir = lps.image.TransformPhysicalPointToIndex(p), ras.image.TransformPhysicalPointToIndex(p)
    assert lps.clean.GetPixel(il) == ras.clean.GetPixel(ir)


def test_pose_and_fov_options():
    flat = make_phantom(PhantomSpec(seed=9, shape=(64, 64, 64), spacing=(4.0, 4.0, 4.0), pose_deg=(0, 0, 0)))
    turned = make_phantom(PhantomSpec(seed=9, shape=(64, 64, 64), spacing=(4.0, 4.0, 4.0), pose_deg=(0, 0, 20)))
    n0, n1 = np.array(flat.landmarks["nose_tip"]), np.array(turned.landmarks["nose_tip"])
    assert abs(n0[0]) < 3 and abs(n1[0]) > 15  # yaw moves the nose sideways
    cut = make_phantom(PhantomSpec(seed=9, shape=(64, 64, 40), spacing=(4.0, 4.0, 4.0), neck=True, vertex=False))
    assert not cut.info["vertex_in_fov"]
    short = make_phantom(PhantomSpec(seed=9, shape=(64, 64, 40), spacing=(4.0, 4.0, 4.0), neck=False))
    assert short.info["chin_in_fov"] and arr(short.face).any()


def test_devices_in_face_mask():
    spec = PhantomSpec(
        seed=4, shape=(96, 112, 112), spacing=(2.2, 2.2, 2.2), pose_deg=(0, 0, 0), devices=("glasses", "tube")
    )
    ph = make_phantom(spec)
    lab, face = arr(ph.labels), arr(ph.face) > 0
    for dev in (A.GLASS, A.FRAME, A.TUBE):
        assert (lab == dev).any() and (face & (lab == dev)).any(), A.NAMES[dev]


def test_write_phantom_and_cli(tmp_path, small):
    paths = write_phantom(small, str(tmp_path), "case")
    names = sorted(os.path.basename(p) for p in paths.values())
    assert names == ["case.nii.gz", "case_arteries_gt.nii.gz", "case_face_gt.nii.gz", "case_intracranial_gt.nii.gz"]
    back = sitk.ReadImage(paths["face"])
    assert back.GetPixelID() == sitk.sitkUInt8 and np.array_equal(arr(back), arr(small.face))

    from CTADefaceLib.commands import phantom as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    out = tmp_path / "cli"
    args = parser.parse_args(
        [
            "phantom",
            "-o",
            str(out),
            "--n",
            "2",
            "--seed",
            "7",
            "--shape",
            "48",
            "48",
            "56",
            "--spacing",
            "4",
            "4",
            "4",
            "--orientation",
            "RAS",
            "--devices",
        ]
    )
    assert args.func(args) == 0
    files = sorted(os.listdir(out))
    assert len(files) == 8 and "phantom_s0007.nii.gz" in files and "phantom_s0008_face_gt.nii.gz" in files
    im = sitk.ReadImage(str(out / "phantom_s0008.nii.gz"))
    assert im.GetSize() == (48, 48, 56) and im.GetDirection()[0] == -1
    from CTADefaceLib.errors import OutputError

    with pytest.raises(OutputError):
        args.func(args)  # refuses to overwrite without --overwrite


@pytest.mark.slow
def test_cta_size_timing():
    spec = PhantomSpec.random(1, "cta")
    t0 = time.time()
    ph = make_phantom(spec)
    dt = time.time() - t0
    print(f"512x512x300 phantom generated in {dt:.1f} s")
    assert ph.image.GetSize() == (512, 512, 300)
    assert dt < 180


def test_a_phantom_without_its_frame_says_so():
    """mypy (the whole core checked): a Phantom not made by make_phantom has no anatomical frame to undo."""
    from CTADefaceLib.synthetic.phantom import Phantom

    blank = Phantom(image=None, face=None, intracranial=None, arteries=None, spec=PhantomSpec())
    with pytest.raises(ValueError, match="anatomical frame is unknown"):
        blank.anatomical(np.zeros((1, 3)))
