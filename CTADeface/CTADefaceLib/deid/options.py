"""The PS3.15 Annex E options a user can add to the Basic Profile, by their command-line names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from ..errors import InputError

# option field -> (command-line name, the table column it switches on, CID 7050 keyword in pydicom's codes.DCM)
# The table column names are those of data/ps3.15_table_e1-1.json (see data/regenerate_table.py).
OPTION_SPECS = {
    "clean_descriptors": ("clean-descriptors", "clean-descriptors", "CleanDescriptorsOption"),
    "retain_longitudinal_modified_dates": (
        "retain-dates",
        "retain-dates",
        "RetainLongitudinalTemporalInformationModifiedDatesOption",
    ),
    "retain_patient_characteristics": (
        "retain-patient-characteristics",
        "retain-patient-characteristics",
        "RetainPatientCharacteristicsOption",
    ),
    "retain_device_identity": ("retain-device-identity", "retain-device-identity", "RetainDeviceIdentityOption"),
    "retain_safe_private": ("retain-safe-private", "retain-safe-private", "RetainSafePrivateOption"),
}
BASIC_PROFILE_CODE = "BasicApplicationConfidentialityProfile"
DEFACED_CODE = "CleanRecognizableVisualFeaturesOption"

# What each option keeps, in one line (for --help and the README).
OPTION_HELP = {
    "clean-descriptors": "keep descriptions (study, series, protocol, comments...) after removing from them every "
    "identifying value found elsewhere in the same file and every UID, date and time",
    "retain-dates": "keep dates and times, every date moved by one secret offset per patient (365 to 3650 days back), "
    "so intervals between a patient's studies survive (the birth date is still removed)",
    "retain-patient-characteristics": "keep sex, age, size, weight, ethnic group, smoking and pregnancy status; "
    "allergies, pre-medication, patient state and special needs after cleaning",
    "retain-device-identity": "keep station names, device serial numbers and IDs, calibration and installation "
    "dates, and AE titles after cleaning",
    "retain-safe-private": "keep the private attributes PS3.15 Table E.3.10-1 lists as safe (GE, Philips, Siemens, "
    "Elscint, Hologic, NeuroQuant), when creator, element, VR and value check out; vendors do not guarantee them",
}


@dataclass(frozen=True)
class DeidOptions:
    """PS3.15 Annex E options beyond the Basic Profile (all off: the Basic Profile alone)."""

    clean_descriptors: bool = False
    retain_longitudinal_modified_dates: bool = False  # dates shifted by one keyed offset per patient
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    retain_safe_private: bool = False

    @classmethod
    def from_names(cls, names: Iterable[str]) -> DeidOptions:
        by_name = {spec[0]: field for field, spec in OPTION_SPECS.items()}
        chosen = {}
        for name in names:
            key = str(name).strip().lower().replace("_", "-")
            if key not in by_name:
                raise InputError(
                    f"Unknown de-identification option {name!r}: choose from {', '.join(sorted(by_name))}."
                )
            chosen[by_name[key]] = True
        return cls(**chosen)

    def names(self) -> list[str]:
        return [OPTION_SPECS[f.name][0] for f in fields(self) if getattr(self, f.name)]

    def columns(self) -> list[str]:
        """The table columns these options switch on."""
        return [OPTION_SPECS[f.name][1] for f in fields(self) if getattr(self, f.name)]


def all_option_names() -> list[str]:
    return [spec[0] for spec in OPTION_SPECS.values()]
