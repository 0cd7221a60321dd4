"""Synthetic head-and-neck CT angiography phantoms with ground-truth masks.

`make_phantom(PhantomSpec(...))` builds a CT in Hounsfield units (SimpleITK Int16) and
UInt8 masks on the same grid: the face (the CTA-DEFACE definition, below), the
intracranial space and the contrast-filled arteries. Same seed and spec -> same volume.

How it is made. The anatomy (synthetic/anatomy.py) is analytic, in a patient frame in mm
(x Left, y Posterior, z Superior; origin at eye level). Each seed draws an identity (nose,
jaw, brows, eye spacing, lips, chin, head size), a pose (rotation about a point in the
head) and HU levels. The physical position of every voxel is mapped back into the
anatomical frame (an affine map, evaluated per z slab and per structure only inside the
structure's bounding box), so no voxel loop and no resampling happen. The table/head holder
is fixed in the scanner frame. RAS storage flips the array in x and y and sets the
direction to diag(-1, -1, 1): the physical anatomy (and even the noise) is identical.

Face mask (ground truth). Facial soft tissue and skin (skin, subcutaneous fat, muscle,
orbital fat, eyeballs and lenses) that lies (1) in the face region: from 8 mm above the
frontal sinus down to the hyoid level (8 mm below the menton), anterior to a coronal
plane behind the orbits above the zygomatic arch, behind the masseters down to the
mandibular angle, and behind the chin below that (`anatomy.face_region`); and
(2) within 18 mm (Euclidean) of the skin surface (so the tongue, pharynx and deep neck are out).
External devices in that region are included: glasses, and the tube in front of the
incisors. Bone, teeth, arteries, veins, airways, intracranial tissue and the ears are
never in it. Eyeballs are included: they sit in the orbit opening and shape the face.
Ears are excluded, as in the paper's model (they are a separate label and lie behind
the posterior limits anyway).

Field of view. x is centred on the head (+-8 mm), y keeps the nose tip at least 12 mm
inside. z: with `neck`, the top is 5-15 mm above the vertex (`vertex`) or 15-35 mm below
it (vertex cut) and the scan runs down from there; without `neck`, the bottom is 10-20 mm
below the hyoid level and the scan runs up from there (then `vertex` cannot be honoured
separately: `info["vertex_in_fov"]` says what happened; `info["chin_in_fov"]` likewise).

Labels: `Phantom.labels` holds the tissue labels (anatomy.NAMES) and
`Phantom.clean` the noise-free HU, for tests (e.g. `Phantom.bone_mask()`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from . import anatomy as A

SIZES = ("small", "medium", "cta")
_ROT_CENTRE = np.array([0.0, 0.0, -10.0])  # anatomical point the pose rotates about
FACE_DEPTH_MM = 18.0  # face tissue lies within this Euclidean depth below the skin


@dataclass
class PhantomSpec:
    """What to generate. Identity and HU levels always come from `seed`; pose too when None."""

    seed: int = 0
    shape: tuple = (128, 128, 128)  # (nx, ny, nz) voxels
    spacing: tuple = (2.0, 2.0, 2.0)  # (sx, sy, sz) mm
    orientation: str = "LPS"  # stored direction: "LPS" identity, "RAS" diag(-1,-1,1)
    neck: bool = True  # FOV reaches below the chin (else it ends just below it)
    vertex: bool = True  # FOV includes the top of the skull (else it is cut)
    pose_deg: tuple | None = None  # (rx, ry, rz) rotations about L, P, S axes; None = from seed
    devices: tuple = ()  # any of "glasses", "tube"
    noise_hu: float = 15.0  # Gaussian noise sd

    @classmethod
    def random(cls, seed: int, size: str = "small") -> PhantomSpec:
        """Draw pose, field of view, orientation and devices from the seed."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, not {size!r}")
        rng = np.random.default_rng([seed, 7])
        pose = tuple(float(v) for v in np.clip(rng.normal(0, 8, 3), -20, 20).round(2))
        devices = tuple(d for d, p in (("glasses", 0.25), ("tube", 0.2)) if rng.random() < p)
        orientation = "RAS" if rng.random() < 0.5 else "LPS"
        neck = bool(rng.random() < 0.5)
        vertex = bool(rng.random() < 0.8)
        noise = float(rng.uniform(10, 20))
        if size == "small":
            n = int(rng.choice([112, 120, 128]))
            shape, spacing = (n, 128, 144 if neck else 128), (2.0, 2.0, 2.0)
        elif size == "medium":
            s = float(rng.choice([0.9, 1.0]))
            shape, spacing = (256, 256, 280 if neck else 250), (s, s, 1.0)
        else:
            shape, spacing, neck = (512, 512, 300), (0.45, 0.45, 0.6), False
        return cls(
            seed=seed,
            shape=shape,
            spacing=spacing,
            orientation=orientation,
            neck=neck,
            vertex=vertex,
            pose_deg=pose,
            devices=devices,
            noise_hu=noise,
        )


@dataclass
class Phantom:
    image: object  # sitk Int16, HU with noise
    face: object  # sitk UInt8 0/1
    intracranial: object  # sitk UInt8 0/1
    arteries: object  # sitk UInt8 0/1
    spec: PhantomSpec
    clean: object = None  # sitk Int16, HU without noise
    labels: object = None  # sitk UInt8 tissue labels (anatomy.NAMES)
    identity: dict = field(default_factory=dict)
    pose_deg: tuple = (0.0, 0.0, 0.0)
    landmarks: dict = field(default_factory=dict)  # physical LPS points (mm)
    info: dict = field(default_factory=dict)
    _to_anat: tuple | None = None  # (M, b): anatomical = M @ physical + b

    def anatomical(self, points) -> np.ndarray:
        """Physical LPS points (N, 3) -> the phantom's anatomical frame (undoes pose, placement, scale)."""
        if self._to_anat is None:
            raise ValueError("this phantom was not made by build_phantom, so its anatomical frame is unknown")
        M, b = self._to_anat
        return np.asarray(points, float) @ M.T + b

    def bone_mask(self) -> np.ndarray:
        """Boolean array (z, y, x) of bone and teeth, for tests."""
        import SimpleITK as sitk

        return np.isin(sitk.GetArrayViewFromImage(self.labels), A.BONE)


def rotation(pose_deg) -> np.ndarray:
    rx, ry, rz = (math.radians(v) for v in pose_deg)
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _draw(spec: PhantomSpec):
    rng = np.random.default_rng(spec.seed)
    idn = A.draw_identity(rng)
    size = rng.uniform(0.93, 1.06)
    scale = size * rng.uniform(0.96, 1.04, 3)
    pose = tuple(np.clip(rng.normal(0, 8, 3), -20, 20)) if spec.pose_deg is None else tuple(spec.pose_deg)
    jitter = dict(
        x=rng.uniform(-8, 8),
        y=rng.uniform(-6, 6),
        top=rng.uniform(5, 15),
        cut=rng.uniform(15, 35),
        bottom=rng.uniform(10, 20),
    )
    return idn, scale, tuple(float(v) for v in pose), jitter


def _surface_samples(lm):
    """Points on the skin (anatomical) used to place the field of view and the table."""
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ph = np.linspace(-1.2, 1.5, 14)
    T, P = np.meshgrid(t, ph)
    pts = np.stack([74 * np.cos(P) * np.cos(T), 12 + 96 * np.cos(P) * np.sin(T), 22 + 100 * np.sin(P)], -1).reshape(
        -1, 3
    )
    extra = np.array([lm[k] for k in ("nose_tip", "menton", "vertex", "nasion")])
    return np.vstack([pts, extra])


def make_phantom(spec: PhantomSpec) -> Phantom:
    """Generate one phantom (see the module docstring)."""
    import SimpleITK as sitk
    from scipy import ndimage

    if spec.orientation not in ("LPS", "RAS"):
        raise ValueError("orientation must be 'LPS' or 'RAS'")
    nx, ny, nz = (int(v) for v in spec.shape)
    sp = np.array(spec.spacing, float)
    idn, scale, pose, jit = _draw(spec)
    body, paint, lm = A.build(idn, tuple(spec.devices))
    R = rotation(pose)
    S = np.diag(scale)

    def to_phys(q):  # anatomical -> physical, head rotation centre at the physical origin
        return (np.asarray(q, float) - _ROT_CENTRE) @ (R @ S).T

    # field of view: z from the vertex / chin flags, x centred, y keeps the face in
    surf = to_phys(_surface_samples(lm))
    lmp = {k: to_phys(v) for k, v in lm.items()}
    L = nz * sp[2]
    zv = surf[:, 2].max()
    low = min(lmp["menton"][2], to_phys(np.array(lm["menton"]) - [0, 0, 8])[2])
    if spec.neck:
        top = zv + jit["top"] if spec.vertex else zv - jit["cut"]
        bottom = top - L
    else:
        bottom = low - jit["bottom"]
    origin = np.array([jit["x"] - (nx - 1) / 2 * sp[0], 0.0, bottom + sp[2] / 2])
    yf, yb = surf[:, 1].min(), surf[:, 1].max()
    origin[1] = min((yf + yb) / 2 + 8 + jit["y"] - (ny - 1) / 2 * sp[1], yf - 12)

    # voxel index (i, j, k) -> anatomical: q = Aff @ idx + b0
    Minv = np.linalg.inv(R @ S)
    Aff = Minv @ np.diag(sp)
    b0 = Minv @ origin + _ROT_CENTRE

    def index_box(p):
        c = np.array([[x, y, z] for x in (p.lo[0], p.hi[0]) for y in (p.lo[1], p.hi[1]) for z in (p.lo[2], p.hi[2])])
        idx = (to_phys(c) - origin) / sp
        return np.floor(idx.min(0)).astype(int) - 1, np.ceil(idx.max(0)).astype(int) + 2

    body_boxes = [index_box(p) for p in body]
    depth, dorigin, dstep = A.body_depth_grid(body)
    paint_boxes = [index_box(p) for p in paint]

    lut = A.HU.copy()
    lut[A.CORTICAL], lut[A.CANCELLOUS] = idn["hu_cortical"], idn["hu_cancellous"]
    lut[A.TEETH], lut[A.ARTERY] = idn["hu_teeth"], idn["hu_artery"]
    fat = idn["fat"]
    h = float(sp.mean())
    noise_rng = np.random.default_rng([spec.seed, 1])

    lab_all = np.zeros((nz, ny, nx), np.uint8)
    clean: np.ndarray = np.empty((nz, ny, nx), np.int16)
    face = np.zeros((nz, ny, nx), np.uint8)
    intra = np.zeros((nz, ny, nx), np.uint8)
    I = np.arange(nx, dtype=np.float32)
    J = np.arange(ny, dtype=np.float32)
    xs = (origin[0] + sp[0] * np.arange(nx))[None, :]
    ys = (origin[1] + sp[1] * np.arange(ny))[:, None]
    table = _table(xs, ys, surf, jit["x"])
    step = max(1, int(3e6 // (nx * ny)))
    for k0 in range(0, nz, step):
        k1 = min(nz, k0 + step)
        K = np.arange(k0, k1, dtype=np.float32)
        X, Y, Z = (
            (np.float32(Aff[a, 0]) * I)[None, None, :]
            + (np.float32(Aff[a, 1]) * J)[None, :, None]
            + (np.float32(Aff[a, 2]) * K + np.float32(b0[a]))[:, None, None]
            for a in range(3)
        )
        bsdf = np.full(X.shape, 1e3, np.float32)
        for p, box in zip(body, body_boxes):
            sl = _slices(box, k0, k1, nx, ny)
            if sl is None:
                continue
            d = p.fn(X[sl], Y[sl], Z[sl])
            bsdf[sl] = A.smin(bsdf[sl], d, p.k) if p.k >= 0 else -A.smin(-bsdf[sl], d, -p.k)
        lab = lab_all[k0:k1]
        inside = bsdf < 0
        lab[inside] = A.MUSCLE
        lab[inside & (bsdf > -(2.0 + fat))] = A.FAT
        lab[inside & (bsdf > -2.0)] = A.SKIN
        for p, box in zip(paint, paint_boxes):
            sl = _slices(box, k0, k1, nx, ny)
            if sl is not None:
                p.fn(X[sl], Y[sl], Z[sl], lab[sl])
        lab[(lab == A.AIR) & table[None]] = A.TABLE
        # ground truth
        reg = A.face_region(X, Y, Z, lm)
        tissue = np.nonzero(np.isin(lab, A.FACE_TISSUE) & reg)
        f = (np.isin(lab, (A.FRAME, A.GLASS)) | (lab == A.TUBE) & (Y < -74)) & reg
        if tissue[0].size:
            pts = np.stack([X[tissue], Y[tissue], Z[tissue]])
            pts = (pts - dorigin[:, None]) / dstep
            f[tissue] = ndimage.map_coordinates(depth, pts, order=1, mode="nearest") < FACE_DEPTH_MM
        face[k0:k1] = f
        ic = np.isin(lab, A.BRAIN)
        art = np.nonzero(lab == A.ARTERY)
        if art[0].size:
            xa, ya, za = X[art], Y[art], Z[art]
            ic[art] = (A.ell(xa, ya, za, (0, 12, 22), (61.5, 83.5, 87.5)) < 0) & (za > A.skull_base_z(ya))
        intra[k0:k1] = ic
        # HU: table lookup, anti-aliased skin-air boundary, noise
        hu = lut[lab]
        edge = np.isin(lab, (A.AIR, A.SKIN)) & (np.abs(bsdf) < h)
        hu[edge] = -1000.0 + (lut[A.SKIN] + 1000.0) * np.clip(0.5 - bsdf[edge] / h, 0.0, 1.0)
        clean[k0:k1] = np.round(hu).astype(np.int16)
    noisy: np.ndarray = clean.astype(np.float32)
    for k0 in range(0, nz, step):  # noise drawn slab by slab: same stream for the same shape
        noisy[k0 : k0 + step] += (
            noise_rng.standard_normal(noisy[k0 : k0 + step].shape, dtype=np.float32) * spec.noise_hu
        )
    noisy = np.clip(np.round(noisy), -1024, 3071).astype(np.int16)
    arteries = (lab_all == A.ARTERY).astype(np.uint8)

    direction = np.eye(3)
    if spec.orientation == "RAS":
        direction = np.diag([-1.0, -1.0, 1.0])
        origin = origin + [(nx - 1) * sp[0], (ny - 1) * sp[1], 0.0]

    def img(arr):
        if spec.orientation == "RAS":
            arr = np.ascontiguousarray(arr[:, ::-1, ::-1])
        im = sitk.GetImageFromArray(arr)
        im.SetSpacing(tuple(float(v) for v in sp))
        im.SetOrigin(tuple(float(v) for v in origin))
        im.SetDirection(tuple(direction.ravel()))
        return im

    vz = float(np.prod(sp)) / 1000.0
    info = dict(
        face_ml=float(face.sum()) * vz,
        intracranial_ml=float(intra.sum()) * vz,
        arteries_ml=float(arteries.sum()) * vz,
        scale=tuple(float(v) for v in scale),
        vertex_in_fov=bool(zv < bottom + L),
        chin_in_fov=bool(low > bottom),
    )
    return Phantom(
        image=img(noisy),
        face=img(face),
        intracranial=img(intra),
        arteries=img(arteries),
        spec=spec,
        clean=img(clean),
        labels=img(lab_all),
        identity=idn,
        pose_deg=pose,
        landmarks={k: tuple(float(c) for c in v) for k, v in lmp.items()},
        info=info,
        _to_anat=(Minv, _ROT_CENTRE.copy()),
    )


def _slices(box, k0, k1, nx, ny):
    lo, hi = box
    a, b = max(lo[2], k0), min(hi[2], k1)
    y0, y1, x0, x1 = max(lo[1], 0), min(hi[1], ny), max(lo[0], 0), min(hi[0], nx)
    if a >= b or y0 >= y1 or x0 >= x1:
        return None
    return (slice(a - k0, b - k0), slice(y0, y1), slice(x0, x1))


def _table(xs, ys, surf, cx):
    """Head holder: a curved cradle under the occiput plus a flat table plate (scanner frame)."""
    yb = surf[:, 1].max()
    rc = 100.0
    yc = yb + 5.0 - rc
    r = np.sqrt((xs - cx) ** 2 + (ys - yc) ** 2)
    cradle = (np.abs(r - rc - 2.0) < 2.0) & (ys > yc + 45.0)
    plate = (ys > yb + 16.0) & (ys < yb + 24.0) & (np.abs(xs - cx) < 210.0)
    return cradle | plate


def write_phantom(phantom: Phantom, folder: str, case_name: str, overwrite: bool = False) -> dict:
    """Write the CT and its three masks; returns {"image", "face", "intracranial", "arteries"} -> path."""
    from ..io.volume import write_image_atomic

    out = {}
    for key, im, suffix in (
        ("image", phantom.image, ""),
        ("face", phantom.face, "_face_gt"),
        ("intracranial", phantom.intracranial, "_intracranial_gt"),
        ("arteries", phantom.arteries, "_arteries_gt"),
    ):
        out[key] = write_image_atomic(im, os.path.join(folder, f"{case_name}{suffix}.nii.gz"), overwrite=overwrite)
    return out


def save_preview(phantom: Phantom, path: str) -> str:
    """PNG of axial (eye level), sagittal and coronal mid-slices in LPS, face mask outlined in red."""
    import matplotlib
    import SimpleITK as sitk

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ct = sitk.GetArrayFromImage(sitk.DICOMOrient(phantom.image, "LPS"))
    fm = sitk.GetArrayFromImage(sitk.DICOMOrient(phantom.face, "LPS"))
    im = sitk.DICOMOrient(phantom.image, "LPS")
    eye = np.array(im.TransformPhysicalPointToContinuousIndex(phantom.landmarks["eye_l"]))
    kz = int(np.clip(round(eye[2]), 0, ct.shape[0] - 1))
    kx = ct.shape[2] // 2
    ky = int(np.clip(round(eye[1]) + 10, 0, ct.shape[1] - 1))
    sx, sy, sz = im.GetSpacing()
    views = [
        (ct[kz], fm[kz], sy / sx, "axial"),
        (ct[::-1, :, kx], fm[::-1, :, kx], sz / sy, "sagittal"),
        (ct[::-1, ky, :], fm[::-1, ky, :], sz / sx, "coronal"),
    ]
    fig, ax = plt.subplots(1, 3, figsize=(15, 5.5))
    for a, (sl, m, asp, name) in zip(ax, views):
        a.imshow(sl, cmap="gray", vmin=-200, vmax=600, aspect=asp)
        if m.any():
            a.contour(m, levels=[0.5], colors="r", linewidths=0.8)
        a.set_title(name)
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
