"""The prepared-dataset contract: write, read back, and clear errors for missing pieces."""

import pytest

from synthmed.data.manifest import ManifestError, load_image_set, read_dataset_info, read_manifest


def test_round_trip(tiny_dataset):
    frame = read_manifest(tiny_dataset)
    assert list(frame.columns[:5]) == ["image_id", "path", "split", "label", "label_idx"]
    info = read_dataset_info(tiny_dataset)
    assert info.classes == ["left", "right"] and info.channels == 1
    train = load_image_set(tiny_dataset, split="train")
    assert len(train) == 24 and (train["synthetic"] == 0).all()


def test_missing_manifest_says_how_to_fix(tmp_path):
    with pytest.raises(ManifestError, match="synthmed prepare"):
        read_manifest(tmp_path)
    with pytest.raises(ManifestError, match="synthmed prepare"):
        read_dataset_info(tmp_path)
