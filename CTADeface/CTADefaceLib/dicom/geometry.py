"""A series' voxel grid from its headers, and a face mask carried onto that grid.

Gantry tilt. In a tilted series the slice positions step along a line that is not the slice normal, so the
slices form a sheared stack that no SimpleITK image (orthogonal axes) describes. Choice: such a series is
DEFACED CORRECTLY when its frame of reference holds an untilted series to compute the mask on: the mask is
resampled (nearest neighbour) onto each tilted slice's own plane, from that slice's position and orientation,
so every pixel gets the mask value at its true place in the patient. A tilted series cannot be the mask
source itself (the model needs a regular grid); alone in its frame of reference it is left out with one
sentence saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.dicom import check_slice_positions
from .discover import Series, SliceFile

#: In-plane drift of the slice positions per slice (mm) above which a series counts as gantry-tilted.
TILT_TOLERANCE_MM = 0.02


@dataclass
class Geometry:
    """Slices in order along the normal, and the grid they span (sizes and spacings as x, y, z)."""

    slices: list[SliceFile]
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  # (between columns = x, between rows = y)
    slice_spacing: float  # along the normal
    orientation: np.ndarray  # 6 values: row direction, column direction
    positions: np.ndarray  # (n, 3), in slice order
    tilt_degrees: float

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])

    @property
    def tilted(self) -> bool:
        return self.tilt_degrees > 0.0

    @property
    def size(self) -> tuple[int, int, int]:
        return (self.columns, self.rows, len(self.slices))

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.pixel_spacing[0], self.pixel_spacing[1], self.slice_spacing)

    @property
    def direction(self) -> tuple[float, ...]:
        matrix = np.column_stack([self.orientation[:3], self.orientation[3:], self.normal])
        return tuple(float(v) for v in matrix.ravel())

    @property
    def origin(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.positions[0])  # type: ignore[return-value]

    @property
    def is_axial(self) -> bool:
        return abs(float(self.normal[2])) > 0.9

    @property
    def extent_mm(self) -> float:
        return self.slice_spacing * (len(self.slices) - 1)

    def reference(self, pixel: int | None = None) -> Any:
        """An empty SimpleITK image on this grid (untilted series only)."""
        import SimpleITK as sitk

        image = sitk.Image(list(self.size), sitk.sitkUInt8 if pixel is None else pixel)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def _floats(value: Any, count: int, what: str, name: str) -> np.ndarray:
    try:
        array = np.array([float(v) for v in value], float)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != (count,) or not np.all(np.isfinite(array)):
        raise InputError(f"{what} has a slice without a valid {name}, so its geometry is unknown.")
    return array


def series_geometry(series: Series, what: str = "The series") -> Geometry:
    """The series' slices in order and their grid; InputError (one sentence) if they do not form one."""
    headers = [f.header for f in series.files]
    orientations = [_floats(h.get("ImageOrientationPatient"), 6, what, "ImageOrientationPatient") for h in headers]
    positions = np.array([_floats(h.get("ImagePositionPatient"), 3, what, "ImagePositionPatient") for h in headers])
    spacings = {tuple(_floats(h.get("PixelSpacing"), 2, what, "PixelSpacing")) for h in headers}
    shapes = {(int(h.get("Rows", 0) or 0), int(h.get("Columns", 0) or 0)) for h in headers}
    if len(shapes) != 1 or min(next(iter(shapes))) < 1:
        raise InputError(f"{what} has slices of different sizes (Rows, Columns).")
    if len(spacings) != 1:
        raise InputError(f"{what} has slices with different pixel spacings.")
    slice_spacing = check_slice_positions(what, positions, orientations)
    orientation = orientations[0]
    normal = np.cross(orientation[:3], orientation[3:])
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    steps = np.diff(positions, axis=0)
    drift = steps - np.outer(steps @ normal, normal)  # the part of each step that lies in the slice plane
    tilt = 0.0
    if np.abs(drift).max() > TILT_TOLERANCE_MM:
        if np.abs(drift - np.median(drift, axis=0)).max() > max(TILT_TOLERANCE_MM, 0.01 * slice_spacing):
            raise InputError(f"{what} has slice positions that drift irregularly within the slice plane.")
        tilt = math.degrees(math.atan2(float(np.linalg.norm(np.median(drift, axis=0))), slice_spacing))
    row_spacing, column_spacing = next(iter(spacings))  # DICOM: between rows (y), then between columns (x)
    rows, columns = next(iter(shapes))
    return Geometry(
        slices=[series.files[i] for i in order],
        rows=rows,
        columns=columns,
        pixel_spacing=(column_spacing, row_spacing),
        slice_spacing=slice_spacing,
        orientation=orientation,
        positions=positions,
        tilt_degrees=round(tilt, 3),
    )


def mask_on_series(mask: Any, geometry: Geometry) -> np.ndarray:
    """The mask (SimpleITK UInt8, any grid of the same frame of reference) on the series' pixels, (z, y, x).

    Nearest neighbour: mask values stay 0/1 and nothing is smoothed; outside the mask's grid is 0.
    An untilted series is resampled in one go; a tilted one slice by slice, each on its own plane. Only the
    part of the series' grid around the mask's bounding box is resampled (a face is a small part of a head
    scan; resampling every voxel of a 512 x 512 x 300 series takes seconds).
    """
    import SimpleITK as sitk

    out = np.zeros((len(geometry.slices), geometry.rows, geometry.columns), np.uint8)
    array = sitk.GetArrayViewFromImage(mask)
    nonzero = [np.flatnonzero(array.any(axis=axes)) for axes in ((0, 1), (0, 2), (1, 2))]  # x, y, z indices
    if any(len(n) == 0 for n in nonzero):
        return out
    # the mask's bounding box (one voxel wider) as physical corner points
    low = [float(n[0]) - 1.0 for n in nonzero]
    high = [float(n[-1]) + 1.0 for n in nonzero]
    corners = np.array(
        [
            mask.TransformContinuousIndexToPhysicalPoint((x, y, z))
            for x in (low[0], high[0])
            for y in (low[1], high[1])
            for z in (low[2], high[2])
        ]
    )
    axes = np.array(geometry.direction).reshape(3, 3) * np.array(geometry.spacing)  # index -> mm, columns x, y, z
    to_index = np.linalg.inv(axes)

    def resample(origin: Any, size: tuple[int, int, int]) -> tuple[np.ndarray, tuple[slice, ...]] | None:
        """The mask on the grid at `origin` of `size`, cropped to the part that can meet the mask."""
        index = (corners - np.asarray(origin, float)) @ to_index.T
        lo = np.maximum(np.floor(index.min(axis=0)).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 1, np.array(size) - 1)
        if np.any(hi < lo):
            return None
        f = sitk.ResampleImageFilter()
        f.SetInterpolator(sitk.sitkNearestNeighbor)
        f.SetDefaultPixelValue(0)
        f.SetOutputPixelType(sitk.sitkUInt8)
        f.SetSize([int(v) for v in hi - lo + 1])
        f.SetOutputSpacing(geometry.spacing)
        f.SetOutputOrigin([float(v) for v in np.asarray(origin, float) + axes @ lo])
        f.SetOutputDirection(geometry.direction)
        box = (slice(lo[2], hi[2] + 1), slice(lo[1], hi[1] + 1), slice(lo[0], hi[0] + 1))
        return sitk.GetArrayFromImage(f.Execute(mask)), box

    if not geometry.tilted:
        found = resample(geometry.origin, geometry.size)
        if found is not None:
            out[found[1]] = found[0]
        return out
    for k, position in enumerate(geometry.positions):
        found = resample(position, (geometry.columns, geometry.rows, 1))
        if found is not None:
            out[k][found[1][1:]] = found[0][0]
    return out
