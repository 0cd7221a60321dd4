"""records.py's TypedDicts name exactly the keys the pipeline writes: every required key is there, and no key is
written that they do not name (mypy checks the code that builds the dicts; this checks what a real run hands back)."""

import json

from builders import StandInFaceEngine, box_ct
from CTADefaceLib.pipeline import DefaceSettings, deface_batch, deface_image
from CTADefaceLib.records import BatchRecord, Provenance, Sidecar


def misfits(typed_dict, record):
    """Required keys missing from `record`, and keys of `record` the TypedDict does not name."""
    named = typed_dict.__required_keys__ | typed_dict.__optional_keys__
    missing = sorted(typed_dict.__required_keys__ - set(record))
    unnamed = sorted(set(record) - named)
    return {"missing": missing, "unnamed": unnamed}


NONE = {"missing": [], "unnamed": []}
SETTINGS = DefaceSettings(engine="stand-in", min_face_ml=0)  # the stand-in's mask is far below 20 ml


def test_provenance_of_deface_image_has_exactly_the_named_keys():
    result = deface_image(box_ct(), SETTINGS, engine=StandInFaceEngine())
    assert misfits(Provenance, result.provenance) == NONE


def test_batch_records_and_written_sidecars_have_exactly_the_named_keys(tmp_path):
    import SimpleITK as sitk

    sitk.WriteImage(box_ct(), str(tmp_path / "case.nii.gz"))
    (tmp_path / "case_gt.nii.gz").write_bytes(b"")  # excluded by name: a "skipped" record
    report = deface_batch([str(tmp_path)], str(tmp_path / "out"), SETTINGS, engine=StandInFaceEngine(), progress=False)
    assert sorted(r["status"] for r in report) == ["done", "skipped"]
    for record in report:
        assert misfits(BatchRecord, record) == NONE
    done = next(r for r in report if r["status"] == "done")
    with open(done["outputs"]["sidecar"], encoding="utf-8") as handle:
        sidecar = json.load(handle)
    assert misfits(Sidecar, sidecar) == NONE
    assert {"input", "outputs", "outputs_sha256"} <= set(sidecar)


def test_a_key_the_typed_dicts_do_not_name_is_reported():
    result = deface_image(box_ct(), SETTINGS, engine=StandInFaceEngine())
    provenance = dict(result.provenance, mask_voxel=1)
    del provenance["mask_voxels"]
    assert misfits(Provenance, provenance) == {"missing": ["mask_voxels"], "unnamed": ["mask_voxel"]}
