"""NIfTI reading: canonical orientation, HU windows, slice step, empty slices, label maps, shared volumes."""

import json

import nibabel as nib
import numpy as np
import pytest

from synthmed.data.manifest import read_manifest
from synthmed.data.prepare import PrepareConfig, prepare_dataset
from synthmed.data.read_nifti import read_nifti
from synthmed.data.records import ReadOptions


def _ct_volume(affine=None, seed=None) -> nib.Nifti1Image:
    """16x16x10 HU volume: air, a soft-tissue body, a bright anterior marker; slices 0-1 empty."""
    hu = np.full((16, 16, 10), -1000.0, np.float32)
    hu[3:13, 3:13, 2:] = 40.0
    if seed is not None:
        hu[3:13, 3:13, 2:] += np.random.default_rng(seed).normal(0, 30, (10, 10, 8))
    hu[7:9, 11:13, 2:] = 1000.0  # high y = anterior in RAS
    return nib.Nifti1Image(hu, np.eye(4) if affine is None else affine)


def test_axial_slices_windowed_and_anterior_up(tmp_path):
    nib.save(_ct_volume(), tmp_path / "ct.nii.gz")
    slices = read_nifti(tmp_path / "ct.nii.gz", ReadOptions(size_px=16, window=(350.0, 50.0)))
    assert [s.frame for s in slices] == list(range(2, 10))  # the two empty slices are skipped
    image = slices[0].pixels
    assert image[0, 0] == 0 and 110 <= image[8, 5] <= 130
    rows_with_bone = np.flatnonzero((image == 255).any(axis=1))
    assert rows_with_bone.max() < 8  # anterior marker in the upper half
    assert {s.patient_id for s in slices} == {"ct"} and slices[0].orig_mode == "CT"


def test_lps_volume_is_reoriented_to_the_same_picture(tmp_path):
    nib.save(_ct_volume(), tmp_path / "ras.nii.gz")
    lps = nib.Nifti1Image(_ct_volume().get_fdata()[::-1, ::-1, :].astype(np.float32), np.diag([-1, -1, 1, 1]))
    nib.save(lps, tmp_path / "lps.nii.gz")
    options = ReadOptions(size_px=16, window=(350.0, 50.0))
    a = read_nifti(tmp_path / "ras.nii.gz", options)[3].pixels
    b = read_nifti(tmp_path / "lps.nii.gz", options)[3].pixels
    np.testing.assert_array_equal(a, b)


def test_slice_step_and_keep_empty(tmp_path):
    nib.save(_ct_volume(), tmp_path / "ct.nii")
    kept = read_nifti(tmp_path / "ct.nii", ReadOptions(size_px=8, slice_step=3, skip_empty_slices=False))
    assert [s.frame for s in kept] == [0, 3, 6, 9]


def test_mr_uses_percentiles_and_label_maps_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    mr = rng.gamma(2.0, 100.0, (12, 12, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(mr, np.eye(4)), tmp_path / "mr.nii.gz")
    slices = read_nifti(tmp_path / "mr.nii.gz", ReadOptions(size_px=12))
    assert slices[0].orig_mode == "MR/other" and max(s.pixels.max() for s in slices) == 255
    labels = np.zeros((12, 12, 4), np.int16)
    labels[2:6, 2:6] = 3
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "seg.nii.gz")
    with pytest.raises(ValueError, match="label map"):
        read_nifti(tmp_path / "seg.nii.gz", ReadOptions(size_px=12))


def test_slices_of_a_volume_share_one_split(tmp_path):
    src = tmp_path / "src" / "ct"
    src.mkdir(parents=True)
    for k in range(6):
        nib.save(_ct_volume(seed=k), src / f"case{k}.nii.gz")
    out = prepare_dataset(
        tmp_path / "src",
        out_dir=tmp_path / "out",
        config=PrepareConfig(size_px=16, window="mediastinum", workers=1, val_fraction=0.2, test_fraction=0.2),
    )
    frame = read_manifest(out)
    assert len(frame) == 6 * 8 and frame["patient_id"].nunique() == 6
    assert (frame.groupby("patient_id")["split"].nunique() == 1).all() and frame["split"].nunique() > 1
    assert json.loads((out / "card.json").read_text())["exact_duplicates"]["groups"] == 0


def test_shared_nifti_folder(shared_data, tmp_path):
    out = prepare_dataset(
        shared_data / "nifti",
        out_dir=tmp_path / "out",
        config=PrepareConfig(size_px=32, window="mediastinum", slice_step=4, workers=1),
    )
    card = json.loads((out / "card.json").read_text())
    reasons = {e["source_path"].rsplit("/", 1)[-1]: e["reason"] for e in card["errors"]["list"]}
    assert list(reasons) == ["example_seg.nii.gz"] and "label map" in reasons["example_seg.nii.gz"]
    frame = read_manifest(out)
    assert set(frame["patient_id"]) == {"example_ct", "example_ct_sm", "example_mr_sm"}
    assert set(frame["orig_mode"]) == {"CT", "MR/other"}
