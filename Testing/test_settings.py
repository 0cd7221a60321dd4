"""One definition of the settings: CLI parser, the child's argv and the sidecar all come from settings.py.

The round trips go over EVERY field of DefaceSettings with a non-default value, so a field added without
a flag, or one the parser or argv drop, fails here.
"""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from CTADefaceLib import settings as settings_module
from CTADefaceLib.settings import DEVICES, ENGINES, FILL_POLICIES, DefaceSettings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _other_value(f: dataclasses.Field):
    """A valid value different from the field's default, from its type and choices."""
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    choices = f.metadata.get("choices")
    if f.name == "fill":
        return -1000.0  # a number in HU: must come back a number, not the text '-1000.0'
    if f.name == "engine":
        return "box"
    if isinstance(default, bool):
        return not default
    if isinstance(default, float):
        return default + 1.25
    if isinstance(default, dict):
        return {"threads": 3, "folds": ["0", "1"]}
    if isinstance(default, list):
        return ["clean-descriptors", "retain-dates"]
    if default is None and f.name in ("deid_key", "mapping_file"):
        return f"/somewhere/{f.name}"
    if choices:
        return next(c for c in choices if c != default)
    if isinstance(default, str):
        return default + "-other"
    raise AssertionError(f"no sample value for the new field {f.name!r}: teach this test (and settings.py) its type")


def _all_changed() -> DefaceSettings:
    return DefaceSettings(**{f.name: _other_value(f) for f in dataclasses.fields(DefaceSettings)})


def _one_changed():
    for f in dataclasses.fields(DefaceSettings):
        yield f.name, DefaceSettings(**{f.name: _other_value(f)})


def _parse_child_argv(argv):
    """What the child does with its argv: the real `ctadeface` parser, then settings_from_args."""
    from CTADefaceLib.cli import build_parser
    from CTADefaceLib.commands.deface import settings_from_args

    assert argv[1:4] == ["-m", "CTADefaceLib.cli", "deface"]
    return settings_from_args(build_parser().parse_args(argv[3:]))


def test_every_field_has_a_flag_and_help():
    flags = [f.metadata.get("flag") for f in dataclasses.fields(DefaceSettings)]
    assert all(flag and flag.startswith("--") for flag in flags)
    assert len(set(flags)) == len(flags)
    assert all(f.metadata.get("help") for f in dataclasses.fields(DefaceSettings))


def test_child_argv_round_trips_every_field(tmp_path):
    from CTADefaceLib.slicer.child_process import build_deface_command

    for settings in [DefaceSettings(), _all_changed(), *(s for _, s in _one_changed())]:
        argv = build_deface_command(str(tmp_path / "in.nii.gz"), str(tmp_path / "out"), settings, python="/py")
        assert _parse_child_argv(argv) == settings, argv
    # the two the old hand-written command dropped
    argv = build_deface_command("in.nii.gz", "out", DefaceSettings(min_face_ml=5.0, engine_options={"threads": 2}))
    assert _parse_child_argv(argv).min_face_ml == 5.0
    assert _parse_child_argv(argv).engine_options == {"threads": 2}


def test_dict_round_trips_every_field_as_the_sidecar_stores_it():
    for settings in [DefaceSettings(), _all_changed()]:
        stored = json.loads(json.dumps(settings.to_dict()))  # the sidecar is JSON
        assert DefaceSettings.from_dict(stored) == settings
        assert set(stored) == {f.name for f in dataclasses.fields(DefaceSettings)}


def test_batch_script_parser_is_the_same_definition():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "deface_batch", os.path.join(REPO, "CTADeface", "Scripts", "deface_batch.py")
    )
    batch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(batch)
    from CTADefaceLib.commands.deface import settings_from_args

    settings = _all_changed()
    args = batch.build_parser().parse_args(["in.nii.gz", "-o", "out", *settings.to_argv()])
    assert settings_from_args(args) == settings


def test_choices_are_defined_once():
    from CTADefaceLib import engines, fill
    from CTADefaceLib.engines.nnunet import engine as nnunet

    assert set(ENGINES) == set(engines.ENGINES)
    assert FILL_POLICIES == fill.FILL_POLICIES
    assert DEVICES == nnunet.DEVICES
    from CTADefaceLib.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["deface", "a.nii.gz", "-o", "o", "--device", "tpu"])


def test_bad_engine_options_are_a_usage_error(capsys):
    from CTADefaceLib.cli import build_parser

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["deface", "a.nii.gz", "-o", "o", "--engine-options", "[1, 2]"])
    assert stop.value.code == 2
    assert "must be a JSON object" in capsys.readouterr().err


def test_settings_module_imports_only_the_standard_library():
    """Slicer loads it when the module loads, with only its bundled packages."""
    code = (
        "import sys; before = set(sys.modules); import CTADefaceLib.settings; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "CTADeface"))
    loaded = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    third_party = [
        m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("CTADefaceLib")
    ]
    assert third_party == []
    assert settings_module.__name__ == "CTADefaceLib.settings"
