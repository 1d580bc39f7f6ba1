"""The domain encoder: trained on real train images, cached by content and settings, used as an extractor."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data.arrays import load_image_arrays
from synthmed.evaluate.encoder import EncoderSettings, cache_key, load_or_train_domain_extractor
from synthmed.evaluate.features import FeatureExtractor

TINY = EncoderSettings(input_size_px=16, width=8, feature_dim=16, epochs=3, batch_size=8)


def test_trains_records_caches_and_reloads(tiny_dataset, tmp_path):
    train = load_image_arrays(tiny_dataset, split="train", classes=["left", "right"])
    val = load_image_arrays(tiny_dataset, split="val", classes=["left", "right"])
    first = load_or_train_domain_extractor(train, val, settings=TINY, cache_dir=tmp_path)
    assert isinstance(first, FeatureExtractor)
    assert first.record["cached"] is False and first.record["epochs"] == 3
    assert 0.0 <= first.record["val_accuracy"] <= 1.0 and len(first.record["train_loss_per_epoch"]) == 3
    features = first(train.pixels)
    assert features.shape == (len(train), 16) and np.isfinite(features).all()
    second = load_or_train_domain_extractor(train, val, settings=TINY, cache_dir=tmp_path)
    assert second.record["cached"] is True and second.record["cache_dir"] == first.record["cache_dir"]
    np.testing.assert_allclose(second(train.pixels), features, rtol=1e-5, atol=1e-5)


def test_cache_key_changes_with_images_and_settings(tiny_dataset):
    train = load_image_arrays(tiny_dataset, split="train", classes=["left", "right"])
    key = cache_key(train, TINY)
    assert cache_key(train, EncoderSettings(input_size_px=16, width=8, feature_dim=16, epochs=4, batch_size=8)) != key
    assert cache_key(train.subset(np.arange(len(train) - 1)), TINY) != key
    assert cache_key(train, TINY) == key


def test_bad_settings_and_too_few_images_are_refused(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        EncoderSettings(epochs=0)
    train = load_image_arrays(tiny_dataset, split="train", classes=["left", "right"])
    with pytest.raises(ValueError, match="at least 2"):
        load_or_train_domain_extractor(train.subset(np.arange(1)), None, settings=TINY, cache_dir=tmp_path)
