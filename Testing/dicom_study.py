"""DICOM studies for the tests, written with pydicom from the project's phantoms.

`write_series` turns any SimpleITK CT (HU) into a folder of CT Image Storage files with PHI in the headers;
`build_phantom_study` makes a whole study: thin and thick axial series, a coronal reformat and a gantry-tilted
series sharing one frame of reference, a series with its own frame of reference, and what must be left out
(a secondary capture, a dose SR, a series with BurnedInAnnotation YES).
"""

from __future__ import annotations

import datetime
import os

import numpy as np
import SimpleITK as sitk

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"

#: Identifying values placed in the headers; none may reach an output name or a report.
PHI = {
    "PatientName": "Doe^Jane^Quincy",
    "PatientID": "PID-7f3a-0042",
    "PatientBirthDate": "19610412",
    "InstitutionName": "Saint Elsewhere Hospital",
    "ReferringPhysicianName": "House^Gregory",
    "AccessionNumber": "ACC99812",
    "StudyID": "STU5521",
    "StudyDescription": "CTA head for Jane Doe",
    "OperatorsName": "Operator^Olga",
}


def uid(n: str) -> str:
    return f"1.2.826.0.1.3680043.10.543.{n}"


STUDY_UID = uid("1")
FRAME_UID = uid("2")


def _base(sop_class: str, series_uid: str, sop_uid: str, series_number: int, modality: str, frame: str | None):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240305"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101530"
    ds.Modality = modality
    ds.Manufacturer = "Phantom Scanners"
    for key, value in PHI.items():
        setattr(ds, key, value)
    ds.PatientSex = "F"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    if frame:
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
    return ds


def _save(ds, path: str) -> None:
    import pydicom

    os.makedirs(os.path.dirname(path), exist_ok=True)
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)


def slice_ct(
    plane: np.ndarray,
    position,
    orientation,
    spacing,
    *,
    series_uid: str,
    sop_uid: str,
    series_number: int,
    instance: int,
    frame: str | None = FRAME_UID,
    thickness: float = 1.0,
    signed: bool = False,
    extra: dict | None = None,
):
    """A CT Image Storage dataset holding one plane of HU values (rows, columns)."""
    ds = _base(CT_IMAGE_STORAGE, series_uid, sop_uid, series_number, "CT", frame)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientPosition = "HFS"
    ds.InstanceNumber = instance
    ds.AcquisitionNumber = 1
    ds.KVP = "120"
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.PixelSpacing = [f"{spacing[1]:.4f}", f"{spacing[0]:.4f}"]  # between rows, between columns
    ds.SliceThickness = f"{thickness:.3f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = plane.shape
    ds.BitsAllocated = 16
    if signed:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
        stored = np.clip(np.round(plane), -32768, 32767).astype("<i2")
    else:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        stored = np.clip(np.round(plane) + 1024, 0, 4095).astype("<u2")
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def _plane_geometry(image: sitk.Image):
    d = np.array(image.GetDirection()).reshape(3, 3)
    return [*d[:, 0], *d[:, 1]], image.GetSpacing()


def write_series(
    image: sitk.Image, folder: str, series_uid: str, series_number: int, *, prefix: str = "IM", **kwargs
) -> list[str]:
    """Every z slice of `image` (HU) as one file in `folder`; returns the paths."""
    orientation, spacing = _plane_geometry(image)
    array = sitk.GetArrayFromImage(image)
    paths = []
    for k in range(array.shape[0]):
        ds = slice_ct(
            array[k],
            image.TransformIndexToPhysicalPoint((0, 0, k)),
            orientation,
            spacing,
            series_uid=series_uid,
            sop_uid=f"{series_uid}.{k + 1}",
            series_number=series_number,
            instance=k + 1,
            thickness=spacing[2],
            **kwargs,
        )
        path = os.path.join(folder, f"{prefix}{k:04d}")  # no .dcm: real exports often have none
        _save(ds, path)
        paths.append(path)
    return paths


def resample(image: sitk.Image, size, spacing, origin, direction) -> sitk.Image:
    return sitk.Resample(
        image,
        [int(v) for v in size],
        sitk.Transform(),
        sitk.sitkLinear,
        [float(v) for v in origin],
        [float(v) for v in spacing],
        [float(v) for v in direction],
        -1000.0,
        sitk.sitkFloat32,
    )


def tilted_planes(image: sitk.Image, tilt_degrees: float, step_mm: float):
    """(planes, positions): axial slices whose positions drift posteriorly along the stack (a gantry tilt)."""
    size, spacing = image.GetSize(), image.GetSpacing()
    origin = np.array(image.GetOrigin())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    normal, column = direction[:, 2], direction[:, 1]
    count = int((size[2] - 1) * spacing[2] / step_mm)
    drift = np.tan(np.radians(tilt_degrees)) * step_mm
    planes, positions = [], []
    for k in range(count):
        position = origin + k * step_mm * normal + k * drift * column
        plane = resample(
            image, (size[0], size[1], 1), (spacing[0], spacing[1], step_mm), position, image.GetDirection()
        )
        planes.append(sitk.GetArrayFromImage(plane)[0])
        positions.append(position)
    return planes, positions


def build_phantom_study(root: str, phantom_image: sitk.Image, *, own_frame: bool = True) -> dict:
    """The multi-series study under `root` (nested folders, as exports have them); returns what was written."""
    from pydicom.dataset import Dataset

    image = phantom_image
    size, spacing = image.GetSize(), image.GetSpacing()
    origin, direction = image.GetOrigin(), image.GetDirection()
    written: dict = {}
    # 1: thin axial, unsigned 12-bit with intercept -1024
    written["thin"] = write_series(image, os.path.join(root, "a", "thin"), uid("10"), 1)
    # 2: thick axial (3x the slice spacing), signed 16-bit, intercept 0
    thick = resample(
        image, (size[0], size[1], size[2] // 3), (spacing[0], spacing[1], 3 * spacing[2]), origin, direction
    )
    written["thick"] = write_series(thick, os.path.join(root, "a", "b", "thick"), uid("20"), 2, signed=True)
    # 3: coronal reformat: rows run inferior, slices step posterior
    d = np.array(direction).reshape(3, 3)
    coronal_direction = np.column_stack([d[:, 0], -d[:, 2], d[:, 1]]).ravel()
    extent = np.array(size) * np.array(spacing)
    top = np.array(image.TransformContinuousIndexToPhysicalPoint((0, 0, size[2] - 1)))
    coronal = resample(
        image,
        (size[0], int(extent[2] / 2.5), int(extent[1] / 2.5)),
        (spacing[0], 2.5, 2.5),
        top,
        coronal_direction,
    )
    written["coronal"] = write_series(coronal, os.path.join(root, "coronal"), uid("30"), 3)
    # 4: gantry-tilted axial (15 degrees)
    planes, positions = tilted_planes(image, 15.0, 2 * spacing[2])
    orientation, _ = _plane_geometry(image)
    written["tilted"] = []
    for k, (plane, position) in enumerate(zip(planes, positions)):
        ds = slice_ct(
            plane,
            position,
            orientation,
            spacing,
            series_uid=uid("40"),
            sop_uid=f"{uid('40')}.{k + 1}",
            series_number=4,
            instance=k + 1,
            thickness=2 * spacing[2],
            extra={"GantryDetectorTilt": "15"},
        )
        path = os.path.join(root, "tilted", f"T{k:04d}.dcm")
        _save(ds, path)
        written["tilted"].append(path)
    # 5: burned-in annotation: must be left out
    written["burned"] = write_series(
        thick, os.path.join(root, "burned"), uid("50"), 5, extra={"BurnedInAnnotation": "YES"}
    )
    # 6: secondary capture (a screenshot of the face)
    sc = _base(SECONDARY_CAPTURE, uid("60"), uid("60.1"), 6, "OT", None)
    sc.ConversionType = "WSD"
    sc.InstanceNumber = 1
    sc.SamplesPerPixel, sc.PhotometricInterpretation = 1, "MONOCHROME2"
    sc.Rows = sc.Columns = 32
    sc.BitsAllocated, sc.BitsStored, sc.HighBit, sc.PixelRepresentation = 8, 8, 7, 0
    sc.PixelData = np.arange(32 * 32, dtype=np.uint8).tobytes()
    _save(sc, os.path.join(root, "other", "screenshot.dcm"))
    written["sc"] = [os.path.join(root, "other", "screenshot.dcm")]
    # 7: X-Ray radiation dose SR
    sr = _base(XRAY_DOSE_SR, uid("70"), uid("70.1"), 997, "SR", None)
    sr.InstanceNumber = 1
    sr.ValueType, sr.ContinuityOfContent = "CONTAINER", "SEPARATE"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = (
        "113701",
        "DCM",
        "X-Ray Radiation Dose Report",
    )
    sr.ConceptNameCodeSequence = [concept]
    sr.CompletionFlag, sr.VerificationFlag = "COMPLETE", "UNVERIFIED"
    _save(sr, os.path.join(root, "other", "dose.dcm"))
    written["sr"] = [os.path.join(root, "other", "dose.dcm")]
    # 8: its own frame of reference (a second acquisition, shifted): gets its own mask
    if own_frame:
        written["own_frame"] = write_series(
            thick, os.path.join(root, "second"), uid("80"), 8, frame=uid("3"), signed=True
        )
    # and a file that is not DICOM at all
    with open(os.path.join(root, "README.txt"), "w") as handle:
        handle.write("exported " + datetime.date(2024, 3, 5).isoformat())
    written["not_dicom"] = [os.path.join(root, "README.txt")]
    return written
