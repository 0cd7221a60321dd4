"""DICOM header de-identification: PS3.15 Annex E Basic Profile and options, keyed UIDs, pseudonyms, date shifts.

The rules are PS3.15 Table E.1-1 kept as data (data/ps3.15_table_e1-1.json; edition and source in
data/README.md). Nothing here touches pixel values or writes DICOM files.
"""

from .deidentifier import Deidentifier
from .keys import default_key_path, key_inside, load_or_create_key
from .mapping import UidMapping
from .options import OPTION_HELP, DeidOptions, all_option_names

__all__ = [
    "OPTION_HELP",
    "DeidOptions",
    "Deidentifier",
    "UidMapping",
    "all_option_names",
    "default_key_path",
    "key_inside",
    "load_or_create_key",
]
