"""`synthmed sample` as 2 processes (accelerate launch, gloo on CPU) writes the same image set as 1 process."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom
import pytest
import torch

from cli import corpus
from launch_helpers import launch
from synthmed.cli import main
from synthmed.sample.shard import ProcessShard, merge_shares, sharded_batches

# 2 classes x 5 seeds in batches of 3: the last batch has 1 image, so process 1 has nothing to do in it.
ARGS = ["--n-per-class", "5", "--batch-size", "3", "--steps", "3", "--sampler", "ddpm", "--guidance-scale", "2"]
# Fresh in every run by design (also for 1 process); the group length follows the UIDs' lengths.
FRESH_PER_RUN = {
    "SOPInstanceUID",
    "MediaStorageSOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FileMetaInformationGroupLength",
}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _dicom_fields(path: Path) -> dict:
    """Every element (file meta included) but the UIDs and times that each run makes fresh."""
    dataset = pydicom.dcmread(path)
    return {
        element.keyword or str(element.tag): element.value
        for element in [*dataset.file_meta, *dataset]
        if element.keyword not in FRESH_PER_RUN and not element.keyword.endswith(("Date", "Time"))
    }


def test_two_processes_write_the_same_set_as_one(tmp_path):
    model = corpus.tiny_model(tmp_path / "model")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["sample", str(model), "--out", str(one), "--format", "png+dicom", *ARGS]) == 0
    done = launch(["-m", "synthmed.cli", "sample", str(model), "--out", str(two), "--format", "png+dicom", *ARGS])
    assert "process 1 of 2 (gloo)" in done.stderr  # the work was shared, not done twice

    assert _files(two) == _files(one) and not (tmp_path / "two.partial").exists()
    pngs = [name for name in _files(one) if name.endswith(".png")]
    assert len(pngs) == 10 + 2  # the images and one grid per class
    for name in pngs:
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    rows_one, rows_two = (pd.read_csv(folder / "manifest.csv") for folder in (one, two))
    pd.testing.assert_frame_equal(rows_two.drop(columns="created_utc"), rows_one.drop(columns="created_utc"))
    assert list(rows_one["seed"]) == [0, 1, 2, 3, 4] * 2
    dicoms = [name for name in _files(one) if name.endswith(".dcm")]
    assert len(dicoms) == 10
    for name in dicoms:
        assert _dicom_fields(two / name) == _dicom_fields(one / name), name
    series = {pydicom.dcmread(two / name).SeriesInstanceUID for name in dicoms}
    assert len(series) == 1  # one series, written by the main process


@pytest.mark.parametrize("count", [1, 2, 3])
def test_shares_cover_every_job_once_and_merge_back_in_order(count):
    jobs = list(range(7))
    shares = [ProcessShard(index, count).share(jobs) for index in range(count)]
    assert sorted(sum(shares, [])) == jobs and all(len(s) in (7 // count, 7 // count + 1) for s in shares)
    assert merge_shares(shares) == jobs


def test_one_process_gets_every_batch_whole_and_in_order():
    jobs = list(range(7))
    batches = list(sharded_batches(jobs, 3, ProcessShard(), lambda part: torch.tensor(part) * 10))
    assert [b for b, _ in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert torch.cat([images for _, images in batches]).tolist() == [j * 10 for j in jobs]
