"""Latent model and autoencoder folders written before their save/load moved into models/ still load, and new
folders are written in the same format (file names, config.json payload, scheduler config)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import DDPMScheduler
from safetensors.torch import load_file, save_file

from synthmed.latent.autoencoder import build_autoencoder, load_autoencoder, save_autoencoder
from synthmed.latent.model import LatentDenoiser, LatentModelConfig, load_latent_model, save_latent_model

# config.json "model" of a latent folder as the older code wrote it (every field, written by model_dump()).
OLD_LATENT_MODEL = {
    "latent_channels": 4,
    "latent_size": 8,
    "num_classes": 2,
    "class_names": ["a", "b"],
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "attention_levels": [False, True],
    "attention_head_dim": 8,
    "norm_num_groups": 16,
    "metadata": {"age": True, "age_mean": 40.0, "age_std": 9.0, "sex_values": ["F", "M"], "view_values": []},
    "prediction_type": "v_prediction",
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "condition_dropout_prob": 0.1,
    "cross_attention_dim": None,
}
OLD_AUTOENCODER = {
    "image_size_px": 16,
    "channels": 1,
    "latent_channels": 4,
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "scaling_factor": 0.7,
}


def _state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights (so a load that dropped or mixed tensors would show)."""
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) for k, v in module.state_dict().items()}


def _old_latent_folder(folder: Path) -> dict[str, torch.Tensor]:
    folder.mkdir()
    state = _state(LatentDenoiser(LatentModelConfig.model_validate(OLD_LATENT_MODEL)), seed=1)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "synthmed-latent-v1"})
    schedule = {k: OLD_LATENT_MODEL[k] for k in ("num_train_timesteps", "beta_schedule", "prediction_type")}
    DDPMScheduler(**schedule, clip_sample=False).save_config(str(folder))  # the older code's latent schedule
    (folder / "config.json").write_text(json.dumps({"format": "synthmed-latent-v1", "model": OLD_LATENT_MODEL}))
    return state


def test_an_older_latent_model_folder_loads_and_saves_back_in_the_same_format(tmp_path):
    state = _old_latent_folder(tmp_path / "old")
    model, scheduler = load_latent_model(tmp_path / "old")
    assert model.config.model_dump() == OLD_LATENT_MODEL
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.clip_sample is False

    save_latent_model(tmp_path / "new", model=model, extra={"step": 3})
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == sorted(p.name for p in (tmp_path / "old").iterdir())
    payload = json.loads((tmp_path / "new" / "config.json").read_text())
    assert payload == {"format": "synthmed-latent-v1", "model": OLD_LATENT_MODEL, "step": 3}
    written = load_file(str(tmp_path / "new" / "model.safetensors"))
    assert written.keys() == state.keys() and all(torch.equal(written[k], v) for k, v in state.items())
    new_schedule = DDPMScheduler.load_config(str(tmp_path / "new"))
    old_schedule = DDPMScheduler.load_config(str(tmp_path / "old"))
    assert {k: v for k, v in new_schedule.items() if k != "_diffusers_version"} == {
        k: v for k, v in old_schedule.items() if k != "_diffusers_version"
    }


def test_an_older_autoencoder_folder_loads_and_saves_back_in_the_same_format(tmp_path):
    from synthmed.latent.autoencoder import AutoencoderConfig

    old = tmp_path / "old"
    old.mkdir()
    state = _state(build_autoencoder(AutoencoderConfig.model_validate(OLD_AUTOENCODER)), seed=2)
    save_file(state, str(old / "model.safetensors"), metadata={"format": "synthmed-autoencoder-v1"})
    (old / "config.json").write_text(json.dumps({"format": "synthmed-autoencoder-v1", "autoencoder": OLD_AUTOENCODER}))
    vae, config = load_autoencoder(old)
    assert config.model_dump() == OLD_AUTOENCODER
    assert all(torch.equal(vae.state_dict()[k], v) for k, v in state.items())

    save_autoencoder(tmp_path / "new", vae=vae, config=config)
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["config.json", "model.safetensors"]
    payload = json.loads((tmp_path / "new" / "config.json").read_text())
    assert payload == {"format": "synthmed-autoencoder-v1", "autoencoder": OLD_AUTOENCODER}
    written = load_file(str(tmp_path / "new" / "model.safetensors"))
    assert written.keys() == state.keys() and all(torch.equal(written[k], v) for k, v in state.items())
