"""Which series can be defaced slice by slice, and why the others are left out.

Defaceable: single-frame CT Image Storage, greyscale, one sample per pixel, no burned-in annotation, not a
localizer or a rendering. Everything else is left out with one reason (a secondary capture or a rendering
shows the face in a way a mask on the CT grid cannot reach; an SR has no pixels but carries text).
"""

from __future__ import annotations

from typing import Any

from .discover import Series

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"  # SC and the multi-frame SC classes (.7.1 - .7.4)
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."  # structured reports, dose reports included
DOSE_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.67": "X-Ray Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.68": "Radiopharmaceutical Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.75": "Acquisition Context SR",
    "1.2.840.10008.5.1.4.1.1.88.76": "Enhanced X-Ray Radiation Dose SR",
}
# ImageType values (any position) that mean a projection or rendering, not cross-sections of the head
RENDERING_TYPES = {"MIP", "MAX_IP", "MIN_IP", "MINIP", "AVERAGE_IP", "VOLUME_RENDERING", "VR", "SURFACE", "PROJECTION"}
LOCALIZER_TYPES = {"LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW", "SCANOGRAM"}


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [str(value)]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


def left_out_reason(series: Series) -> str | None:
    """None for a series that can be defaced slice by slice, else one sentence saying why it is left out."""
    if series.problem:
        return series.problem
    headers = [f.header for f in series.files]
    first = headers[0]
    sop_class = str(first.get("SOPClassUID", "") or "")
    modality = series.modality
    if sop_class in DOSE_SR_CLASSES:
        return f"dose report ({DOSE_SR_CLASSES[sop_class]}): a structured report with no image to deface"
    if sop_class.startswith(SR_PREFIX) or modality == "SR":
        return "structured report (SR): no image to deface, and its text may identify the patient"
    if sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary capture: a picture of a screen or a rendering, which a CT face mask cannot deface"
    conversion = str(first.get("ConversionType", "") or "").upper()
    if conversion in ("WSD", "SI", "SD", "SYN"):
        return f"screen capture (ConversionType {conversion}): not a CT acquisition"
    if any(str(h.get("BurnedInAnnotation", "") or "").upper() == "YES" for h in headers):
        return "BurnedInAnnotation is YES: text in the pixels may identify the patient"
    if sop_class == ENHANCED_CT_STORAGE or any(int(h.get("NumberOfFrames", 1) or 1) > 1 for h in headers):
        return "multi-frame object: this tool defaces single-frame CT slices only"
    if modality != "CT":
        return f"modality {modality}: only CT series are defaced"
    if sop_class != CT_IMAGE_STORAGE:
        return f"SOP class {sop_class or 'missing'}: only CT Image Storage series are defaced"
    image_type = {v.upper() for h in headers for v in _values(h.get("ImageType"))}
    if image_type & LOCALIZER_TYPES:
        return "localizer (scout): a projection image, not cross-sections"
    rendering = image_type & RENDERING_TYPES
    if rendering:
        return f"rendering or projection (ImageType {sorted(rendering)[0]}): not cross-sections"
    if any(int(h.get("SamplesPerPixel", 1) or 1) != 1 for h in headers) or any(
        not str(h.get("PhotometricInterpretation", "MONOCHROME2")).startswith("MONOCHROME") for h in headers
    ):
        return "colour pixels: CT slices are greyscale"
    if len(headers) < 2:
        return "a single slice: the face mask needs a 3D series"
    return None
