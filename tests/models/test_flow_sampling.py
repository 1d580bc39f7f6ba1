"""Flow-matching samplers: shape/range, per-image seeds across batches, exact ODE integration, wrong-model errors."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from synthmed.models.config import preset_config
from synthmed.models.pixel import PixelDiffusion
from synthmed.models.sampling import SAMPLERS, default_sampler, denoise, make_scheduler
from synthmed.models.unet import METADATA_NAME, build_scheduler, build_unet, load_model_folder, save_model_folder

FLOW_SAMPLERS = sorted(name for name, spec in SAMPLERS.items() if spec.flow)


def _perturbed_unet(config):
    unet = build_unet(config).eval()
    with torch.no_grad():  # non-trivial weights so outputs depend on the input
        for p in unet.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return unet


@pytest.fixture(scope="module")
def flow_model():
    config = preset_config("tiny", image_size_px=8, in_channels=1, num_classes=2, prediction_type="flow_prediction")
    return _perturbed_unet(config), config, build_scheduler(config)


def _run(model, sampler, seeds, labels, *, guidance=2.0, steps=3, unet=None):
    net, config, scheduler = model
    pixel = PixelDiffusion(config, unet=unet or net, scheduler=scheduler)
    return denoise(
        pixel,
        make_scheduler(sampler, scheduler),
        condition=pixel.class_condition(torch.tensor(labels)),
        generators=[torch.Generator().manual_seed(s) for s in seeds],
        steps=steps,
        guidance_scale=guidance,
        stochastic=SAMPLERS[sampler].stochastic,
        model_batch_size=4,
    )


@pytest.mark.parametrize("sampler", FLOW_SAMPLERS)
def test_flow_image_k_is_identical_whatever_the_batch_size(flow_model, sampler):
    seeds, labels = [11, 12, 13, 14, 15, 16], [0, 1, 0, 1, 1, 0]
    whole = _run(flow_model, sampler, seeds, labels)
    assert whole.shape == (6, 1, 8, 8) and whole.dtype == torch.float32
    assert whole.min() >= -1 and whole.max() <= 1
    for batch in (1, 3, 4):
        parts = torch.cat(
            [_run(flow_model, sampler, seeds[i : i + batch], labels[i : i + batch]) for i in range(0, 6, batch)]
        )
        assert torch.equal(parts, whole), f"{sampler}: batch {batch} differs"
    assert not torch.equal(whole[0], whole[2])  # different seeds, different images


def test_flow_guidance_and_labels_change_the_image(flow_model):
    base = _run(flow_model, "flow_euler", [1], [0], guidance=1.0)
    assert not torch.equal(base, _run(flow_model, "flow_euler", [1], [0], guidance=3.0))
    assert not torch.equal(base, _run(flow_model, "flow_euler", [1], [1], guidance=1.0))
    assert not torch.equal(base, _run(flow_model, "flow_heun", [1], [0], guidance=1.0))
    assert torch.equal(base, _run(flow_model, "flow_euler", [1], [0], guidance=1.0))


class ExactVelocity(torch.nn.Module):
    """The true flow velocity (x_t - c) / t of data that is the constant image c (UNet call signature)."""

    def __init__(self, value: float, num_train_timesteps: int):
        super().__init__()
        self.value, self.scale = value, num_train_timesteps

    def forward(self, x, t, class_labels=None):
        return SimpleNamespace(sample=(x - self.value) / (t / self.scale))


@pytest.mark.parametrize("sampler", FLOW_SAMPLERS)
@pytest.mark.parametrize("steps", [1, 4])
def test_flow_samplers_follow_the_straight_path_to_the_data(flow_model, sampler, steps):
    # Straight paths: with the exact velocity, Euler and Heun land on the data in any number of steps.
    # Checks the sign of the velocity, the time scale (t * num_train_timesteps) and the end point t = 0.
    oracle = ExactVelocity(0.3, flow_model[1].num_train_timesteps)
    images = _run(flow_model, sampler, [1, 2, 3], [0, 1, 0], guidance=1.0, steps=steps, unet=oracle)
    torch.testing.assert_close(images, torch.full_like(images, 0.3), atol=1e-4, rtol=0)


def test_sampler_and_model_objective_must_match(flow_model):
    _, flow_config, flow_schedule = flow_model
    diffusion_schedule = build_scheduler(flow_config.model_copy(update={"prediction_type": "v_prediction"}))
    with pytest.raises(ValueError, match=r"trained with flow matching; choose one of \['flow_euler', 'flow_heun'\]"):
        make_scheduler("dpmpp", flow_schedule)
    with pytest.raises(ValueError, match=r"trained with diffusion \(v_prediction\); choose one of .*'dpmpp'"):
        make_scheduler("flow_euler", diffusion_schedule)
    assert default_sampler(flow_schedule) == "flow_euler" and default_sampler(diffusion_schedule) == "dpmpp"


def test_save_load_keeps_the_objective_and_old_folders_load_as_v_prediction(flow_model, tmp_path):
    unet, config, _ = flow_model
    save_model_folder(tmp_path / "flow", unet=unet, config=config)
    loaded, loaded_config, schedule = load_model_folder(tmp_path / "flow")
    assert loaded_config.prediction_type == "flow_prediction"
    before = _run(flow_model, "flow_euler", [5, 6], [0, 1])
    assert torch.equal(before, _run((loaded, loaded_config, schedule), "flow_euler", [5, 6], [0, 1]))

    # A folder written before the objective existed: no prediction_type in either config file.
    old = tmp_path / "old"
    save_model_folder(old, unet=unet, config=config.model_copy(update={"prediction_type": "v_prediction"}))
    payload = json.loads((old / METADATA_NAME).read_text())
    del payload["model"]["prediction_type"]
    (old / METADATA_NAME).write_text(json.dumps(payload))
    schedule_path = old / "scheduler" / "scheduler_config.json"
    schedule_payload = json.loads(schedule_path.read_text())
    del schedule_payload["prediction_type"]
    schedule_path.write_text(json.dumps(schedule_payload))
    _, old_config, old_schedule = load_model_folder(old)
    assert old_config.prediction_type == "v_prediction" and default_sampler(old_schedule) == "dpmpp"
    with pytest.raises(ValueError, match="trained with diffusion"):
        make_scheduler("flow_euler", old_schedule)
