"""The one loop for the latent families: a stopped-then-resumed run ends with an uninterrupted run's weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synthmed.latent.autoencoder import AE_PRESETS, AETrainConfig, AutoencoderConfig, train_autoencoder
from synthmed.latent.train import LatentTrainConfig, train_latent
from synthmed.train.checkpoint import latest_checkpoint

# Constant lr: the first session's shorter step budget must not change its learning rates.
LOOP = dict(batch_size=2, max_steps=4, lr=1e-3, lr_schedule="constant", lr_warmup_steps=1, log_every_steps=1)


def _same_checkpoints(a: Path, b: Path, weights: str) -> None:
    ca, cb = latest_checkpoint(a), latest_checkpoint(b)
    assert ca.name == cb.name == "step-000004"
    for name in ("online.safetensors", f"model/{weights}"):
        wa, wb = load_file(str(ca / name)), load_file(str(cb / name))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name


def _stop_and_resume(train, config, tmp_path: Path) -> tuple[Path, Path]:
    train(config, out=tmp_path / "a")
    train(config.model_copy(update={"max_steps": 2}), out=tmp_path / "b")
    torch.manual_seed(123)  # a different global RNG state must not matter after resume
    train(config, out=tmp_path / "b", resume=True)
    return tmp_path / "a", tmp_path / "b"


@pytest.fixture
def ae_config(dataset32) -> AETrainConfig:
    return AETrainConfig(
        dataset=str(dataset32), autoencoder=AutoencoderConfig(image_size_px=32, **AE_PRESETS["tiny"]), **LOOP
    )


def _latent_config(ae_config: AETrainConfig, tmp_path: Path, **overrides) -> LatentTrainConfig:
    """A tiny latent run config on a freshly trained 1-step autoencoder."""
    train_autoencoder(ae_config.model_copy(update={"max_steps": 1}), out=tmp_path / "ae")
    fields = dict(dataset=ae_config.dataset, autoencoder=str(tmp_path / "ae"), preset="tiny", grid_per_class=1)
    return LatentTrainConfig(**{**fields, "grid_sampler_steps": 2, **LOOP, **overrides})


def test_autoencoder_resume_equals_uninterrupted(ae_config, tmp_path):
    a, b = _stop_and_resume(train_autoencoder, ae_config, tmp_path)
    _same_checkpoints(a, b, "model.safetensors")
    assert json.loads((b / "config.json").read_text())["kl_weight"] == ae_config.kl_weight


def test_latent_resume_equals_uninterrupted_and_old_runs_are_named(ae_config, dataset32, tmp_path):
    config = _latent_config(ae_config, tmp_path)
    a, b = _stop_and_resume(train_latent, config, tmp_path)
    _same_checkpoints(a, b, "model.safetensors")
    assert (b / "grids" / "step-000004.png").is_file()
    with pytest.raises(ValueError, match="seed 0 .now 5"):
        train_latent(config.model_copy(update={"seed": 5}), out=b, resume=True)
    # A run folder of the older latent loop: a clear error naming what to do.
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text(json.dumps({"format": "synthmed-latent-run-v1"}))
    with pytest.raises(ValueError, match="older synthmed.*new --out"):
        train_latent(config, out=old, resume=True)


def test_latent_flow_matching_trains_and_samples_with_the_flow_sampler(ae_config, dataset32, tmp_path):
    from synthmed.data.manifest import load_image_set
    from synthmed.latent.sample import sample_latent

    config = _latent_config(ae_config, tmp_path, metadata_fields=[], objective="flow_matching", max_steps=2)
    run = train_latent(config, out=tmp_path / "run")
    assert json.loads((run / "model" / "config.json").read_text())["model"]["prediction_type"] == "flow_prediction"
    sample_latent(run, out=tmp_path / "set", n_per_class=1, steps=2)
    assert load_image_set(tmp_path / "set")["sampler"].eq("flow_euler").all()
    with pytest.raises(ValueError, match="trained with flow matching"):
        sample_latent(run, out=tmp_path / "set2", n_per_class=1, steps=2, sampler="ddim")


def test_cli_resume_keeps_a_flow_run_objective_and_flow_refuses_min_snr(ae_config, tmp_path, capsys):
    """`latent train --resume` without --objective continues a flow-matching run (the latent default is diffusion)."""
    from synthmed.cli import main

    train_autoencoder(ae_config.model_copy(update={"max_steps": 1}), out=tmp_path / "ae")
    base = ["latent", "train", ae_config.dataset, "--autoencoder", str(tmp_path / "ae"), "--preset", "tiny"]
    base += ["--batch-size", "2", "--out", str(tmp_path / "run")]
    assert main([*base, "--max-steps", "1", "--objective", "flow_matching", "--snr-gamma", "3"]) == 2
    assert "drop it with --objective flow_matching" in capsys.readouterr().err
    assert main([*base, "--max-steps", "1", "--objective", "flow_matching"]) == 0
    assert main([*base, "--max-steps", "2", "--resume"]) == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["objective"] == "flow_matching" and stored["max_steps"] == 2
    assert latest_checkpoint(tmp_path / "run").name == "step-000002"
