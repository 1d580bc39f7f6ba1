"""Experiment files: one TOML per study arm, run stage by stage into one run folder (`synthmed run`)."""
