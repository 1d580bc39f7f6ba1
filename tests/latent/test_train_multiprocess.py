"""Latent training as 2 processes (accelerate launch, gloo on CPU) equals 1 process at the same global batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from launch_helpers import launch
from synthmed.data.manifest import read_manifest, write_manifest
from synthmed.latent.autoencoder import AE_PRESETS, AETrainConfig, AutoencoderConfig, train_autoencoder
from synthmed.latent.diffusion import LatentDiffusion
from synthmed.latent.model import LatentDenoiser
from synthmed.latent.train import LatentTrainConfig, train_latent
from synthmed.models.interface import load_trainable_state, seeded
from synthmed.train.checkpoint import ONLINE_NAME

PER_PROCESS_BATCH = 2
STEPS = 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prepared_dataset_factory) -> Iterator[dict[str, Path]]:
    """A tiny latent run (class + age + sex) as 2 processes x 2 latents (the CLI under accelerate launch) and as
    1 process x 4, on the same 1-step autoencoder."""
    root = tmp_path_factory.mktemp("latent_multiprocess")
    data = prepared_dataset_factory(root / "data", size_px=32, per_class={"train": 6, "test": 1})
    frame = read_manifest(data)
    frame["sex"] = np.where(frame.index % 2 == 0, "F", "M")
    frame["age_years"] = 20.0 + 3 * frame.index
    write_manifest(frame, data)
    autoencoder = AutoencoderConfig(image_size_px=32, **AE_PRESETS["tiny"])
    ae_config = AETrainConfig(dataset=str(data), autoencoder=autoencoder, batch_size=2, max_steps=1)
    train_autoencoder(ae_config, out=root / "ae")
    two = root / "two"
    launch(
        ["-m", "synthmed.cli", "latent", "train", str(data), "--autoencoder", str(root / "ae"), "--out", str(two)]
        + ["--preset", "tiny", "--metadata", "age_years,sex", "--max-steps", str(STEPS), "--learning-rate", "0.02"]
        + ["--batch-size", str(PER_PROCESS_BATCH), "--checkpoint-every", "2", "--mixed-precision", "no"],
        timeout_s=120,
    )
    config = LatentTrainConfig.load(two / "config.json")
    one = root / "one"
    train_latent(config.model_copy(update={"batch_size": 2 * PER_PROCESS_BATCH}), out=one)
    yield {"two": two, "one": one}
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # training set accelerate's process-wide state; later tests need it unset


def _predict(run: Path, online: dict[str, torch.Tensor] | str | None = None) -> torch.Tensor:
    """The denoiser's output on fixed noisy latents (both classes and a null row, early to late timesteps, with
    age and sex): with the run's published (EMA) weights, a checkpoint's `online` weights, or "initial" ones."""
    model, _ = LatentDiffusion.load(run)
    if online == "initial":
        with seeded(LatentTrainConfig.load(run / "config.json").seed):  # the loop initialises from config.seed
            model.network.load_state_dict(LatentDenoiser(model.config).state_dict())
    elif isinstance(online, dict):
        load_trainable_state(model.network, online, fix="the test's runs differ")
    model.network.eval()
    generator = torch.Generator().manual_seed(1)
    noisy = torch.randn(6, *model.sample_shape, generator=generator)
    condition = model.class_condition(torch.arange(6) % model.config.num_classes)
    condition["age"] = torch.randn(6, 2, generator=generator)
    condition["sex"] = torch.arange(6) % 2
    condition["drop"] = torch.arange(6) == 5
    with torch.no_grad():
        return model.predict(noisy, torch.tensor([5, 100, 300, 500, 700, 950]), condition)


def _assert_same_function(ours: torch.Tensor, reference: torch.Tensor, before: torch.Tensor, what: str) -> None:
    """Equal outputs within float tolerance, the difference tiny next to how far training moved them.

    The bound is 1e-3 of the move, not the pixel test's 1e-4: biases ahead of a GroupNorm with two channels per
    group are nearly invisible to the loss, and Adam turns the float noise of their gradients (summed in another
    order over 2 processes) into lr-sized steps (measured: 0.3e-3 of the move at step 4). Rows drawn from
    another noise stream or another data slice change the outputs by a large part of the move.
    """
    differ, moved = float((ours - reference).abs().max()), float((reference - before).abs().max())
    assert moved > 0.05, "training barely changed the model: the comparison would prove nothing"
    assert differ < 1e-3 * moved, f"{what}: outputs differ by {differ:.3g} (training moved them {moved:.3g})"


def test_two_latent_processes_train_as_one_at_the_same_global_batch(runs):
    two, one = runs["two"], runs["one"]
    before = _predict(one, "initial")
    for step in (2, STEPS):
        name = Path("checkpoints") / f"step-{step:06d}" / ONLINE_NAME
        ours, reference = _predict(one, load_file(str(two / name))), _predict(one, load_file(str(one / name)))
        _assert_same_function(ours, reference, before, f"step {step}")
    # The published EMA model folders agree too; the grid was sampled once, by the main process.
    _assert_same_function(_predict(two), _predict(one), before, "EMA model")
    assert len(list((two / "grids").glob("*.png"))) == 1
