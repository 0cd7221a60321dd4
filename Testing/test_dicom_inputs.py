"""Awkward DICOM input trees: symbolic links (followed only within the inputs, no loops), the same instance twice,
and one folder mixing two patients' studies (each routed to its own output, nothing mixed)."""

from __future__ import annotations

import json
import os
import shutil

import pydicom
import pytest

from builders import make_synthetic_head
from CTADefaceLib.deid import Deidentifier, DeidOptions
from CTADefaceLib.dicom.classify import left_out_reason
from CTADefaceLib.dicom.discover import discover
from CTADefaceLib.dicom.study import deface_study
from CTADefaceLib.settings import DefaceSettings
from dicom_study import uid, write_series
from helpers import DICOM_BOX as BOX
from helpers import ctadeface, tree_hashes


@pytest.fixture(scope="module")
def head():
    return make_synthetic_head(spacing=8.0).image


def _retag(paths, **values):
    """Give written slices another study, patient and frame of reference (in place: these are test inputs)."""
    for path in paths:
        ds = pydicom.dcmread(path)
        for key, value in values.items():
            setattr(ds, key, value)
        ds.save_as(path)


def test_links_are_followed_only_within_the_input_folders(tmp_path, head):
    inputs, elsewhere = tmp_path / "export", tmp_path / "elsewhere"
    ours = write_series(head, str(inputs / "series"), uid("51"), 1)
    theirs = write_series(head, str(elsewhere / "other"), uid("52"), 2)
    _retag(theirs, StudyInstanceUID=uid("53"), PatientID="SOMEONE-ELSE")
    os.symlink(elsewhere / "other", inputs / "linked-folder")  # outside: not followed
    os.symlink(theirs[0], inputs / "linked-file")  # outside: not followed
    os.symlink(tmp_path / "nowhere", inputs / "broken")
    os.symlink(inputs, inputs / "series" / "loop")  # a loop back into the tree
    os.symlink(ours[0], inputs / "again")  # inside: the same file, read once

    found = discover([str(inputs)])

    assert list(found.studies) == [uid("1")]
    (series,) = found.studies[uid("1")].series.values()
    assert sorted(os.path.realpath(f.path) for f in series.files) == sorted(os.path.realpath(p) for p in ours)
    reasons = dict(found.skipped)
    assert set(reasons) == {str(inputs / "linked-folder"), str(inputs / "linked-file"), str(inputs / "broken")}
    assert reasons[str(inputs / "linked-folder")].startswith("symbolic link to a place outside the input folders")
    assert reasons[str(inputs / "linked-file")].startswith("symbolic link to a place outside the input folders")
    assert reasons[str(inputs / "broken")].startswith("broken symbolic link")
    # given as an input itself, the other folder is read (once, though a link in the first input points to it)
    both = discover([str(inputs), str(elsewhere)])
    assert sorted(both.studies) == sorted([uid("1"), uid("53")])
    assert sum(len(s.files) for st in both.studies.values() for s in st.series.values()) == len(ours) + len(theirs)
    assert both.skipped == [(str(inputs / "broken"), reasons[str(inputs / "broken")])]
    # a link to a file in the output folder (inside the input folder here) is never read as input
    out = inputs / "out"
    out.mkdir()
    shutil.copy(ours[0], out / "written.dcm")
    _retag([str(out / "written.dcm")], SeriesInstanceUID=uid("54"))
    os.symlink(out / "written.dcm", inputs / "series" / "to-output")
    assert discover([str(inputs)]).studies[uid("1")].series.keys() == {uid("51"), uid("54")}
    excluded = discover([str(inputs)], exclude=(str(out),))
    assert list(excluded.studies[uid("1")].series) == [uid("51")]


def test_an_identical_copy_is_read_once_and_a_different_file_with_the_same_uid_is_refused(tmp_path, head):
    folder = tmp_path / "export"
    paths = write_series(head, str(folder), uid("61"), 1)
    shutil.copy(paths[3], folder / "IM0003 copy")
    found = discover([str(folder)])
    (series,) = found.studies[uid("1")].series.values()
    assert len(series.files) == len(paths) and left_out_reason(series) is None
    ((path, reason),) = found.skipped
    assert path == str(folder / "IM0003 copy") and reason.startswith(f"a copy of {paths[3]} (same SOPInstanceUID")
    out = tmp_path / "out"
    out.mkdir()
    deid = Deidentifier(DeidOptions(), bytes(range(32)))
    settings = DefaceSettings(engine="box", min_face_ml=0)
    record = deface_study(found.studies[uid("1")], str(out), settings, deid)
    assert record["status"] == "done" and len(os.listdir(out / record["study"] / "001_CT")) == len(paths)

    ds = pydicom.dcmread(paths[5])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.dcmread(paths[4]).SOPInstanceUID
    ds.save_as(paths[5])  # two different slices now share one UID: the output would hold two instances with it
    found = discover([str(folder)])
    (series,) = found.studies[uid("1")].series.values()
    assert left_out_reason(series) == (
        "two different files have the same SOPInstanceUID (IM0004 and IM0005): remove the wrong one, or export "
        "the series again"
    )
    again = deface_study(found.studies[uid("1")], str(tmp_path / "out"), settings, deid, overwrite=True)
    assert again["status"] == "failed" and "same SOPInstanceUID (IM0004 and IM0005)" in again["message"]


def test_one_folder_mixing_two_patients_gives_two_separate_studies(tmp_path, head):
    folder = tmp_path / "mixed"
    first = write_series(head, str(folder), uid("71"), 1, prefix="A")
    second = write_series(head, str(folder), uid("72"), 1, prefix="B")  # same folder, same series number
    _retag(
        second,
        StudyInstanceUID=uid("73"),
        PatientID="PID-OTHER",
        PatientName="Other^Bob",
        FrameOfReferenceUID=uid("74"),
    )
    before = tree_hashes(folder)
    out = tmp_path / "out"
    result = ctadeface("deface", str(folder), "-o", str(out), "--deid-key", str(tmp_path / "key"), *BOX)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tree_hashes(folder) == before
    studies = sorted(n for n in os.listdir(out) if not n.endswith(".json"))
    assert len(studies) == 2 and sorted(os.listdir(out)) == sorted(studies + [s + "_deface.json" for s in studies])
    seen = {}
    for study in studies:
        files = [os.path.join(r, n) for r, _, names in os.walk(out / study) for n in names]
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        keys = {(h.PatientID, h.StudyInstanceUID, h.FrameOfReferenceUID) for h in headers}
        assert len(keys) == 1 and len(files) == len(first), study  # one patient, one study, all of its slices
        (seen[study],) = keys
        report = json.load(open(out / f"{study}_deface.json", encoding="utf-8"))
        assert [s["fate"] for s in report["series"]] == ["defaced"]
    patients = {key[0] for key in seen.values()}
    assert len(patients) == 2 and not patients & {"PID-7f3a-0042", "PID-OTHER"}


def test_a_rerun_that_skips_a_written_study_still_fills_the_mapping(tmp_path, head):
    from CTADefaceLib.deid import UidMapping

    folder = tmp_path / "export"
    write_series(head, str(folder), uid("81"), 1)
    out = tmp_path / "out"
    out.mkdir()
    settings = DefaceSettings(engine="box", min_face_ml=0)
    first, second = UidMapping(), UidMapping()
    study = discover([str(folder)]).studies[uid("1")]
    done = deface_study(study, str(out), settings, Deidentifier(DeidOptions(), bytes(range(32)), mapping=first))
    skipped = deface_study(study, str(out), settings, Deidentifier(DeidOptions(), bytes(range(32)), mapping=second))
    assert done["status"] == "done" and skipped["status"] == "skipped"
    assert second.as_dict() == first.as_dict() and len(first) > 30  # every slice, the series, study and patient


def test_a_folder_of_links_to_elsewhere_says_why_nothing_was_found(tmp_path, head):
    from helpers import one_sentence

    elsewhere, inputs = tmp_path / "elsewhere", tmp_path / "export"
    write_series(head, str(elsewhere), uid("91"), 1)
    inputs.mkdir()
    os.symlink(elsewhere, inputs / "series")
    args = ("-o", str(tmp_path / "out"), "--deid-key", str(tmp_path / "key"), *BOX)
    refused = ctadeface("deface", str(inputs), *args)
    assert "symbolic link(s) there point outside the input folders" in one_sentence(refused)
    done = ctadeface("deface", str(inputs), str(elsewhere), *args)
    assert done.returncode == 0 and "1 defaced" in done.stdout, done.stdout + done.stderr


def test_two_patients_under_one_study_uid_are_refused_not_mixed(tmp_path, head):
    folder = tmp_path / "merged"
    write_series(head, str(folder), uid("101"), 1, prefix="A")
    other = write_series(head, str(folder), uid("102"), 2, prefix="B")  # same StudyInstanceUID as the first
    _retag(other, PatientID="PID-OTHER", PatientName="Other^Bob")
    (study,) = discover([str(folder)]).studies.values()
    out = tmp_path / "out"
    out.mkdir()
    record = deface_study(
        study, str(out), DefaceSettings(engine="box", min_face_ml=0), Deidentifier(DeidOptions(), bytes(range(32)))
    )
    assert record["status"] == "failed"
    assert record["message"] == (
        "Its files name 2 different PatientIDs under one StudyInstanceUID; separate the patients' files and run again."
    )
    assert os.listdir(out) == []
