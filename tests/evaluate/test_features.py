"""Pretrained extractors: refused without a local file (naming it), loaded from a local file when present."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.evaluate.features import (
    INCEPTION_WEIGHTS,
    XRV_WEIGHTS,
    FeatureExtractor,
    InceptionExtractor,
    WeightsNotFoundError,
    XRVDenseNetExtractor,
    build_xrv_densenet,
    describe,
    resolve_weights,
)


@pytest.mark.parametrize(
    "extractor, weights", [(InceptionExtractor, INCEPTION_WEIGHTS), (XRVDenseNetExtractor, XRV_WEIGHTS)]
)
def test_missing_weights_are_refused_with_the_file_and_how_to_get_it(tmp_path, extractor, weights):
    with pytest.raises(WeightsNotFoundError) as info:
        extractor(cache_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / weights.filename) in message
    assert weights.url in message and "never downloads" in message and "--weights" in message
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        extractor(weights_path=tmp_path / "nowhere.pth")


def test_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHMED_CACHE", str(tmp_path))
    torch.save({"w": torch.zeros(1)}, tmp_path / INCEPTION_WEIGHTS.filename)  # resolve_weights reads the file
    assert resolve_weights(INCEPTION_WEIGHTS) == tmp_path / INCEPTION_WEIGHTS.filename


def test_xrv_densenet_loads_a_local_state_dict_and_gives_1024_d_features(tmp_path):
    torch.manual_seed(0)
    state = build_xrv_densenet().state_dict()
    state["op_threshs"] = torch.zeros(18)  # torchxrayvision files carry this buffer; it is dropped on load
    torch.save(state, tmp_path / XRV_WEIGHTS.filename)
    extractor = XRVDenseNetExtractor(cache_dir=tmp_path, batch_size=2)
    assert isinstance(extractor, FeatureExtractor)
    loaded = extractor.model.state_dict()
    assert torch.equal(loaded["classifier.weight"], state["classifier.weight"])
    pixels = np.random.default_rng(0).integers(0, 255, (3, 3, 32, 32), dtype=np.uint8)
    features = extractor(pixels)
    assert features.shape == (3, 1024) and features.dtype == np.float32
    np.testing.assert_allclose(extractor(pixels[:1]), features[:1], rtol=1e-4, atol=1e-5)  # batched = unbatched
    assert describe(extractor)["input_size_px"] == 224


def test_xrv_refuses_a_file_of_the_wrong_architecture(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a densenet121-res224-all"):
        XRVDenseNetExtractor(weights_path=tmp_path / "bad.pt")


def test_inception_loads_a_local_state_dict(tmp_path, monkeypatch):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    # Make a randomly initialised state dict in torch-fidelity's format: build the network without loading.
    original = FeatureExtractorInceptionV3.load_state_dict
    monkeypatch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state, *a, **k: None)
    monkeypatch.setattr(torch, "load", lambda *a, **k: {})
    model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused")
    monkeypatch.undo()
    assert FeatureExtractorInceptionV3.load_state_dict is original
    torch.save(model.state_dict(), tmp_path / INCEPTION_WEIGHTS.filename)
    extractor = InceptionExtractor(cache_dir=tmp_path, batch_size=2)
    pixels = np.random.default_rng(0).integers(0, 255, (2, 1, 16, 16), dtype=np.uint8)
    features = extractor(pixels)
    assert features.shape == (2, 2048) and np.isfinite(features).all()


def test_extractors_refuse_non_uint8_input(tmp_path):
    torch.save(build_xrv_densenet().state_dict(), tmp_path / "x.pt")
    extractor = XRVDenseNetExtractor(weights_path=tmp_path / "x.pt")
    with pytest.raises(ValueError, match="uint8"):
        extractor(np.zeros((1, 1, 8, 8), dtype=np.float32))
