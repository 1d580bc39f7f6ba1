"""A tiny experiment file (phantom, tiny preset, 2 training steps) for the experiment tests."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = """
name = "tiny"
description = "a few-second end-to-end run"
data_root = "data"
seed = 0

[data]
source = "phantom"
phantom_n_per_class = 6

[data.prepare]
size_px = 16

[train]
preset = "tiny"
max_steps = 2
batch_size = 8
checkpoint_every_steps = 1
log_every_steps = 1

[sample]
n_per_class = 3
steps = 2
grid_per_class = 2

[evaluate]
skip = ["fidelity", "memorisation", "condition_fidelity", "explanations"]
tstr_seeds = [0]
tstr_epochs = 1
bootstrap_samples = 10
tstr_overrides = { min_steps = 2, batch_size = 8, small_cnn_width = 8 }

[profile.cpu.train]
max_steps = 3

[profile.gpu.train]
batch_size = 16
"""


@pytest.fixture
def tiny_experiment(tmp_path: Path) -> Path:
    """experiments/tiny.toml in a fresh folder (its data_root is ./data, which need not exist for the phantom)."""
    path = tmp_path / "experiments" / "tiny.toml"
    path.parent.mkdir()
    path.write_text(TINY)
    return path


TINY_LATENT = """
extends = "tiny.toml"
name = "tiny_latent"

[train]
family = "latent"
grid_sampler_steps = 2

[train.autoencoder]
preset = "tiny"
latent_channels = 2
max_steps = 2
batch_size = 8
checkpoint_every_steps = 1
log_every_steps = 1

[sample]
grid_per_class = 0
"""


@pytest.fixture
def tiny_latent_experiment(tiny_experiment: Path) -> Path:
    """experiments/tiny_latent.toml: the tiny experiment's latent route (tiny autoencoder + tiny latent UNet)."""
    path = tiny_experiment.parent / "tiny_latent.toml"
    path.write_text(TINY_LATENT)
    return path
