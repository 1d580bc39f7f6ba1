"""DiffusionModelConfig presets/validation and the model folder save/load round trip."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from synthmed.models.config import PRESETS, DiffusionModelConfig, preset_choice, preset_config, preset_for_size
from synthmed.models.unet import build_unet, load_model_folder, publish_model_folder, save_model_folder


@pytest.mark.parametrize(
    "preset, size",
    [("tiny", 16), ("32", 32), ("64", 64), ("64-cpu", 64), ("128", 128), ("128-cpu", 128), ("256", 256)],
)
def test_presets_validate(preset, size):
    config = preset_config(preset, image_size_px=size, in_channels=1, num_classes=3)
    assert config.null_class == 3 and len(config.attention_levels) == len(config.block_out_channels)
    assert all(c % config.norm_num_groups == 0 for c in config.block_out_channels)
    assert preset in PRESETS


def test_preset_for_size():
    assert [preset_for_size(s) for s in (28, 32, 33, 64, 100, 256, 512)] == [
        "32",
        "32",
        "64",
        "64",
        "128",
        "256",
        "256",
    ]


def test_cpu_presets_are_smaller_and_chosen_without_a_gpu():
    for size in (64, 128):
        big = build_unet(preset_config(str(size), image_size_px=size, in_channels=1, num_classes=2))
        small = build_unet(preset_config(f"{size}-cpu", image_size_px=size, in_channels=1, num_classes=2))
        assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters()) / 4
    assert [preset_for_size(s, gpu=False) for s in (28, 64, 100, 256)] == ["32", "64-cpu", "128-cpu", "256"]
    assert [preset_for_size(s, gpu=True) for s in (28, 64, 100, 256)] == ["32", "64", "128", "256"]
    preset, why = preset_choice(64, gpu=False, budget="300 steps")
    assert preset == "64-cpu" and "no GPU" in why and "300 steps" in why and "--preset 64" in why
    preset, why = preset_choice(64, gpu=True, budget="10 min")
    assert preset == "64" and "a GPU" in why and "10 min" in why


def test_cpu_preset_trains_a_step_at_64_px():
    config = preset_config("64-cpu", image_size_px=64, in_channels=3, num_classes=2)
    unet = build_unet(config)
    out = unet(torch.randn(2, 3, 64, 64), torch.tensor([3, 500]), class_labels=torch.tensor([0, 2])).sample
    out.pow(2).mean().backward()
    assert out.shape == (2, 3, 64, 64) and all(p.grad is not None for p in unet.parameters() if p.requires_grad)


def test_bad_configs_say_how_to_fix():
    with pytest.raises(ValidationError, match="attention_levels"):
        DiffusionModelConfig(image_size_px=16, num_classes=2, block_out_channels=[8, 16], attention_levels=[True])
    with pytest.raises(ValidationError, match="divisible"):
        DiffusionModelConfig(
            image_size_px=18, num_classes=2, block_out_channels=[8, 16, 16], attention_levels=[False] * 3
        )
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("huge", image_size_px=32, in_channels=1, num_classes=2)
    with pytest.raises(ValidationError):
        DiffusionModelConfig(
            image_size_px=16, num_classes=2, block_out_channels=[8], attention_levels=[False], prediction_type="sample"
        )


@pytest.mark.parametrize("channels", [1, 3])
def test_model_folder_round_trip(tmp_path, channels):
    config = preset_config(
        "tiny", image_size_px=8, in_channels=channels, num_classes=2, class_names=["a", "b"], prediction_type="epsilon"
    )
    unet = build_unet(config).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    folder = publish_model_folder(tmp_path / "model", unet=unet, config=config, extra={"step": 3})
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "model_index.json",
        "scheduler",
        "synthmed.json",
        "unet",
    ]
    loaded, loaded_config, scheduler = load_model_folder(folder)
    assert loaded_config == config and json.loads((folder / "synthmed.json").read_text())["step"] == 3
    assert scheduler.config.prediction_type == "epsilon"
    x = torch.randn(2, channels, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(x, 10, class_labels=torch.tensor([0, 2])).sample,
            unet(x, 10, class_labels=torch.tensor([0, 2])).sample,
            rtol=0,
            atol=0,
        )
    # Publishing again replaces the folder whole.
    publish_model_folder(tmp_path / "model", unet=unet, config=config, extra={"step": 4})
    assert json.loads((folder / "synthmed.json").read_text())["step"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="synthmed train"):
        load_model_folder(tmp_path)
    config = preset_config("tiny", image_size_px=8, in_channels=1, num_classes=2)
    save_model_folder(tmp_path / "m", unet=build_unet(config), config=config)
    other = preset_config("tiny", image_size_px=8, in_channels=1, num_classes=2, block_out_channels=[16, 16])
    save_model_folder(tmp_path / "n", unet=build_unet(other), config=other)
    (tmp_path / "m" / "unet" / "diffusion_pytorch_model.safetensors").replace(
        tmp_path / "n" / "unet" / "diffusion_pytorch_model.safetensors"
    )
    with pytest.raises(ValueError, match="does not match"):
        load_model_folder(tmp_path / "n")
