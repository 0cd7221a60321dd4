"""The one definition of the defacing settings: fields, defaults, help text, command-line flags, choices.

The command-line parser (`add_arguments`), the child process the Slicer module starts (`to_argv`) and
the provenance sidecar (`to_dict` / `from_dict`) are all generated from the fields below, so a
setting cannot be known to one front door and silently dropped by another.
Slicer imports this file when the module loads, with only its bundled packages: it imports nothing
beyond the standard library.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

DEVICES = ("auto", "cpu", "cuda", "mps")
FILL_POLICIES = ("p10", "air")  # a number (HU) is a valid fill as well
ENGINES = ("nnunet", "box")
OUTPUT_FORMATS = (".nii.gz", ".nii", ".nrrd", ".mha")


def _option(flag: str, help: str, choices: tuple | None = None) -> dict:
    """Field metadata: the flag (for a bool, the flag that turns the default around) and its help."""
    return {"flag": flag, "help": help, "choices": choices}


@dataclass
class DefaceSettings:
    """Everything that decides the result; stored in the sidecar as `settings`."""

    engine: str = field(
        default="nnunet",
        metadata=_option(
            "--engine", "face-mask engine: nnunet (the CTA-DEFACE model, default) or box (ICHSEG-style prism, no model)"
        ),
    )
    # (no argparse choices for the engine: engines.create_engine names the known ones in its one-sentence error,
    # and tests register stand-in engines)
    model: str = field(
        default="cta-deface",
        metadata=_option(
            "--model",
            "registered model name (see 'ctadeface models list') or an nnU-Net v2 results folder "
            "(default: cta-deface, the paper's model)",
        ),
    )
    fill: str | float = field(
        default="p10",
        metadata=_option(
            "--fill",
            "value for face voxels: p10 = the image's 10th percentile (the paper's choice), air = -1024 HU, "
            "or a number in HU (default: p10)",
        ),
    )
    device: str = field(
        default="auto",
        metadata=_option(
            "--device", "where the model runs: auto = CUDA GPU, then Apple GPU, then CPU (default: auto)", DEVICES
        ),
    )
    mirroring: bool = field(
        default=False,
        metadata=_option("--mirroring", "test-time mirroring (8x slower; off as in the upstream CTA-DEFACE command)"),
    )
    tile_step: float = field(
        default=0.5,
        metadata=_option(
            "--tile-step", "sliding-window step as a fraction of the patch (0.5 = nnU-Net default; 1.0 = faster)"
        ),
    )
    # run the model only on tiles covering where the face can be (engines/nnunet/region.py); whole volume if False
    roi: bool = field(
        default=True,
        metadata=_option(
            "--no-roi",
            "run the model on the whole volume (upstream behaviour; default: only on tiles that cover where "
            "the face can be, found from the head's outline)",
        ),
    )
    largest_component: bool = field(
        default=False, metadata=_option("--largest-component", "keep only the largest connected part of the mask")
    )
    fill_holes: bool = field(default=False, metadata=_option("--fill-holes", "fill enclosed holes in the mask"))
    margin_mm: float = field(
        default=0.0, metadata=_option("--margin-mm", "grow the mask by this many millimetres (default: 0)")
    )
    # A model's mask smaller than this is treated as "no face found" (a stray false positive on a scan
    # without a face must not pass as a defaced case). Masks given by a person are taken as they are.
    min_face_ml: float = field(
        default=20.0,
        metadata=_option(
            "--min-face-ml",
            "a model mask smaller than this many ml counts as 'no face found' and the case fails "
            "(default: 20; an adult face mask is about 150-450 ml)",
        ),
    )
    output_format: str | None = field(
        default=None,
        metadata=_option(
            "--format",
            "output file format (default: the input's; DICOM for DICOM input, defaced and de-identified)",
            OUTPUT_FORMATS,
        ),
    )
    # DICOM output (the default for DICOM input): the de-identification of the headers (CTADefaceLib.deid)
    deid_options: list = field(
        default_factory=list,
        metadata=_option(
            "--deid-option",
            "a PS3.15 profile option for DICOM output, repeatable (e.g. clean-descriptors, retain-dates); "
            "the Basic Application Level Confidentiality Profile always applies",
        ),
    )
    deid_key: str | None = field(
        default=None,
        metadata=_option(
            "--deid-key",
            "the secret key file that maps UIDs and IDs (made on first use; default: in your user config folder; "
            "never inside the output folder)",
        ),
    )
    mapping_file: str | None = field(
        default=None,
        metadata=_option(
            "--mapping-file",
            "write the table of original to new identifiers here (it re-identifies: keep it apart; refused "
            "inside the output folder)",
        ),
    )
    engine_options: dict = field(
        default_factory=dict,
        metadata=_option(
            "--engine-options", "extra keyword arguments for the engine, as a JSON object (e.g. '{\"threads\": 4}')"
        ),
    )

    # ------------------------------------------------------------------ serialised forms
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DefaceSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_argv(self) -> list[str]:
        """Command-line options that `add_arguments` + `from_args` turn back into these settings."""
        argv = []
        for f in dataclasses.fields(self):
            value, flag = getattr(self, f.name), f.metadata["flag"]
            kind = _kind(f)
            if kind == "bool":
                if value != _default(f):
                    argv.append(flag)
            elif kind == "json":
                if value:
                    argv.append(f"{flag}={json.dumps(value, sort_keys=True)}")
            elif kind == "list":
                argv.extend(f"{flag}={item}" for item in value)
            elif value is not None:
                # --flag=value: a negative fill (-1024) must not look like an option to argparse
                argv.append(f"{flag}={value!r}" if kind == "float" else f"{flag}={value}")
        return argv


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _kind(f: dataclasses.Field[Any]) -> str:
    """How a field travels on a command line: bool (a switch), float, json (a dict) or str."""
    default = _default(f)
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, float):
        return "float"
    if isinstance(default, dict):
        return "json"
    if isinstance(default, list):
        return "list"
    return "str"


def _json_object(text: str) -> dict:
    import argparse

    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"threads\": 4}}', not {text!r}")
    return value


def _suffix(text: str) -> str:
    return text if text.startswith(".") else "." + text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One argparse option per settings field."""
    for f in dataclasses.fields(DefaceSettings):
        flag, help_text, choices = f.metadata["flag"], f.metadata["help"], f.metadata["choices"]
        kind, default = _kind(f), _default(f)
        if kind == "bool":
            parser.add_argument(flag, dest=f.name, action="store_false" if default else "store_true", help=help_text)
        elif kind == "float":
            parser.add_argument(flag, dest=f.name, type=float, default=default, help=help_text)
        elif kind == "json":
            parser.add_argument(flag, dest=f.name, type=_json_object, default=None, help=help_text)
        elif kind == "list":
            parser.add_argument(flag, dest=f.name, action="append", default=None, help=help_text)
        elif f.name == "output_format":  # "nii.gz" and ".nii.gz" both name the format
            parser.add_argument(flag, dest=f.name, type=_suffix, default=default, choices=choices, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=default, choices=choices, help=help_text)


def normal_fill(value: Any) -> Any:
    """'p10'/'air' stay words; a number (given as text on a command line) becomes a float; others stay as given
    (deface.parse_fill reports them as a user error)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text.lower() in FILL_POLICIES:
        return text.lower()
    try:
        return float(text)
    except ValueError:
        return text


def from_args(args: argparse.Namespace) -> DefaceSettings:
    """The settings an argparse namespace from `add_arguments` describes."""
    values = {}
    for f in dataclasses.fields(DefaceSettings):
        value = getattr(args, f.name, _default(f))
        if _kind(f) == "json":
            value = dict(value or {})
        elif _kind(f) == "list":
            value = list(value or [])
        values[f.name] = value
    values["fill"] = normal_fill(values["fill"])
    return DefaceSettings(**values)
