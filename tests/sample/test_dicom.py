"""Synthetic DICOM output: tags, fresh UIDs, no patient identifiers, pixel round trip."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from synthmed.sample.dicom import write_synthetic_dicom
from synthmed.sample.writer import SyntheticSetWriter


@pytest.mark.parametrize(
    "pixels, photometric, bits",
    [
        (np.arange(48, dtype=np.uint8).reshape(6, 8), "MONOCHROME2", 8),
        (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1300, "MONOCHROME2", 16),
        (np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8), "RGB", 8),
    ],
)
def test_tags_and_pixel_round_trip(tmp_path, pixels, photometric, bits):
    path = write_synthetic_dicom(
        tmp_path / "x.dcm",
        pixels,
        description="synthetic normal",
        derivation="synthmed checkpoint runs/x/model sha256 abc",
    )
    ds = pydicom.dcmread(path)
    assert ds.SyntheticData == "YES"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.BurnedInAnnotation == "NO"
    assert "synthmed" in ds.DerivationDescription and "runs/x/model" in ds.DerivationDescription
    assert ds.PhotometricInterpretation == photometric
    assert ds.BitsAllocated == ds.BitsStored == bits and ds.HighBit == bits - 1
    assert str(ds.PatientName) == "SYNTHETIC^IMAGE" and ds.PatientID == "SYNTHETIC"
    assert ds.PatientBirthDate == "" and ds.PatientSex == ""
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    np.testing.assert_array_equal(ds.pixel_array, pixels)


def test_writer_dicoms_have_unique_uids_in_one_series(tmp_path):
    with SyntheticSetWriter(tmp_path, formats=("png", "dicom"), modality="CR") as writer:
        rows = [writer.add(np.full((4, 4), k, np.uint8), label="a", label_idx=0, seed=k) for k in range(3)]
    datasets = [pydicom.dcmread(tmp_path / r["dicom_path"]) for r in rows]
    assert len({d.SOPInstanceUID for d in datasets}) == 3
    assert len({d.SeriesInstanceUID for d in datasets}) == 1 and len({d.StudyInstanceUID for d in datasets}) == 1
    assert {d.Modality for d in datasets} == {"CR"} and [int(d.InstanceNumber) for d in datasets] == [1, 2, 3]
    other = pydicom.dcmread(write_synthetic_dicom(tmp_path / "o.dcm", np.zeros((4, 4), np.uint8), description="x"))
    assert other.StudyInstanceUID != datasets[0].StudyInstanceUID


def test_dicom_rejects_bad_pixels(tmp_path):
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_synthetic_dicom(tmp_path / "x.dcm", np.zeros((4, 4), np.float32), description="x")
    with pytest.raises(ValueError, match="shape"):
        write_synthetic_dicom(tmp_path / "x.dcm", np.zeros((4, 4, 2), np.uint8), description="x")
    assert not (tmp_path / "x.dcm").exists()
