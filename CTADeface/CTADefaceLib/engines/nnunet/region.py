"""Where the face can be: a cheap region of interest, and the fewest network tiles that cover it.

The face model costs one forward pass per tile (seconds per 128^3 tile on a CPU), and a
head CTA's face fills a small part of the volume. `plan_face_tiles` finds, on a copy downsampled to
about 3 mm (pure numpy/scipy/SimpleITK, well under a second):

1. the body: HU above -500, opened by one voxel (drops the table, cradle and thin tubes), largest
   connected component, holes filled (3D, and per axial slice for the nasal cavity);
2. the nose tip: the most anterior body point among slices narrower than a head (the chest and
   shoulders, when in the field of view, are wider), within 280 mm of the top of the body;
3. the candidate face voxels: inside the body within `depth_mm` of the skin (the face is a shell of
   skin, fat and muscle; the paper's mask stops at bone), plus anything dense (glasses, tubes) just
   outside it, restricted to a slab around the nose tip that holds the whole face for heads tilted up
   to 20 degrees about any axis: from `below_mm` under the nose tip to `above_mm` over it (forehead
   above the frontal sinus down to the hyoid), and from the nose tip back to `behind_mm` behind it
   (masseters, temples; ears and occiput stay out);
4. tiles: a greedy cover of the candidate voxels by boxes of the network's patch size (in input
   voxels), placed anywhere in the image on a ~3 mm grid. Voxels no tile covers are background.
   Their bounding box is the region the network may ever see (`TilePlan.box`).

The candidate region must hold the face in any pose up to 20 degrees, so it is far bigger than a face
(`python Testing/benchmarks/speed.py --compare` counts the tiles each way). So the network does not run on
all of it at once: it first runs on the *core* (the candidate voxels in a slab that holds the face of
an upright head: `core_below_mm` under the nose tip to `core_above_mm` over it, `core_behind_mm`
back), and then `next_tiles` follows the face the network found: wherever the predicted face comes
within `FRONTIER_MM` of the edge of the tiles run so far, the candidate voxels just beyond that edge
get tiles too, round after round, until the face ends inside what was run. A tilted head costs a
round or two more; it never gets less than the face it has.

Arrays are in the engine's canonical orientation: axes (z, y, x) increasing toward superior,
posterior and left (LPS). If anything looks wrong (no body, a body too small to be a head), the
plan says `whole_volume=True` and the caller runs the model everywhere, as upstream does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ...mask import largest_component

if TYPE_CHECKING:
    import SimpleITK as sitk

#: A tile's start indices (z, y, x) in input voxels.
Start = tuple[int, ...]
#: Per axis: the possible tile starts, and the low-res index range [lo, hi) each covers.
TileAxes = list[tuple[np.ndarray, np.ndarray, np.ndarray]]

#: The body threshold on the ~3 mm copy the planner searches (step 1 above); its own value, not mask.BODY_HU.
LOW_RES_BODY_HU = -500.0
DEVICE_HU = -900.0
HEAD_MAX_WIDTH_MM = 240.0
HEAD_MAX_HEIGHT_MM = 280.0
FRONTIER_MM = 6.0  # predicted face this close to the edge of the tiles run may go on beyond it
GROW_MM = 9.0  # how far beyond that edge the next round must reach
STEER_MM = 18.0  # new tiles lean toward uncovered candidate voxels this close to the predicted face


@dataclass
class TilePlan:
    """Tiles (start indices, z, y, x) of size `tile` in the image given, and their bounding box."""

    tile: tuple[int, ...]  # tile size in input voxels (z, y, x)
    starts: list[Start] = field(default_factory=list)  # the tiles to run (grows with next_tiles)
    box: tuple[int, int, int, int, int, int] | None = None  # (z0, z1, y0, y1, x0, x1): all candidate tiles' union
    whole_volume: bool = False  # True: no head found, run the model everywhere
    reason: str = ""
    nose_tip_index: tuple[int, ...] | None = None
    candidate_voxels_ml: float = 0.0
    reach_tiles: int = 0  # tiles that cover the whole candidate region (the most a case can cost)
    rounds: int = 1  # prediction rounds so far (1 + growth rounds)
    candidate: np.ndarray | None = field(default=None, repr=False)  # low-res candidate voxels (z, y, x)
    factors: tuple[int, ...] = (1, 1, 1)  # low-res voxel = factors input voxels
    image_shape: tuple[int, ...] = ()
    low_spacing_mm: tuple[float, ...] = (3.0, 3.0, 3.0)  # size of a low-res voxel (z, y, x)
    body: np.ndarray | None = field(default=None, repr=False)  # low-res body mask (z, y, x)
    shell: np.ndarray | None = field(default=None, repr=False)  # low-res skin shell, without the slab limits
    widened: bool = False  # True: growth may follow the face anywhere in the shell (see widen)

    @property
    def n_tiles(self) -> int:
        return len(self.starts)

    def box_slices(self) -> tuple[slice, slice, slice]:
        if self.box is None:
            raise ValueError("a whole-volume plan has no box")
        z0, z1, y0, y1, x0, x1 = self.box
        return slice(z0, z1), slice(y0, y1), slice(x0, x1)


def _shrink_factors(spacing_xyz: Sequence[float], target_mm: float) -> list[int]:
    return [max(1, int(round(target_mm / s))) for s in spacing_xyz]


def body_mask(low: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Largest solid non-air object (the patient), holes filled; the table and thin tubes are dropped."""
    from scipy import ndimage

    dense = low > LOW_RES_BODY_HU
    opened = ndimage.binary_opening(dense, structure=ndimage.generate_binary_structure(3, 1))
    body = largest_component(opened)
    if not body.any():
        return np.zeros_like(dense)
    body = ndimage.binary_dilation(body, iterations=1) & dense | body  # give back what opening shaved off
    body = ndimage.binary_fill_holes(body)
    for k in range(body.shape[0]):  # axial hole filling: the nasal cavity and airways count as inside
        body[k] = ndimage.binary_fill_holes(body[k])
    return body


def candidate_face(
    image: sitk.Image,
    depth_mm: float = 26.0,
    outside_mm: float = 40.0,
    below_mm: float = 130.0,
    above_mm: float = 140.0,
    behind_mm: float = 150.0,
    behind_outer_mm: float = 135.0,
    mid_below_mm: float = 75.0,
    mid_above_mm: float = 40.0,
    core_below_mm: float = 70.0,
    core_above_mm: float = 60.0,
    core_behind_mm: float = 80.0,
    target_mm: float = 3.0,
) -> tuple[np.ndarray | None, tuple[int, ...], dict[str, Any]]:
    """Candidate face voxels on a downsampled grid: (mask (z, y, x), shrink factors (z, y, x), info dict).

    info["core"] is the part of the candidate where an upright head's face is (see the module docstring)."""
    import SimpleITK as sitk
    from scipy import ndimage

    factors_xyz = _shrink_factors(image.GetSpacing(), target_mm)
    small = sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), factors_xyz)
    low = sitk.GetArrayFromImage(small)
    sp = np.array(small.GetSpacing()[::-1], float)  # (z, y, x) mm
    factors = tuple(factors_xyz[::-1])
    info: dict[str, Any] = {}
    body = body_mask(low, sp)
    if body.sum() * np.prod(sp) < 500e3:  # less than half a litre: not a head
        return None, factors, {"reason": "no head-sized body found"}

    # nose tip: most anterior (smallest y) body voxel on head-like slices near the top of the body
    zs = np.nonzero(body.any(axis=(1, 2)))[0]
    top = zs.max()
    width = np.array(
        [(np.ptp(np.nonzero(body[k].any(0))[0]) + 1) * sp[2] if body[k].any() else 0 for k in range(body.shape[0])]
    )
    head_slices = (
        (width > 0) & (width <= HEAD_MAX_WIDTH_MM) & (np.arange(body.shape[0]) >= top - HEAD_MAX_HEIGHT_MM / sp[0])
    )
    if not head_slices.any():
        return None, factors, {"reason": "no head-sized slices"}
    front = np.where(body.any(axis=2), np.arange(body.shape[1])[None, :], body.shape[1]).min(axis=1)  # (z, x)->(z,)
    front = np.where(head_slices, front, body.shape[1])
    kz = int(np.argmin(front))
    ky = int(front[kz])
    kx = int(np.mean(np.nonzero(body[kz, ky])[0]))
    info["nose_tip_low"] = (kz, ky, kx)

    # depth below the skin, and distance outside it (mm)
    depth = ndimage.distance_transform_edt(body, sampling=sp)
    outside = ndimage.distance_transform_edt(~body, sampling=sp)
    # devices (glasses frames are thin: on the ~3 mm copy their mean HU is far above air but below tissue)
    dense_outside = (low > DEVICE_HU) & ~body & (outside <= outside_mm)
    near_skin = ~body & (outside <= 2 * sp.max())  # partial-volume skin voxels
    shell = (body & (depth <= depth_mm)) | dense_outside | near_skin

    # the face slab around the nose tip
    z_mm = (np.arange(body.shape[0]) - kz) * sp[0]
    y_mm = (np.arange(body.shape[1]) - ky) * sp[1]
    # the masseters reach furthest back (mid-face); above the zygomatic arch and under the chin the face
    # stops nearer the front (posterior limits behind the orbits and behind the chin)
    mid = (z_mm >= -mid_below_mm) & (z_mm <= mid_above_mm)
    limit = np.where(mid, behind_mm, behind_outer_mm)
    zone = ((z_mm >= -below_mm) & (z_mm <= above_mm))[:, None, None] & (y_mm[None, :] <= limit[:, None])[:, :, None]
    candidate = shell & zone
    info["candidate_ml"] = float(candidate.sum() * np.prod(sp) / 1000.0)
    core_zone = ((z_mm >= -core_below_mm) & (z_mm <= core_above_mm))[:, None, None] & (y_mm <= core_behind_mm)[
        None, :, None
    ]
    info["core"] = candidate & core_zone
    info["body"] = body
    info["shell"] = shell
    info["low_spacing_mm"] = tuple(float(v) for v in sp)
    return candidate, factors, info


def _starts_along(n_low: int, n_input: int, tile: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Possible tile starts along one axis (input voxels) and the low-res index range each fully covers."""
    if n_input <= tile:
        return np.array([0]), np.array([0]), np.array([n_low])
    starts = np.arange(0, n_input - tile + 1, f)
    if starts[-1] != n_input - tile:
        starts = np.append(starts, n_input - tile)
    lo = np.ceil(starts / f).astype(int)
    hi = np.minimum(np.floor((starts + tile) / f).astype(int), n_low)
    hi = np.where(starts + tile >= n_input, n_low, hi)  # the last tile reaches the image's end
    return starts, lo, hi


def _tile_axes(
    low_shape: Sequence[int],
    image_shape_zyx: Sequence[int],
    tile_zyx: Sequence[int],
    factors: Sequence[int],
    box: Sequence[int] | None = None,
) -> TileAxes:
    """Per axis: possible starts and the low-res range each covers; inside `box` when given."""
    axes: TileAxes = []
    for a in range(3):
        starts, lo, hi = _starts_along(low_shape[a], image_shape_zyx[a], tile_zyx[a], factors[a])
        if box is not None:
            keep = (starts >= box[2 * a]) & (starts + min(tile_zyx[a], image_shape_zyx[a]) <= box[2 * a + 1])
            starts, lo, hi = starts[keep], lo[keep], hi[keep]
        axes.append((starts, lo, hi))
    return axes


def _counts(mask: np.ndarray, axes: TileAxes) -> np.ndarray:
    """For every tile position: how many True low-res voxels of `mask` it covers (summed-area table)."""
    S = np.zeros(tuple(n + 1 for n in mask.shape), np.int64)
    S[1:, 1:, 1:] = mask.cumsum(0).cumsum(1).cumsum(2)
    (_, lz, hz), (_, ly, hy), (_, lx, hx) = axes
    Lz, Hz = lz[:, None, None], hz[:, None, None]
    Ly, Hy = ly[None, :, None], hy[None, :, None]
    Lx, Hx = lx[None, None, :], hx[None, None, :]
    return (
        S[Hz, Hy, Hx]
        - S[Lz, Hy, Hx]
        - S[Hz, Ly, Hx]
        - S[Hz, Hy, Lx]
        + S[Lz, Ly, Hx]
        + S[Lz, Hy, Lx]
        + S[Hz, Ly, Lx]
        - S[Lz, Ly, Lx]
    )


def greedy_cover(
    candidate: np.ndarray,
    factors: Sequence[int],
    image_shape_zyx: Sequence[int],
    tile_zyx: Sequence[int],
    max_tiles: int = 200,
    box: Sequence[int] | None = None,
    prefer: np.ndarray | None = None,
) -> list[Start]:
    """Tile starts (input voxels) that cover every candidate voxel; greedy by newly covered voxels.

    `box` limits the tiles to a region; among positions that cover equally many candidate voxels, the
    one covering most `prefer` voxels wins (a thin band of voxels can be covered from many places)."""
    axes = _tile_axes(candidate.shape, image_shape_zyx, tile_zyx, factors, box)
    uncovered = candidate.copy()
    prefer = None if prefer is None else prefer.copy()
    chosen: list[Start] = []
    while uncovered.any() and len(chosen) < max_tiles:
        count = _counts(uncovered, axes)
        score = count if prefer is None else count * (prefer.size + 1) + _counts(prefer, axes)
        best = np.unravel_index(int(np.argmax(score)), score.shape)
        if count[best] == 0:
            break  # cannot happen: every low-res voxel is inside some tile
        chosen.append(tuple(int(axes[a][0][best[a]]) for a in range(3)))
        covered = tuple(slice(axes[a][1][best[a]], axes[a][2][best[a]]) for a in range(3))
        uncovered[covered] = False
        if prefer is not None:
            prefer[covered] = False
    return chosen


def low_res_cover(plan: TilePlan, starts: Iterable[Sequence[int]]) -> np.ndarray:
    """Low-res voxels wholly inside some of the given tiles."""
    assert plan.candidate is not None, "only a plan with a candidate region (not whole_volume) has tiles to cover"
    covered = np.zeros(plan.candidate.shape, bool)
    for start in starts:
        covered[
            tuple(
                slice(int(np.ceil(s / f)), (s + t) // f if s + t < n else m)
                for s, t, f, n, m in zip(start, plan.tile, plan.factors, plan.image_shape, plan.candidate.shape)
            )
        ] = True
    return covered


def _low_res_any(mask: np.ndarray, factors: Sequence[int], low_shape: Sequence[int]) -> np.ndarray:
    """Low-res voxels holding any True voxel of the full-resolution `mask`."""
    low: np.ndarray = np.zeros(low_shape, bool)
    points = np.nonzero(mask)
    if points[0].size:
        low[tuple(np.minimum(p // f, n - 1) for p, f, n in zip(points, factors, low_shape))] = True
    return low


def plan_face_tiles(image: sitk.Image, tile_zyx: Sequence[int], grow: bool = True, **kwargs: float) -> TilePlan:
    """Tiles of `tile_zyx` input voxels for the first prediction round (see module docstring).

    With `grow` (the default) these cover the core, and `next_tiles` adds more where the predicted face
    goes on; without it they cover the whole candidate region at once. `image` is the canonical (LPS)
    SimpleITK image the engine gets."""
    shape = tuple(image.GetSize()[::-1])
    tile = tuple(int(min(t, n)) for t, n in zip(tile_zyx, shape))
    candidate, factors, info = candidate_face(image, **kwargs)
    if candidate is None or not candidate.any():
        return TilePlan(tile=tile, whole_volume=True, reason=info.get("reason", "no candidate face voxels"))
    reach = greedy_cover(candidate, factors, shape, tile)
    lo = np.min(reach, axis=0)
    hi = np.max(reach, axis=0) + np.array(tile)
    box = (int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]), int(lo[2]), int(hi[2]))
    starts = greedy_cover(info["core"], factors, shape, tile, box=box, prefer=candidate) if grow else reach
    nose = tuple(int(i * f + f // 2) for i, f in zip(info["nose_tip_low"], factors))
    return TilePlan(
        tile=tile,
        starts=list(starts or reach),
        box=box,
        nose_tip_index=nose,
        candidate_voxels_ml=info["candidate_ml"],
        reach_tiles=len(reach),
        candidate=candidate,
        factors=factors,
        image_shape=shape,
        low_spacing_mm=info["low_spacing_mm"],
        body=info["body"],
        shell=info["shell"],
    )


def widen(plan: TilePlan) -> TilePlan:
    """The same tiles, with growth free to follow the face anywhere in the skin shell of the whole image.

    For when the face runs into the slab's limits (a tube taken for the nose tip puts the slab in the wrong
    place): on a CPU, following the face from the tiles already run costs a few tiles, where predicting the
    whole volume of a head CTA costs hundreds. The box becomes the whole image, so the safety net has no side
    left."""
    z, y, x = plan.image_shape
    assert plan.candidate is not None and plan.shell is not None, "a whole-volume plan has nothing to widen"
    return replace(
        plan, starts=list(plan.starts), candidate=plan.candidate | plan.shell, box=(0, z, 0, y, 0, x), widened=True
    )


def next_tiles(plan: TilePlan, face: np.ndarray) -> list[Start]:
    """The tiles to run next, given the face predicted on the tiles run so far (full-resolution boolean
    array, z, y, x); [] when the face ends inside them. The new tiles are appended to `plan.starts`.

    The face counts as going on where it comes within FRONTIER_MM of the edge of the tiles run (not the
    image's edge: nothing is beyond it); the candidate voxels within GROW_MM beyond that edge get tiles,
    placed toward the candidate voxels near the face. With no face at all in the core (a misplaced core),
    the whole candidate region runs."""
    from scipy import ndimage

    if plan.whole_volume or plan.candidate is None:
        return []
    sp = plan.low_spacing_mm
    covered = low_res_cover(plan, plan.starts)
    face_low = _low_res_any(face, plan.factors, plan.candidate.shape) & covered
    if not face_low.any():
        need = plan.candidate & ~covered
    else:
        # distance to the nearest voxel no tile covered; the image's own edge does not count (padded as covered)
        to_edge = ndimage.distance_transform_edt(np.pad(covered, 1, constant_values=True), sampling=sp)[
            1:-1, 1:-1, 1:-1
        ]
        frontier = face_low & (to_edge <= FRONTIER_MM)
        need = plan.candidate & ~covered & (ndimage.distance_transform_edt(~frontier, sampling=sp) <= GROW_MM)
    if not need.any():
        return []
    near_face = ndimage.distance_transform_edt(~face_low, sampling=sp) <= STEER_MM if face_low.any() else plan.candidate
    new = greedy_cover(
        need, plan.factors, plan.image_shape, plan.tile, box=plan.box, prefer=plan.candidate & ~covered & near_face
    )
    new = [s for s in new if s not in set(plan.starts)]
    plan.starts.extend(new)
    plan.rounds += 1
    return new


def covered_mask(plan: TilePlan, shape_zyx: Sequence[int]) -> np.ndarray:
    """Boolean array: True where some planned tile runs (for tests and the benchmark)."""
    mask: np.ndarray = np.zeros(shape_zyx, bool)
    if plan.whole_volume:
        mask[:] = True
        return mask
    for s in plan.starts:
        mask[tuple(slice(a, a + t) for a, t in zip(s, plan.tile))] = True
    return mask


def reaches_tile_border(plan: TilePlan, face: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float = 6.0) -> bool:
    """True when predicted face voxels come within `margin_mm` of a face of the planned region's bounding
    box that is not the image's own edge, and the body goes on beyond that side of the box: the face may
    go on where the network did not look (the region's slab limits were placed wrongly, e.g. a tube taken
    for the nose tip), so the caller must not trust the region. The margin is needed because the network,
    seeing the head cut off, stops the face a few voxels short of the cut. A side beyond which there is
    only air (the cheek ends at the box's side) cannot hide any face.

    Only the box's faces count: there the slab limits cut; inside the box the tiles follow the candidate
    shell, and a face that ends exactly at an inner tile edge is common and harmless."""
    if plan.whole_volume or plan.box is None or not face.any():
        return False
    z0, z1, y0, y1, x0, x1 = plan.box
    for axis, (lo, hi) in enumerate(((z0, z1), (y0, y1), (x0, x1))):
        width = max(1, int(np.ceil(margin_mm / spacing_zyx[axis])))
        for side, band, inside_image in (
            (0, slice(lo, lo + width), lo > 0),
            (1, slice(max(lo, hi - width), hi), hi < face.shape[axis]),
        ):
            if not inside_image:
                continue
            index = [slice(z0, z1), slice(y0, y1), slice(x0, x1)]
            index[axis] = band
            if np.any(face[tuple(index)]) and _body_beyond(plan, axis, side, lo if side == 0 else hi, margin_mm):
                return True
    return False


def _body_beyond(plan: TilePlan, axis: int, side: int, edge: int, margin_mm: float) -> bool:
    """Whether the low-res body mask has voxels just beyond one side of the box (True when unknown)."""
    if plan.body is None or plan.box is None:
        return True
    f, n = plan.factors[axis], plan.body.shape[axis]
    reach = max(1, int(np.ceil(margin_mm / plan.low_spacing_mm[axis])))
    if side == 0:
        beyond = slice(max(0, edge // f - reach), max(0, int(np.ceil(edge / f))))
    else:
        beyond = slice(min(n, edge // f), min(n, int(np.ceil(edge / f)) + reach))
    index = [
        slice(b0 // ff, min(nn, -(-b1 // ff)))
        for b0, b1, ff, nn in zip(plan.box[0::2], plan.box[1::2], plan.factors, plan.body.shape)
    ]
    index[axis] = beyond
    return bool(np.any(plan.body[tuple(index)]))
