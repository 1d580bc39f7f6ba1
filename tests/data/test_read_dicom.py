"""DICOM reading: MONOCHROME1, rescale + windows, no file meta, multi-frame, non-image files, shared edge cases."""

import json

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from synthmed.data.manifest import read_dataset_info, read_manifest
from synthmed.data.prepare import PrepareConfig, prepare_dataset
from synthmed.data.read_dicom import read_dicom
from synthmed.data.records import ReadOptions


def _dataset(sop_class=SecondaryCaptureImageStorage, modality="CR") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class
    ds.PatientID, ds.PatientAge, ds.PatientSex, ds.Modality = "PAT7", "061Y", "F", modality
    return ds


def _chest(size=32) -> np.ndarray:
    """Raw detector values: a body (high) with two lungs (lower) on air (0)."""
    image = np.zeros((size, size), np.uint16)
    image[4:-4, 4:-4] = 3000
    image[8:-8, 7:14] = 1200
    image[8:-8, -14:-7] = 1200
    return image


def write_monochrome1(path, *, file_meta=True):
    ds = _dataset()
    ds.set_pixel_data(4095 - _chest(), photometric_interpretation="MONOCHROME1", bits_stored=12)
    if not file_meta:
        del ds.file_meta
        ds.preamble = None
        pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    else:
        ds.save_as(path, enforce_file_format=True)
    return path


def test_monochrome1_is_inverted_so_air_is_dark(tmp_path):
    image = read_dicom(write_monochrome1(tmp_path / "m1.dcm"), ReadOptions(size_px=32))[0]
    assert image.orig_mode == "MONOCHROME1" and image.patient_id == "PAT7"
    assert image.pixels[0, 0] < 30 and image.pixels[16, 16] > 200  # air dark, mediastinum bright
    assert 60 < image.pixels[16, 10] < 150  # lung in between
    assert image.meta["age_years"] == 61 and image.meta["sex"] == "F"


def test_file_without_meta_is_read_with_force(tmp_path):
    path = write_monochrome1(tmp_path / "nometa", file_meta=False)
    assert path.read_bytes()[128:132] != b"DICM"
    image = read_dicom(path, ReadOptions(size_px=16))[0]
    assert image.pixels.shape == (16, 16) and image.pixels[0, 0] < 30


def test_rescale_and_window_give_hounsfield_contrast(tmp_path):
    ds = _dataset(modality="CT")
    hu = np.full((32, 32), -1000, np.int16)
    hu[8:24, 8:24] = 40  # soft tissue
    hu[14:18, 14:18] = 1000  # bone
    ds.set_pixel_data((hu + 1024).astype(np.int16), photometric_interpretation="MONOCHROME2", bits_stored=16)
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.save_as(tmp_path / "ct.dcm", enforce_file_format=True)
    image = read_dicom(tmp_path / "ct.dcm", ReadOptions(size_px=32, window=(350.0, 50.0)))[0]
    assert image.pixels[0, 0] == 0 and image.pixels[16, 16] == 255
    assert 110 <= image.pixels[10, 10] <= 130  # 40 HU sits just under the middle of W350/L50


def test_multiframe_middle_or_all(tmp_path):
    ds = _dataset()
    frames = np.stack([np.full((8, 8), k * 10, np.uint16) + np.eye(8, dtype=np.uint16) * 100 for k in range(5)])
    ds.set_pixel_data(frames, photometric_interpretation="MONOCHROME2", bits_stored=12)
    ds.save_as(tmp_path / "mf.dcm", enforce_file_format=True)
    assert [im.frame for im in read_dicom(tmp_path / "mf.dcm", ReadOptions(size_px=8))] == [2]
    every = read_dicom(tmp_path / "mf.dcm", ReadOptions(size_px=8, frames="all"))
    assert [im.frame for im in every] == [0, 1, 2, 3, 4] and len({im.source_sha256 for im in every}) == 5


def test_non_image_dicom_is_listed_as_an_error(tmp_path):
    src = tmp_path / "src" / "cr"
    src.mkdir(parents=True)
    write_monochrome1(src / "a.dcm")
    write_monochrome1(src / "b.dcm")
    report = _dataset(sop_class=BasicTextSRStorage, modality="SR")
    report.save_as(src / "report.dcm", enforce_file_format=True)
    out = prepare_dataset(tmp_path / "src", out_dir=tmp_path / "out", config=PrepareConfig(size_px=16, workers=1))
    errors = pd.read_csv(out / "errors.csv")
    assert (
        len(errors) == 1
        and "non-image DICOM" in errors["reason"][0]
        and errors["source_path"][0].endswith("report.dcm")
    )
    frame = read_manifest(out)
    assert len(frame) == 2 and set(frame["patient_id"]) == {"PAT7"} and frame["split"].nunique() == 1


def test_shared_edge_case_dicoms(shared_data, tmp_path):
    folder = shared_data / "dicom"
    cr = read_dicom(folder / "CR-MONO1-10-chest.dcm", ReadOptions(size_px=64))[0]
    assert cr.orig_mode == "MONOCHROME1"
    border = np.concatenate([cr.pixels[:, :4].ravel(), cr.pixels[:, -4:].ravel()])
    assert border.mean() < cr.pixels[24:40, 24:40].mean()  # inverted: air at the sides darker than the mediastinum
    lossless = read_dicom(folder / "IM-0001-0001-0001.dcm", ReadOptions(size_px=64))[0]  # JPEG Lossless
    assert lossless.pixels.std() > 10
    ankle = read_dicom(folder / "CT-MONO2-16-ankle.dcm", ReadOptions(size_px=64, window=(2000.0, 300.0)))[0]
    assert ankle.pixels.min() == 0 and ankle.pixels.max() > 200  # signed CT through rescale and a bone window
    out = prepare_dataset(folder, out_dir=tmp_path / "out", config=PrepareConfig(size_px=32, workers=1))
    card = json.loads((out / "card.json").read_text())
    assert card["n_images"] == 5 and card["errors"]["count"] == 0
    assert read_dataset_info(out).classes == ["unlabelled"]


@pytest.mark.parametrize("window", ["lung", "400,40"])
def test_window_option_reaches_the_reader(shared_data, tmp_path, window):
    out = prepare_dataset(
        shared_data / "dicom" / "CT_small.dcm",
        out_dir=tmp_path / "o",
        config=PrepareConfig(size_px=16, window=window, workers=1),
    )
    assert len(read_manifest(out)) == 1 and json.loads((out / "card.json").read_text())["config"]["window"] == window
