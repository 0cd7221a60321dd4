"""Analytic head-and-neck anatomy for the synthetic CTA phantoms (see synthetic/phantom.py).

Everything here lives in the *anatomical frame*: millimetres, x = patient Left,
y = Posterior, z = Superior (LPS), origin at eye level on the mid-sagittal plane,
for an unscaled "average" head (vertex z = +122, menton z = -110, eyes at y = -60).
phantom.py scales, rotates and places this frame in the scanner.

A structure is a `Prim`: an anatomical bounding box plus a function of the coordinate
arrays (X, Y, Z) of the voxels inside that box. Body primitives return approximate
signed distances (mm, negative inside) that are smooth-unioned into the skin surface;
paint primitives write tissue labels into the label array, in list order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# ---- tissue labels (uint8) and their nominal HU -------------------------------------------------
AIR, FAT, SKIN, MUSCLE, EAR, EYE, LENS, ORBIT, TONGUE, GM, WM, CSF, VENTRICLE = range(13)
CORTICAL, CANCELLOUS, TEETH, ARTERY, VEIN, AIRWAY, CORD, DISC, FRAME, GLASS, TUBE, TABLE = range(13, 25)
NAMES = (
    "air fat skin muscle ear eye lens orbit tongue grey_matter white_matter csf ventricle cortical_bone "
    "cancellous_bone teeth artery vein airway cord disc glasses_frame glasses_lens tube table"
).split()
HU = np.array(
    [
        -1000,
        -95,
        45,
        50,
        45,
        10,
        100,
        -80,
        55,
        40,
        28,
        6,
        4,
        1200,
        420,
        2400,
        400,
        160,
        -990,
        35,
        80,
        250,
        150,
        120,
        200,
    ],
    dtype=np.float32,
)
BONE = (CORTICAL, CANCELLOUS, TEETH)
BRAIN = (GM, WM, CSF, VENTRICLE)
SOFT = (FAT, SKIN, MUSCLE, ORBIT, TONGUE)
#: labels that belong to the face mask when they lie in the face region
FACE_TISSUE = (FAT, SKIN, MUSCLE, EYE, LENS, ORBIT)
DEVICES = (FRAME, GLASS, TUBE)


@dataclass
class Prim:
    lo: tuple  # anatomical bounding box (mm)
    hi: tuple
    fn: Callable  # body: fn(X, Y, Z) -> sdf; paint: fn(X, Y, Z, lab) -> None (edits lab in place)
    k: float = 0.0  # body only: smooth-union radius (mm); negative = smooth subtraction


# ---- signed-distance helpers (float32 arrays in, float32 out) ----------------------------------


def ell(X, Y, Z, c, r):
    """Approximate signed distance to an axis-aligned ellipsoid (exact on the axes)."""
    a = (X - c[0]) / r[0]
    b = (Y - c[1]) / r[1]
    d = (Z - c[2]) / r[2]
    k0 = np.sqrt(a * a + b * b + d * d)
    k1 = np.sqrt((a / r[0]) ** 2 + (b / r[1]) ** 2 + (d / r[2]) ** 2) + 1e-6
    out = k0 * (k0 - 1.0) / k1
    return np.where(k0 < 1.0, np.minimum(out, (k0 - 1.0) * min(r)), out)  # deep inside: not ~0


def seg(X, Y, Z, a, b, ra, rb=None):
    """Signed distance to a round cone (capsule when ra == rb) from point a to point b."""
    rb = ra if rb is None else rb
    a = np.asarray(a, np.float32)
    ab = np.asarray(b, np.float32) - a
    px, py, pz = X - a[0], Y - a[1], Z - a[2]
    t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / float(ab @ ab + 1e-9), 0.0, 1.0)
    dx, dy, dz = px - t * ab[0], py - t * ab[1], pz - t * ab[2]
    return np.sqrt(dx * dx + dy * dy + dz * dz) - (ra + (rb - ra) * t)


def smin(a, b, k):
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def box_of(c, r, pad=0.0):
    return tuple(c[i] - r[i] - pad for i in range(3)), tuple(c[i] + r[i] + pad for i in range(3))


def painter(label, sdf, only=None, never=None):
    """A paint function: `label` where sdf(X,Y,Z) < 0, optionally only over / never over some labels."""

    def fn(X, Y, Z, lab):
        m = sdf(X, Y, Z) < 0
        if only is not None:
            m &= np.isin(lab, only)
        if never is not None:
            m &= ~np.isin(lab, never)
        lab[m] = label

    return fn


def paint_ell(label, c, r, only=None, never=None, pad=1.0):
    lo, hi = box_of(c, r, pad)
    return Prim(lo, hi, painter(label, lambda X, Y, Z: ell(X, Y, Z, c, r), only, never))


def paint_seg(label, a, b, ra, rb=None, only=None, never=None):
    rb = ra if rb is None else rb
    m = max(ra, rb) + 1.0
    lo = tuple(min(a[i], b[i]) - m for i in range(3))
    hi = tuple(max(a[i], b[i]) + m for i in range(3))
    return Prim(lo, hi, painter(label, lambda X, Y, Z: seg(X, Y, Z, a, b, ra, rb), only, never))


def paint_tube(label, pts, r, only=None, never=None):
    """A tube along a polyline: one primitive per segment, so each is evaluated in its own small box."""
    rs = r if isinstance(r, (list, tuple)) else [r] * len(pts)
    return [paint_seg(label, pts[i], pts[i + 1], rs[i], rs[i + 1], only, never) for i in range(len(pts) - 1)]


def body_ell(c, r, k=8.0):
    lo, hi = box_of(c, r, abs(k) * 1.5 + 2)
    return Prim(lo, hi, lambda X, Y, Z: ell(X, Y, Z, c, r), k)


def body_seg(a, b, ra, rb=None, k=6.0):
    rb = ra if rb is None else rb
    m = max(ra, rb) + abs(k) * 1.5 + 2
    lo = tuple(min(a[i], b[i]) - m for i in range(3))
    hi = tuple(max(a[i], b[i]) + m for i in range(3))
    return Prim(lo, hi, lambda X, Y, Z: seg(X, Y, Z, a, b, ra, rb), k)


def mirror(fn):
    """Call fn(s) for s = -1 (right) and +1 (left) and concatenate the returned lists."""
    out = []
    for s in (-1.0, 1.0):
        res = fn(s)
        out.extend(res if isinstance(res, list) else [res])
    return out


# ---- identity: the face/skull shape parameters drawn from the seed ----------------------------


def draw_identity(rng) -> dict:
    u = rng.uniform
    return dict(
        nose_len=u(10, 20),
        nose_w=u(11, 17),
        nose_drop=u(-4, 4),
        jaw_w=u(0.86, 1.12),
        brow_h=u(-3, 3),
        brow_p=u(0.6, 1.4),
        eye_dx=u(29, 35),
        lip_t=u(5, 9),
        mouth_w=u(19, 26),
        chin=u(-5, 5),
        cheek=u(0.85, 1.2),
        fat=u(3.0, 8.0),
        sinus=u(0.6, 1.3),
        ear=u(0.85, 1.15),
        hu_cortical=u(900, 1500),
        hu_cancellous=u(330, 480),
        hu_teeth=u(2000, 2900),
        hu_artery=u(330, 480),
    )


def skull_base_z(Y):
    """Floor of the cranial cavity: anterior fossa (over the orbits) high, middle/posterior fossa low."""
    return -32.0 + 46.0 / (1.0 + np.exp((Y + 35.0) / 3.0))


# ---- the anatomy ------------------------------------------------------------------------------


def build(idn: dict, devices=()) -> tuple[list, list, dict]:
    """Return (body_prims, paint_prims, landmarks) for one identity; landmarks in the anatomical frame."""
    ed, jw, nl, nw = idn["eye_dx"], idn["jaw_w"], idn["nose_len"], idn["nose_w"]
    bh, mw, lt, ch = idn["brow_h"], idn["mouth_w"], idn["lip_t"], idn["chin"]
    tube = "tube" in devices
    mouth_open = 4.5 if tube else 1.3
    menton = (0.0, -70.0 - ch, -110.0)
    lm = dict(
        vertex=(0.0, 12.0, 122.0),
        nasion=(0.0, -80.0, 5.0),
        nose_tip=(0.0, -94.0 - nl, -30.0 + idn["nose_drop"]),
        eye_l=(ed, -60.0, 0.0),
        eye_r=(-ed, -60.0, 0.0),
        menton=menton,
        occiput=(0.0, 108.0, 22.0),
        sinus_top=(0.0, -73.0, 26.0 + 9.0 * idn["sinus"]),
        hyoid=(0.0, -38.0, -118.0),
    )

    # -- outer body surface (skin); smooth union of soft shapes, minus eye recesses, nostrils, mouth
    body = [
        body_ell((0, 12, 22), (74, 96, 100)),  # cranium
        body_ell((0, -5, -25), (66 * jw**0.3, 76, 45), 12),  # mid-face
        body_ell((0, -28, -74), (52 * jw, 52, 34), 12),  # lower face / jaw
        body_seg((0, 22, -320), (0, 22, -60), 55, 55, 20),  # neck
        body_seg((0, -82, 6), (0, -86 - nl, -28 + idn["nose_drop"]), 5.5, 8.0, 5),  # nasal dorsum -> tip
    ]
    body += mirror(lambda s: body_ell((s * nw * 0.6, -88, -38 + idn["nose_drop"] / 2), (8, 9, 7), 4))  # alae
    body += mirror(lambda s: body_ell((s * 24, -77, 13 + bh), (20, 6 * idn["brow_p"], 6), 6))  # brows
    body += mirror(lambda s: body_ell((s * 40 * jw**0.5, -56, -28), (20, 14 * idn["cheek"], 18), 10))  # cheeks
    body += [
        body_ell((0, -82 - lt / 2, -51), (mw, lt, 6.5), 5),  # upper lip
        body_ell((0, -80 - lt / 2, -64), (mw * 0.9, lt, 6.5), 5),  # lower lip
        body_ell((0, -74 - ch, -97), (19 * jw, 12, 13), 8),  # chin
    ]
    body += mirror(lambda s: body_ell((s * ed, -79, 1), (16, 8, 10), -4))  # eye recesses (subtract)
    body += mirror(
        lambda s: body_ell((s * nw * 0.35, -90 - nl * 0.3, -41 + idn["nose_drop"] / 2), (3.2, 6, 3.5), -1)
    )  # nostrils
    body += [body_ell((0, -90, -57.5), (mw * 0.85, 10, mouth_open), -1.5)]  # oral fissure

    # -- labels, painted in order
    ci, co = (0, 12, 22), (0, 12, 22)
    ro, ri = (67, 89, 93), (61.5, 83.5, 87.5)

    def skull_and_brain(X, Y, Z, lab):
        so, si = ell(X, Y, Z, co, ro), ell(X, Y, Z, ci, ri)
        zb = skull_base_z(Y)
        shell = (so < 0) & (Z > zb - 7)
        lab[shell & ((so > -1.8) | (si < 1.8))] = CORTICAL
        lab[shell & (so <= -1.8) & (si >= 1.8)] = CANCELLOUS
        cav = (si < 0) & (Z > zb)
        lab[cav] = WM
        lab[cav & (si > -7)] = GM
        lab[cav & (si > -2.5)] = CSF
        fm = (X * X + (Y - 24) ** 2 < 15**2) & (Z < -20) & ~cav  # foramen magnum
        lab[fm & shell] = MUSCLE

    paint = [Prim((-70, -80, -45), (70, 104, 118), skull_and_brain)]
    paint += mirror(lambda s: paint_ell(VENTRICLE, (s * 9, 5, 22), (5, 26, 8), only=BRAIN))
    paint += [
        paint_ell(VENTRICLE, (0, 8, 8), (1.8, 12, 7), only=BRAIN),
        paint_ell(VENTRICLE, (0, 30, -22), (4, 3, 4), only=BRAIN),
    ]
    # frontal bone thickening with the frontal sinus, brow ridges, orbits and eyes
    paint += [
        paint_ell(CORTICAL, (0, -72, 26), (28, 9, 16), never=(AIR,)),
        paint_ell(AIRWAY, (0, -73, 26), (15 * idn["sinus"], 4.5, 9 * idn["sinus"])),
    ]
    paint += mirror(lambda s: paint_ell(CORTICAL, (s * 24, -74, 13 + bh), (18, 4.5, 5), never=(AIR, SKIN)))
    bone_soft = (CORTICAL, CANCELLOUS, MUSCLE, FAT, CSF, GM, WM)

    def orbit_walls(s):
        c, r = (s * ed, -48, -1), (19.5, 27, 18)
        lo, hi = box_of(c, r, 1)
        return Prim(
            lo,
            hi,
            painter(CORTICAL, lambda X, Y, Z: np.maximum(ell(X, Y, Z, c, r), Y + 66), never=(AIR, SKIN, FAT, AIRWAY)),
        )

    paint += mirror(orbit_walls)
    paint += mirror(lambda s: paint_ell(ORBIT, (s * ed, -48, -1), (16.5, 26, 15), only=bone_soft))
    # maxilla, nasal cavity, sinuses, zygoma, palate, nasal bones
    paint += [
        paint_ell(CORTICAL, (0, -54, -32), (40, 26, 20), only=(MUSCLE, FAT, ORBIT)),
        paint_ell(CANCELLOUS, (0, -54, -32), (37, 23, 17), only=(CORTICAL,)),
    ]
    paint += mirror(lambda s: paint_ell(AIRWAY, (s * 22, -52, -28), (12, 15, 12)))  # maxillary sinus
    paint += mirror(lambda s: paint_ell(CORTICAL, (s * 48, -50, -14), (12, 13, 8), only=(MUSCLE, FAT, ORBIT)))
    paint += mirror(
        lambda s: paint_tube(
            CORTICAL, [(s * 50, -42, -14), (s * 62, -10, -14), (s * 63, 5, -12)], 4.5, only=(MUSCLE, FAT)
        )
    )
    paint += [
        paint_ell(AIRWAY, (0, -58, -24), (11, 30, 18), never=(SKIN,)),  # nasal cavity
        paint_ell(CORTICAL, (0, -62, -24), (1.0, 24, 14), only=(AIRWAY,)),  # septum
        paint_ell(CORTICAL, (0, -48, -44), (26, 26, 2.8)),
    ]  # hard palate
    paint += mirror(
        lambda s: paint_ell(
            AIRWAY, (s * nw * 0.33, -86 - nl * 0.2, -38 + idn["nose_drop"] / 2), (3.0, 8, 3.5), only=(MUSCLE, FAT)
        )
    )  # nasal vestibule
    paint += paint_tube(CORTICAL, [(0, -78, 7), (0, -84, -4), (0, -86, -12)], [4.5, 4, 3], only=(MUSCLE, FAT, AIRWAY))
    # mandible (cortical shell, cancellous core), alveolar ridges, teeth
    jaw = [(50 * jw, 4, -12), (49 * jw, 0, -45), (47 * jw, -2, -80), (36 * jw, -40, -92), (18 * jw, -64 - ch, -97)]
    for s in (-1.0, 1.0):
        pts = [(s * p[0], p[1], p[2]) for p in jaw] + [(0, -71 - ch, -98)]
        paint += paint_tube(CORTICAL, pts, [6, 6, 7, 8.5, 9, 9.5], never=(AIR, SKIN))
        paint += paint_tube(CANCELLOUS, pts, [3.5, 3.5, 4.5, 6, 6.5, 7], only=(CORTICAL,))
    paint += [
        paint_ell(TONGUE, (0, -42, -63), (22 * jw, 30, 12), only=(MUSCLE, FAT)),
        paint_ell(AIRWAY, (0, -64, -57.5), (16, 12, mouth_open * 0.8), only=(MUSCLE, TONGUE, FAT)),
    ]

    def arch(u, yf, depth=40.0, half=27.0):
        return (half * jw * u, yf + depth * u * u)

    us = np.linspace(-1, 1, 16)
    for zc, yf, z0, z1 in ((-42.0, -72.0, -45.0, -56.5), (-72.0, -70.0 - ch * 0.5, -59.5, -70.0)):
        ridge = [(*arch(u, yf + 2), zc) for u in np.linspace(-1, 1, 9)]
        paint += paint_tube(CANCELLOUS, ridge, 6.5, only=(MUSCLE, FAT, TONGUE, CORTICAL, AIRWAY))
        for u in us:
            x, y = arch(u, yf)
            paint.append(paint_seg(TEETH, (x, y, z0), (x, y, z1), 2.6 + 2.0 * abs(u)))
    # pharynx and trachea (air), cervical spine, spinal canal, cord
    paint += paint_tube(
        AIRWAY,
        [(0, -28, -26), (0, 4, -40), (0, 9, -70), (0, 0, -100), (0, -14, -135), (0, -18, -330)],
        [7, 8, 7, 7, 8, 8],
        only=SOFT,
    )
    for n in range(8):
        z = -48.0 - 17.0 * n
        c = (0.0, 4.0, z)
        paint += [
            paint_ell(CORTICAL, c, (12, 10, 7), only=SOFT),
            paint_ell(CANCELLOUS, c, (10, 8, 5), only=(CORTICAL,)),
            paint_ell(DISC, (0, 4, z - 8.5), (11, 9, 1.8), only=SOFT),
        ]
        ring = [
            (0, 12, z),
            (9, 16, z),
            (11, 26, z),
            (8, 35, z),
            (0, 38, z),
            (-8, 35, z),
            (-11, 26, z),
            (-9, 16, z),
            (0, 12, z),
        ]
        paint += paint_tube(CORTICAL, ring, 3.2, only=SOFT)
        paint += [paint_seg(CORTICAL, (0, 38, z), (0, 52, z - 6), 3.2, only=SOFT)]
        paint += mirror(lambda s, z=z: paint_seg(CORTICAL, (s * 10, 16, z), (s * 28, 14, z), 3.2, only=SOFT))
    paint += [
        paint_seg(CSF, (0, 24, -30), (0, 25, -330), 8, only=SOFT + (CORTICAL, CANCELLOUS)),
        paint_seg(WM, (0, 20, 4), (0, 24, -30), 11, 8, only=BRAIN + SOFT + (CORTICAL, CANCELLOUS)),
        paint_seg(CORD, (0, 24, -30), (0, 25, -330), 5.2),
    ]
    # ears (not part of the face mask)
    e = idn["ear"]
    paint += mirror(
        lambda s: Prim(
            (s * 76 - 8, -6, -32),
            (s * 76 + 8, 34, 28),
            painter(EAR, lambda X, Y, Z: ell(X, Y, Z, (s * 76, 14, -2), (5.5, 14 * e, 27 * e)), only=(AIR, SKIN, FAT)),
        )
    )
    paint += mirror(lambda s: paint_ell(AIR, (s * 80, 12, -4), (4, 7 * e, 10 * e), only=(EAR,)))
    # eyes with lenses and eyelids
    for s in (-1.0, 1.0):
        c = (s * ed, -60.0, 0.0)
        paint += [paint_ell(EYE, c, (12, 12, 12)), paint_ell(LENS, (c[0], -69.5, 0), (4.5, 1.8, 4.5), only=(EYE,))]

        def lids(X, Y, Z, lab, c=c):
            d = np.sqrt((X - c[0]) ** 2 + (Y - c[1]) ** 2 + (Z - c[2]) ** 2)
            m = (d >= 12) & (d < 14.2) & (Y < c[1] - 3) & ((Z > c[2] + 2.5) | (Z < c[2] - 4.0))
            lab[m & np.isin(lab, (AIR, FAT, ORBIT))] = SKIN

        paint.append(Prim(box_of(c, (15, 15, 15))[0], box_of(c, (15, 15, 15))[1], lids))
    # arteries (contrast) and jugular veins
    for s in (-1.0, 1.0):
        paint += paint_tube(
            VEIN, [(s * 30, 14, -330), (s * 32, 14, -60), (s * 34, 22, -38)], 6, never=(BONE + (AIRWAY,))
        )
        paint += paint_tube(ARTERY, [(s * 24, -2, -330), (s * 25, -2, -95)], 3.8)  # CCA
        paint += paint_tube(
            ARTERY,
            [
                (s * 25, -2, -95),
                (s * 22, 6, -60),
                (s * 20, 4, -32),
                (s * 17, -8, -16),
                (s * 15, -16, -4),
                (s * 14, -10, 6),
                (s * 13, -4, 6),
            ],
            [3.4, 3.0, 2.8, 2.6, 2.5, 2.4, 2.3],
        )
        paint += paint_tube(ARTERY, [(s * 25, -2, -95), (s * 33, -18, -75), (s * 44, -22, -50)], [2.6, 2.2, 1.8])  # ECA
        paint += paint_tube(
            ARTERY,
            [(s * 24, 18, -330), (s * 23, 18, -60), (s * 26, 28, -48), (s * 12, 30, -40), (s * 1.5, 22, -32)],
            2.2,
        )  # vertebral
        paint += paint_tube(
            ARTERY, [(s * 13, -4, 6), (s * 30, -8, 10), (s * 48, -6, 16), (s * 56, 6, 34)], [2.2, 2.0, 1.8, 1.5]
        )  # MCA
        paint += paint_tube(
            ARTERY,
            [
                (s * 13, -4, 6),
                (s * 5, -20, 10),
                (s * 1.2, -24, 10),
                (s * 1.5, -34, 30),
                (s * 1.5, -20, 55),
                (s * 1.5, 10, 65),
            ],
            [2.0, 1.8, 1.6, 1.5, 1.4, 1.3],
        )  # ACA
        paint += paint_tube(ARTERY, [(s * 13, -4, 6), (s * 11, 8, 4), (s * 6, 16, 2)], 1.3)  # PComm
        paint += paint_tube(
            ARTERY, [(0, 18, 2), (s * 6, 16, 2), (s * 22, 24, 6), (s * 30, 50, 12)], [1.9, 1.8, 1.6, 1.4]
        )  # PCA
    paint += paint_tube(ARTERY, [(0, 22, -32), (0, 19, -12), (0, 18, 2)], 2.3)  # basilar
    # external devices
    if "glasses" in devices:
        for s in (-1.0, 1.0):
            c = (s * ed, -93.0, 0.0)
            paint.append(
                Prim(
                    box_of(c, (24, 3, 20))[0],
                    box_of(c, (24, 3, 20))[1],
                    painter(
                        GLASS,
                        lambda X, Y, Z, c=c: np.maximum(ell(X, Y, Z, c, (21, 30, 16)), np.abs(Y - c[1]) - 1.3),
                        only=(AIR,),
                    ),
                )
            )

            def rim(X, Y, Z, c=c):
                q = np.sqrt(((X - c[0]) / 22.5) ** 2 + ((Z - c[2]) / 17.5) ** 2)
                return np.maximum(np.abs(q - 1.0) * 19.0 - 1.6, np.abs(Y - c[1]) - 2.2)

            paint.append(
                Prim(box_of(c, (25, 3, 20))[0], box_of(c, (25, 3, 20))[1], painter(FRAME, rim, only=(AIR, GLASS)))
            )
            paint += paint_tube(
                FRAME,
                [(s * (ed + 22), -93, 3), (s * 70, -82, 5), (s * 78, -20, 6), (s * 79, 12, 2), (s * 76, 26, -12)],
                1.6,
                only=(AIR,),
            )
        paint += paint_tube(FRAME, [(-ed + 22, -93, 4), (0, -96, 6), (ed - 22, -93, 4)], 1.8, only=(AIR,))
    if tube:
        pts = [
            (0, -150, -110),
            (0, -125, -70),
            (0, -100, -58),
            (0, -70, -57.5),
            (0, -30, -60),
            (0, 2, -80),
            (0, 0, -100),
            (0, -14, -135),
            (0, -18, -330),
        ]
        paint += paint_tube(TUBE, pts, 4.6, never=(TEETH,))
        paint += paint_tube(AIRWAY, pts, 3.4, only=(TUBE,))
    return body, paint, lm


def face_region(X, Y, Z, lm) -> np.ndarray:
    """The face region of the mask definition, as a boolean array over anatomical coordinates.

    From a plane 8 mm above the frontal sinus down to the hyoid level (8 mm below the menton);
    posterior limit: a coronal plane behind the orbits (y = -32) above the zygomatic arch
    (z > -8), a plane behind the masseters (y = +8) down to the mandibular angle (z > -84),
    and below that a plane behind the chin (y = -38, submental region only).
    """
    top = lm["sinus_top"][2] + 8.0
    bot = lm["menton"][2] - 8.0
    ypost = np.where(Z > -8.0, -32.0, np.where(Z > -84.0, 8.0, -38.0)).astype(np.float32)
    return (Z <= top) & (Z >= bot) & (Y <= ypost)


def body_depth_grid(body, step=2.0, lo=(-100.0, -150.0, -190.0), hi=(100.0, 130.0, 150.0)):
    """Euclidean depth below the skin (mm, 0 outside) on an axis-aligned anatomical grid.

    Returns (depth array indexed [x, y, z], grid origin, step), for trilinear look-ups."""
    from scipy import ndimage

    axes = [np.arange(lo[i], hi[i] + step / 2, step, dtype=np.float32) for i in range(3)]
    X, Y, Z = np.meshgrid(*axes, indexing="ij", sparse=True)
    X, Y, Z = np.broadcast_arrays(X, Y, Z)
    sdf = np.full(X.shape, 1e3, np.float32)
    for p in body:
        sl = tuple(
            slice(max(0, int((p.lo[i] - lo[i]) // step)), max(0, int((p.hi[i] - lo[i]) // step) + 2)) for i in range(3)
        )
        d = p.fn(X[sl], Y[sl], Z[sl])
        sdf[sl] = smin(sdf[sl], d, p.k) if p.k >= 0 else -smin(-sdf[sl], d, -p.k)
    depth = ndimage.distance_transform_edt(sdf < 0) * step
    return depth.astype(np.float32), np.array(lo), step
