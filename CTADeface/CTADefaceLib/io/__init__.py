"""Reading and writing images: verified volumes, DICOM series, and all-or-nothing case outputs."""
