"""dciodvfy (Debian's dicom3tools) finds no conformance problem in a synthetic Secondary Capture file."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from synthmed.sample.writer import SyntheticSetWriter

# What dciodvfy may say, and why that is no defect of the file:
ACCEPTED = (
    "0x0008,0x001c",  # SyntheticData (2022) is newer than dciodvfy's dictionary: "unrecognized tag"
    "this is a Standard Extended SOP Class",  # the consequence of the same unknown tag
    "attribute <Laterality>",  # Type 2C present and empty = unknown: a synthetic image has no body side
)


@pytest.mark.parametrize(
    "pixels, bit_depth",
    [
        (np.arange(256, dtype=np.uint8).reshape(16, 16), 8),
        (np.arange(256, dtype=np.uint8).reshape(16, 16), 16),
        (np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8), 8),
    ],
    ids=["grey8", "grey16", "rgb8"],
)
def test_dciodvfy_reports_nothing_but_the_new_synthetic_data_tag(tmp_path, pixels, bit_depth):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is absent: apt-get install dicom3tools (.ci/run does)")
    with SyntheticSetWriter(tmp_path, formats=("dicom",), bit_depth=bit_depth, modality="DX") as writer:
        row = writer.add(pixels, label="normal", label_idx=0, seed=1, provenance={"checkpoint": "run/model"})
    result = subprocess.run(["dciodvfy", str(tmp_path / row["path"])], capture_output=True, text=True, timeout=60)
    findings = [line for line in (result.stdout + result.stderr).splitlines() if "Error" in line or "Warning" in line]
    assert findings, "dciodvfy said nothing at all: is it the dicom3tools validator?"
    unexpected = [line for line in findings if not any(ok in line for ok in ACCEPTED)]
    assert not unexpected, "\n".join(unexpected)
