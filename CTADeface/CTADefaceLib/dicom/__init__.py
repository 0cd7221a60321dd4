"""DICOM studies in, defaced and de-identified DICOM out: discover, classify, geometry, pixels, writer, study."""
