"""The model folder in the diffusers layout: diffusers loads it, the older flat layout still loads."""

from __future__ import annotations

import json
import re

import pytest
import torch
from diffusers import DDPMScheduler, DiffusionPipeline, UNet2DModel
from safetensors.torch import save_file

from synthmed.files import sha256_file
from synthmed.models.config import preset_config
from synthmed.models.unet import (
    build_scheduler,
    build_unet,
    is_model_folder,
    load_model_config,
    load_model_folder,
    load_model_metadata,
    save_model_folder,
    weights_sha256,
)


def _config(**overrides):
    return preset_config(
        "tiny",
        image_size_px=8,
        in_channels=1,
        num_classes=2,
        class_names=["normal", "pneumonia"],
        prediction_type="epsilon",
        **overrides,
    )


def _trained_unet(config):
    """A UNet whose weights are not the initial ones (so a loader that skips weights would differ)."""
    unet = build_unet(config).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return unet


def _outputs(unet, labels=(0, 2)):
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet(x, 10, class_labels=torch.tensor(labels)).sample


@pytest.fixture
def folder(tmp_path):
    config = _config()
    extra = {"step": 7, "weights": "ema", "dataset": "pneumonia32"}
    return save_model_folder(tmp_path / "model", unet=_trained_unet(config), config=config, extra=extra)


def test_diffusers_unet_loads_the_folder_and_matches_our_loader(folder):
    ours, config, scheduler = load_model_folder(folder)
    theirs = UNet2DModel.from_pretrained(str(folder), subfolder="unet").eval()
    torch.testing.assert_close(_outputs(theirs), _outputs(ours), rtol=0, atol=0)
    assert not torch.equal(_outputs(ours), _outputs(build_unet(config).eval()))  # real weights, not fresh ones
    assert weights_sha256(folder) == sha256_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert scheduler.config.prediction_type == "epsilon"


def test_diffusion_pipeline_loads_the_folder(folder):
    pipe = DiffusionPipeline.from_pretrained(str(folder))
    assert isinstance(pipe.unet, UNet2DModel) and isinstance(pipe.scheduler, DDPMScheduler)
    assert pipe.scheduler.config.prediction_type == "epsilon"
    ours, _, _ = load_model_folder(folder)
    torch.testing.assert_close(_outputs(pipe.unet.eval()), _outputs(ours), rtol=0, atol=0)
    # A diffusers user samples by passing class labels to the UNet (the model card shows the loop).
    pipe.scheduler.set_timesteps(2)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for t in pipe.scheduler.timesteps:
            x = pipe.scheduler.step(pipe.unet(x, t, class_labels=torch.tensor([0, 1])).sample, t, x).prev_sample
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()


def test_metadata_and_model_card(folder):
    meta = load_model_metadata(folder)
    assert (meta["step"], meta["weights"], meta["dataset"]) == (7, "ema", "pneumonia32")
    assert load_model_config(folder) == _config()
    assert not (folder / "config.json").exists()  # nothing top-level that DiffusionPipeline could misread
    card = (folder / "README.md").read_text()
    assert "pneumonia32" in card and "synthetic" in card.lower()
    assert "0 = normal, 1 = pneumonia" in card and "class_labels" in card
    assert card.startswith("---\nlicense:")


def test_older_flat_layout_still_loads(tmp_path):
    config = _config()
    unet = _trained_unet(config)
    old = tmp_path / "old"
    old.mkdir()
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(old / "model.safetensors"))
    build_scheduler(config).save_config(str(old))
    payload = {"format": "synthmed-diffusion-v1", "model": config.model_dump(), "step": 5}
    (old / "config.json").write_text(json.dumps(payload))
    assert is_model_folder(old)
    loaded, loaded_config, scheduler = load_model_folder(old)
    assert loaded_config == config and scheduler.config.prediction_type == "epsilon"
    torch.testing.assert_close(_outputs(loaded), _outputs(unet), rtol=0, atol=0)
    assert load_model_metadata(old)["step"] == 5
    assert weights_sha256(old) == sha256_file(old / "model.safetensors")


def test_foreign_folder_errors_naming_the_expected_files(tmp_path):
    # A plain diffusers UNet folder (no synthmed metadata) is not a synthmed model folder.
    foreign = tmp_path / "foreign"
    build_unet(_config()).save_pretrained(str(foreign))
    assert not is_model_folder(foreign)
    for call in (load_model_folder, load_model_config, weights_sha256):
        with pytest.raises(FileNotFoundError, match=r"synthmed\.json \+ unet/diffusion_pytorch_model\.safetensors"):
            call(foreign)
    with pytest.raises(FileNotFoundError, match=r"config\.json \+ model\.safetensors"):
        load_model_folder(tmp_path / "missing")


def test_partial_folder_without_metadata_is_not_a_model(folder):
    (folder / "synthmed.json").unlink()  # synthmed.json is written last: without it the folder is incomplete
    assert not is_model_folder(folder)
    with pytest.raises(FileNotFoundError, match="synthmed train"):
        load_model_folder(folder)


def test_metadata_of_another_format_is_refused(folder):
    (folder / "synthmed.json").write_text(json.dumps({"format": "something-else", "model": {}}))
    with pytest.raises(ValueError, match="synthmed-diffusion-v2"):
        load_model_config(folder)


def test_wrapped_unet_is_saved_unwrapped_and_other_modules_are_refused(tmp_path):
    config = _config()
    unet = _trained_unet(config)
    wrapper = torch.nn.Module()
    wrapper.module = unet  # the shape of DDP / accelerate wrappers
    saved = save_model_folder(tmp_path / "w", unet=wrapper, config=config)
    torch.testing.assert_close(_outputs(load_model_folder(saved)[0]), _outputs(unet), rtol=0, atol=0)
    with pytest.raises(TypeError, match="UNet2DModel"):
        save_model_folder(tmp_path / "x", unet=torch.nn.Linear(2, 2), config=config)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "flow_prediction"])
def test_model_card_diffusers_snippet_runs(tmp_path, prediction_type):
    config = _config().model_copy(update={"prediction_type": prediction_type})
    folder = save_model_folder(tmp_path / "model", unet=_trained_unet(config), config=config)
    card = (folder / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0].replace("THIS_FOLDER", str(folder))
    code = re.sub(r"set_timesteps\(\d+\)", "set_timesteps(2)", code)  # the card's step count, cut for speed
    namespace: dict = {}
    exec(code, namespace)  # the card's own code, as a diffusers user would run it
    images = namespace["images"]
    assert images.shape == (2, 1, 8, 8) and bool(((images >= 0) & (images <= 1)).all())
    assert ("FlowMatchEulerDiscreteScheduler" in code) == (prediction_type == "flow_prediction")
