"""Sample stage: seeded sampling from a checkpoint into PNG/DICOM files with a provenance manifest."""
