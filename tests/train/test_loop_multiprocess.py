"""Training as 2 processes (accelerate launch, gloo on CPU) equals 1 process at the same global batch; its
checkpoints resume on 1 process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from launch_helpers import launch
from synthmed.cli import main
from synthmed.models.config import preset_config
from synthmed.models.objective import diffusion_loss, draw_noise
from synthmed.models.unet import build_scheduler, build_unet, model_weights_path
from synthmed.train.config import TrainConfig
from synthmed.train.loop import train

PER_PROCESS_BATCH = 4
STEPS = 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prepared_dataset_factory) -> Iterator[dict[str, Path]]:
    """The same tiny training as 2 processes x 4 images (the CLI under accelerate launch) and as 1 process x 8."""
    root = tmp_path_factory.mktemp("multiprocess")
    data = prepared_dataset_factory(root / "data", per_class={"train": 10, "val": 2, "test": 2})
    two = root / "two"
    launch(
        ["-m", "synthmed.cli", "train", str(data), "--out", str(two), "--preset", "tiny"]
        + ["--max-steps", str(STEPS), "--batch-size", str(PER_PROCESS_BATCH), "--checkpoint-every-steps", "2"]
        + ["--mixed-precision", "no", "--hflip", "--lr", "0.05", "--sample-every-steps", "0"]
    )
    config = TrainConfig.load(two / "config.json").model_copy(update={"batch_size": 2 * PER_PROCESS_BATCH})
    one = root / "one"
    train(config, run_dir=one)
    yield {"two": two, "one": one, "root": root, "data": data}
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # training set accelerate's process-wide state; later tests need it unset


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{step:06d}" / "online.safetensors"))


def _predict(run: Path, weights: dict[str, torch.Tensor] | None) -> torch.Tensor:
    """The UNet's output on fixed noisy inputs (every class, early to late timesteps); None = initial weights.

    The function, not the raw weights, is compared: parameters the loss cannot see (a bias before a
    GroupNorm, an attention key bias) get updates from float noise alone, which Adam's normalisation
    turns into steps of the learning rate's size whatever the process count.
    """
    config = TrainConfig.load(run / "config.json")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the loop initialises its UNet from config.seed
        unet = build_unet(config.model).eval()
    if weights is not None:
        unet.load_state_dict(weights)
    generator = torch.Generator().manual_seed(1)
    size = config.model.image_size_px
    noisy = torch.randn(6, config.model.in_channels, size, size, generator=generator)
    timesteps = torch.tensor([5, 100, 300, 500, 700, 950])
    labels = torch.arange(6) % (config.model.num_classes + 1)  # the null class too
    with torch.no_grad():
        return unet(noisy, timesteps, class_labels=labels).sample


def _assert_same_model(run: Path, left: dict, right: dict, *, moved_from: dict | None) -> None:
    """Equal outputs within float tolerance, the difference tiny next to how far training moved them."""
    ours, reference, before = _predict(run, left), _predict(run, right), _predict(run, moved_from)
    differ, moved = float((ours - reference).abs().max()), float((reference - before).abs().max())
    assert moved > 0.05, "training barely changed the model: the comparison would prove nothing"
    assert differ < 1e-4 * moved, f"outputs differ by {differ:.3g} (training moved them by {moved:.3g})"


def test_two_processes_train_as_one_at_the_same_global_batch(runs):
    two, one = runs["two"], runs["one"]
    for step in (2, STEPS):
        _assert_same_model(one, _weights(two, step), _weights(one, step), moved_from=None)
    ema_two = load_file(str(model_weights_path(two / "model")))  # the published EMA weights
    ema_one = load_file(str(model_weights_path(one / "model")))
    _assert_same_model(one, ema_two, ema_one, moved_from=None)
    assert len(list((two / "grids").glob("*.png"))) == 1  # written once, by the main process


def test_a_checkpoint_of_two_processes_resumes_on_one(runs, capsys):
    resumed = shutil.copytree(runs["two"], runs["root"] / "resumed")
    shutil.rmtree(resumed / "checkpoints" / f"step-{STEPS:06d}")
    (resumed / "checkpoints" / "latest").write_text("step-000002\n")
    # From the command line: the stored per-process batch (4) on 1 process is refused, naming the global batch.
    argv = ["train", str(runs["data"]), "--out", str(resumed), "--resume", "--max-steps", str(STEPS)]
    assert main(argv) == 2
    assert f"resume with --batch-size {2 * PER_PROCESS_BATCH} (per process)" in capsys.readouterr().err
    assert main([*argv, "--batch-size", str(2 * PER_PROCESS_BATCH)]) == 0
    at_step_2 = _weights(resumed, 2)  # steps 3 and 4 ran on 1 process
    _assert_same_model(resumed, _weights(resumed, STEPS), _weights(runs["one"], STEPS), moved_from=at_step_2)
    events = [json.loads(line).get("event") for line in (resumed / "stats.jsonl").read_text().splitlines()]
    assert events.count("resume") == 1


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon", "flow_prediction"])
def test_the_processes_losses_on_their_rows_of_one_draw_average_to_the_global_loss(prediction_type):
    config = preset_config("tiny", image_size_px=8, in_channels=1, num_classes=2, prediction_type=prediction_type)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_unet(config)
    scheduler = build_scheduler(config)
    clean = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    noise, times = draw_noise(clean.shape, scheduler=scheduler, generator=torch.Generator().manual_seed(2))
    predict = lambda x, t, c: unet(x, t, class_labels=c).sample  # noqa: E731
    one = diffusion_loss(predict, scheduler, clean, labels, generator=torch.Generator().manual_seed(2), snr_gamma=5.0)
    shares = [
        diffusion_loss(
            predict, scheduler, clean[p::2], labels[p::2], noise=noise[p::2], timesteps=times[p::2], snr_gamma=5.0
        )
        for p in range(2)
    ]
    # One process drawing from the generator itself draws exactly the global draw (so its runs are unchanged),
    # and two processes' losses on their rows average to it (DDP averages their gradients the same way).
    torch.testing.assert_close((shares[0] + shares[1]) / 2, one, rtol=1e-5, atol=1e-7)
    assert not torch.isclose(shares[0], shares[1])
