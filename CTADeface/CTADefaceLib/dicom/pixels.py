"""One slice's stored values: read them, replace only those under the mask, write them back uncompressed.

Stored values, not Hounsfield units: the fill value (HU) becomes a stored value with the slice's own
RescaleSlope and RescaleIntercept, clipped to what BitsStored and PixelRepresentation allow, in the slice's
own dtype; every other pixel keeps its exact bits (its whole BitsAllocated word, unused high bits included).
Uncompressed slices (implicit or explicit VR little endian, explicit VR big endian, deflated) are taken straight
from the PixelData bytes (no decoder at all). RLE Lossless is decoded by pydicom's own RLE decoder (MIT licence),
every other compressed syntax (JPEG lossless, JPEG-LS, JPEG 2000 ...) by GDCM (BSD licence; through pydicom's
GDCM handler); pydicom's other plug-ins are not used, since pylibjpeg-libjpeg is GPL. Everything is written
uncompressed, Explicit VR Little Endian: never re-compressed, so never lossy.

A stored value narrower than its word (BitsStored 12 in 16 bits) is read for the mask as the standard defines it:
the low BitsStored bits, sign-extended when PixelRepresentation is 1, whatever the unused high bits hold (some
writers leave them zero under negative values, or put overlay bits there).

Works with pydicom 2.4 (bundled with Slicer 5.8/5.10) and 3.0: PixelData is set as bytes, not with
Dataset.set_pixel_data (3.0 only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
UNCOMPRESSED_LITTLE_ENDIAN = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")  # implicit and explicit VR
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"  # pydicom inflates the whole dataset when reading
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
#: Transfer syntaxes that are always lossy: JPEG Baseline, JPEG Extended, JPEG-LS Near-Lossless. (JPEG 2000 and
#: HTJ2K "lossless or lossy" are not listed: their files say which in LossyImageCompression themselves.)
LOSSY_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81"})
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


def _pydicom_major() -> int:
    import pydicom

    return int(str(pydicom.__version__).split(".")[0])


def _decoder(syntax: str) -> str:
    """The name of the (permissively licensed) decoder for a compressed transfer syntax, in this pydicom."""
    if syntax == RLE_LOSSLESS:
        return "pydicom" if _pydicom_major() >= 3 else "rle"  # pydicom's own RLE decoder (numpy only)
    return "gdcm"


def stored_words(ds: Any) -> np.ndarray:
    """The slice's pixels as (rows, columns) words of its own dtype, bit for bit as stored (unused bits included).

    A view of PixelData for uncompressed little-endian slices; decoded (or byte-swapped) otherwise.
    """
    if "PixelData" not in ds:
        raise InputError("A slice has no pixel data.")
    rows, columns, dtype = int(ds.Rows), int(ds.Columns), _dtype(ds)
    syntax = transfer_syntax(ds)
    native = syntax in (*UNCOMPRESSED_LITTLE_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    if native or syntax == EXPLICIT_VR_BIG_ENDIAN:
        data = ds.PixelData
        count = rows * columns
        if len(data) < count * dtype.itemsize:
            raise InputError("A slice's pixel data is shorter than its Rows x Columns say (a truncated file).")
        if native:
            return np.frombuffer(data, dtype, count).reshape(rows, columns)
        if dtype.itemsize == 1 and ds["PixelData"].VR == "OW":  # 8-bit pixels in big-endian 16-bit words
            data = np.frombuffer(data, ">u2", len(data) // 2).astype("<u2").tobytes()
        return np.frombuffer(data, dtype.newbyteorder(">"), count).reshape(rows, columns).astype(dtype)
    try:
        ds.convert_pixel_data(handler_name=_decoder(syntax))
        array = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - any decoder failure is a broken or unsupported file
        raise InputError(_undecodable(syntax, err)) from None
    if array.shape != (rows, columns):
        raise InputError(f"A compressed slice decoded to {array.shape} pixels instead of {(rows, columns)}.")
    return np.ascontiguousarray(array, dtype=dtype)


def _undecodable(syntax: str, err: Exception) -> str:
    """One sentence: which syntax, the decoder's own words (its most specific line), and what to do."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    detail = (lines[-1] if lines[0].endswith(":") else lines[0]) if lines else "no details"
    import importlib.util

    if importlib.util.find_spec("gdcm") is None:
        remedy = "install python-gdcm, or decompress the series first (e.g. gdcmconv --raw)"
    else:  # GDCM is there and could not decode it
        remedy = "decompress the series first with a tool that decodes it (e.g. dcmtk's dcmdjpeg), then run again"
    return (
        f"A compressed slice ({syntax or 'unknown transfer syntax'}) could not be decoded "
        f"({type(err).__name__}: {detail}); {remedy}."
    )


def _bits_stored(ds: Any) -> int:
    allocated = int(ds.BitsAllocated)
    try:
        bits = int(ds.get("BitsStored", allocated) or allocated)
    except (TypeError, ValueError):
        bits = allocated
    return bits if 0 < bits <= allocated else allocated


def stored_values(ds: Any) -> np.ndarray:
    """The slice's stored values as a (rows, columns) array of its own dtype: the low BitsStored bits of each word,
    sign-extended when PixelRepresentation is 1 (what the rescale applies to)."""
    words = stored_words(ds)
    bits = _bits_stored(ds)
    if bits >= words.dtype.itemsize * 8:
        return words
    if words.dtype.kind == "u":
        return words & words.dtype.type((1 << bits) - 1)
    shift = words.dtype.itemsize * 8 - bits
    return (words << shift) >> shift  # arithmetic shift: the sign bit of BitsStored fills the high bits


def stored_range(ds: Any) -> tuple[int, int]:
    """The smallest and largest stored value BitsStored and PixelRepresentation allow."""
    bits = _bits_stored(ds)
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
    """(new pixel words, how many changed): `fill_hu` under `mask` (rows x columns, nonzero = face), else as read.

    Every pixel outside the mask keeps its word bit for bit. Under the mask the fill is written as a full word:
    a negative fill sign-extended, unless the slice stores its negative values with the unused high bits zero
    (then it is written the same way, so one slice never mixes the two conventions).
    """
    words = stored_words(ds)
    if mask.shape != words.shape:
        raise InputError(f"The face mask slice {mask.shape} does not match the slice's pixels {words.shape}.")
    inside: np.ndarray = mask.astype(bool, copy=False)
    fill = fill_stored_value(ds, fill_hu)
    bits, width = _bits_stored(ds), words.dtype.itemsize * 8
    if fill < 0 and bits < width:
        unsigned = words.view(words.dtype.str.replace("i", "u"))
        sign, high = 1 << (bits - 1), ((1 << width) - 1) ^ ((1 << bits) - 1)
        negative_unextended = (unsigned & unsigned.dtype.type(sign)) != 0
        negative_unextended &= (unsigned & unsigned.dtype.type(high)) == 0
        if np.any(negative_unextended):
            fill &= (1 << bits) - 1  # e.g. -1000 in 12 bits as 0x0C18, not 0xFC18
    out = np.array(words, copy=True)
    out[inside] = out.dtype.type(fill)
    return out, int(np.count_nonzero(out != words))


def set_uncompressed_pixels(ds: Any, values: np.ndarray) -> None:
    """Put `values` (rows x columns, the slice's dtype) into `ds` as native Explicit VR Little Endian PixelData.

    BitsAllocated, BitsStored, HighBit and PixelRepresentation stay as they are (the values keep the dtype).
    A slice that came in a lossy transfer syntax keeps saying so (LossyImageCompression 01, PS3.3 C.7.6.1.1.5),
    though it is now stored uncompressed.
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
    if transfer_syntax(ds) in LOSSY_SYNTAXES and str(ds.get("LossyImageCompression", "") or "") != "01":
        ds.LossyImageCompression = "01"
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
