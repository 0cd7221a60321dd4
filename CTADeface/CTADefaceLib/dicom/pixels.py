"""One slice's stored values: read them, replace only those under the mask, write them back uncompressed.

Stored values, not Hounsfield units: the fill value (HU) becomes a stored value with the slice's own
RescaleSlope and RescaleIntercept, clipped to what BitsStored and PixelRepresentation allow, in the slice's
own dtype; every other stored value keeps its exact bits. Uncompressed little-endian slices are taken
straight from the PixelData bytes (no decoding at all). Compressed slices are decoded by GDCM (BSD licence;
through pydicom's GDCM handler) and written uncompressed, Explicit VR Little Endian: never re-compressed,
so never lossy. pydicom's other plug-ins are not used, since pylibjpeg-libjpeg is GPL.

Works with pydicom 2.4 (bundled with Slicer 5.8/5.10) and 3.0: PixelData is set as bytes, not with
Dataset.set_pixel_data (3.0 only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
UNCOMPRESSED_LITTLE_ENDIAN = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")  # implicit and explicit VR
#: Attributes that describe an encapsulated (compressed) PixelData; gone once it is written uncompressed.
ENCAPSULATION_TAGS = (0x7FE00001, 0x7FE00002)  # Extended Offset Table and its lengths


def _dtype(ds: Any) -> np.dtype:
    bits = int(ds.BitsAllocated)
    if bits not in (8, 16, 32):
        raise InputError(f"BitsAllocated {bits} is not handled (8, 16 or 32 bits per pixel are).")
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")


def transfer_syntax(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def stored_values(ds: Any) -> np.ndarray:
    """The slice's stored values as a (rows, columns) array of its own dtype (a view for uncompressed data)."""
    if "PixelData" not in ds:
        raise InputError("A slice has no pixel data.")
    rows, columns, dtype = int(ds.Rows), int(ds.Columns), _dtype(ds)
    if transfer_syntax(ds) in UNCOMPRESSED_LITTLE_ENDIAN:
        data = ds.PixelData
        count = rows * columns
        if len(data) < count * dtype.itemsize:
            raise InputError("A slice's pixel data is shorter than its Rows x Columns say (a truncated file).")
        return np.frombuffer(data, dtype, count).reshape(rows, columns)
    try:
        ds.convert_pixel_data(handler_name="gdcm")
        array = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - any decoder failure is a broken or unsupported file
        raise InputError(
            f"A compressed slice ({transfer_syntax(ds) or 'unknown transfer syntax'}) could not be decoded "
            f"({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else 'no details'}); "
            "install python-gdcm, or decompress the series first (e.g. gdcmconv --raw)."
        ) from None
    if array.shape != (rows, columns):
        raise InputError(f"A compressed slice decoded to {array.shape} pixels instead of {(rows, columns)}.")
    return np.ascontiguousarray(array, dtype=dtype)


def stored_range(ds: Any) -> tuple[int, int]:
    """The smallest and largest stored value BitsStored and PixelRepresentation allow."""
    bits = int(ds.get("BitsStored", ds.BitsAllocated) or ds.BitsAllocated)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def rescale(ds: Any) -> tuple[float, float]:
    """(slope, intercept) of the slice's modality LUT; (1, 0) when absent."""
    try:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        raise InputError("A slice has a RescaleSlope or RescaleIntercept that is not a number.") from None
    if slope == 0 or not np.isfinite(slope) or not np.isfinite(intercept):
        raise InputError("A slice has a RescaleSlope of zero or a non-finite rescale.")
    return slope, intercept


def fill_stored_value(ds: Any, fill_hu: float) -> int:
    """The fill value (HU) in this slice's stored units, clipped to its stored range."""
    slope, intercept = rescale(ds)
    low, high = stored_range(ds)
    return int(np.clip(round((fill_hu - intercept) / slope), low, high))


def deface_slice(ds: Any, mask: np.ndarray, fill_hu: float) -> tuple[np.ndarray, int]:
    """(new stored values, how many changed): `fill_hu` under `mask` (rows x columns, nonzero = face), else as read."""
    stored = stored_values(ds)
    if mask.shape != stored.shape:
        raise InputError(f"The face mask slice {mask.shape} does not match the slice's pixels {stored.shape}.")
    inside: np.ndarray = mask.astype(bool, copy=False)
    out = np.array(stored, copy=True)
    out[inside] = out.dtype.type(fill_stored_value(ds, fill_hu))
    return out, int(np.count_nonzero(out != stored))


def set_uncompressed_pixels(ds: Any, values: np.ndarray) -> None:
    """Put `values` (rows x columns, the slice's dtype) into `ds` as native Explicit VR Little Endian PixelData.

    BitsAllocated, BitsStored, HighBit and PixelRepresentation stay as they are (the values keep the dtype).
    """
    from pydicom.dataelem import DataElement
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    expected = _dtype(ds)
    if values.dtype.newbyteorder("<") != expected or values.shape != (int(ds.Rows), int(ds.Columns)):
        raise ValueError("the values do not match the slice's Rows, Columns and pixel type")
    data = np.ascontiguousarray(values, expected).tobytes()
    if len(data) % 2:
        data += b"\0"  # DICOM values have even length
    for tag in ENCAPSULATION_TAGS:
        if tag in ds:
            del ds[tag]
    ds[0x7FE00010] = DataElement(0x7FE00010, "OW" if expected.itemsize > 1 else "OB", data)
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
