"""Does the mask source's grid cover another series of its frame of reference? If not, that series needs its own mask.

A study's mask is computed once, on the mask source, and resampled onto the other series of the frame of reference.
Outside the source's grid the resampled mask is 0, so a series that reaches further (a thick series or a reformat
down to the chin, a larger field of view with the nose outside the source's) would keep the face there. So:

1. geometry: if every voxel of the series lies inside the source's grid, it is covered (no pixels read);
2. otherwise body coverage: the fraction of the series' body voxels (HU > BODY_HU) inside the source's grid;
   below COVERED_FRACTION the series is not covered;
3. a series that is not covered gets a mask computed on its own grid (the caller runs the model on it), and the
   agreement of the source's resampled mask with that own mask (Jaccard, inside the source's grid) is measured:
   - agreeing (Jaccard >= MIN_JACCARD): the union of both masks (the source's where it sees, the own one beyond),
   - disagreeing: the own mask alone (the shared frame of reference does not line the two series up).
A gantry-tilted series cannot be a mask source, so a tilted series that is not covered is left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..mask import BODY_HU  # HU above which a voxel counts as body (skin, fat, bone, not air)

if TYPE_CHECKING:
    from .geometry import Geometry

#: A series with at least this fraction of its body voxels inside the source's grid counts as covered.
COVERED_FRACTION = 0.999
#: Below this Jaccard index the source's resampled mask and the series' own mask disagree.
MIN_JACCARD = 0.93
#: At most about this many body voxels are tested (in-plane subsampling on large series; a fraction needs no more).
_SAMPLE = 1_000_000


def _axes(geometry: Geometry) -> np.ndarray:
    """index (x, y, z) -> mm offset, as a 3x3 matrix (columns: the row, column and slice steps)."""
    return np.array(geometry.direction).reshape(3, 3) * np.array(geometry.spacing)


def _inside(points: np.ndarray, source: Geometry) -> np.ndarray:
    """Which physical points (n, 3) lie in the source's voxels (within half a voxel of its outermost centres)."""
    index = (points - np.asarray(source.origin)) @ np.linalg.inv(_axes(source)).T
    size = np.array(source.size)
    return np.all((index >= -0.5) & (index <= size - 0.5), axis=1)


def _points(geometry: Geometry, k: int, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The physical points of pixels (rows, columns) of slice k (each slice at its own position: tilt too)."""
    column_step = geometry.orientation[:3] * geometry.pixel_spacing[0]
    row_step = geometry.orientation[3:] * geometry.pixel_spacing[1]
    return geometry.positions[k] + np.outer(columns, column_step) + np.outer(rows, row_step)


def grid_inside(geometry: Geometry, source: Geometry) -> bool:
    """True when every voxel of the series lies inside the source's grid (its corners do: both grids are boxes)."""
    last_row, last_column = geometry.rows - 1, geometry.columns - 1
    rows = np.array([0, 0, last_row, last_row], float)
    columns = np.array([0, last_column, 0, last_column], float)
    corners = np.concatenate([_points(geometry, k, rows, columns) for k in (0, len(geometry.slices) - 1)])
    return bool(_inside(corners, source).all())


def body_coverage(geometry: Geometry, planes: np.ndarray, source: Geometry) -> float:
    """The fraction of the series' body voxels (planes: HU, (z, y, x) in slice order) inside the source's grid.

    1.0 for a series without body voxels (nothing there to deface).
    """
    body = planes > BODY_HU
    total = int(body.sum())
    if total == 0:
        return 1.0
    step = max(1, int(np.ceil(np.sqrt(total / _SAMPLE))))
    inside = counted = 0
    for k in range(body.shape[0]):
        rows, columns = np.nonzero(body[k, ::step, ::step])
        if len(rows) == 0:
            continue
        points = _points(geometry, k, rows.astype(float) * step, columns.astype(float) * step)
        inside += int(_inside(points, source).sum())
        counted += len(rows)
    return inside / counted if counted else 1.0


def inside_source(geometry: Geometry, source: Geometry) -> np.ndarray:
    """(z, y, x) booleans: which voxels of the series lie inside the source's grid."""
    rows, columns = np.mgrid[0 : geometry.rows, 0 : geometry.columns]
    rows, columns = rows.ravel().astype(float), columns.ravel().astype(float)
    out: np.ndarray = np.zeros((len(geometry.slices), geometry.rows, geometry.columns), bool)
    for k in range(len(geometry.slices)):
        out[k] = _inside(_points(geometry, k, rows, columns), source).reshape(geometry.rows, geometry.columns)
    return out


def jaccard(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """|a and b| / |a or b| over `where` (everywhere if None); 1.0 when both are empty there."""
    a, b = a > 0, b > 0
    if where is not None:
        a, b = a & where, b & where
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def combine(resampled: np.ndarray, own: np.ndarray, agreement: float) -> tuple[np.ndarray, str]:
    """The mask a not-covered series gets, and the word for the report ("union" or "own")."""
    if agreement >= MIN_JACCARD:
        return ((resampled > 0) | (own > 0)).astype(np.uint8), "union"
    return (own > 0).astype(np.uint8), "own"
