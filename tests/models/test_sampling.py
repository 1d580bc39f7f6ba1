"""Samplers and the CFG loop: one seed per image gives bit-identical images across batch sizes."""

from __future__ import annotations

import pytest
import torch

from synthmed.models.config import preset_config
from synthmed.models.pixel import PixelDiffusion
from synthmed.models.sampling import SAMPLERS, denoise, make_scheduler, sampler_name
from synthmed.models.unet import build_scheduler, build_unet


@pytest.fixture(scope="module")
def tiny():
    config = preset_config("tiny", image_size_px=8, in_channels=1, num_classes=2)
    unet = build_unet(config).eval()
    with torch.no_grad():  # non-trivial weights so outputs depend on the input
        for p in unet.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return PixelDiffusion(config, unet=unet)


def _run(tiny, sampler, seeds, labels, *, guidance=2.0, steps=4):
    return denoise(
        tiny,
        make_scheduler(sampler, tiny.scheduler),
        condition=tiny.class_condition(torch.tensor(labels)),
        generators=[torch.Generator().manual_seed(s) for s in seeds],
        steps=steps,
        guidance_scale=guidance,
        stochastic=SAMPLERS[sampler].stochastic,
        model_batch_size=4,
    )


@pytest.mark.parametrize("sampler", sorted(name for name, spec in SAMPLERS.items() if not spec.flow))
def test_image_k_is_identical_whatever_the_batch_size(tiny, sampler):
    seeds, labels = [11, 12, 13, 14, 15, 16], [0, 1, 0, 1, 1, 0]
    whole = _run(tiny, sampler, seeds, labels)
    for batch in (1, 3, 4):
        parts = torch.cat(
            [_run(tiny, sampler, seeds[i : i + batch], labels[i : i + batch]) for i in range(0, len(seeds), batch)]
        )
        assert torch.equal(parts, whole), f"{sampler}: batch {batch} differs"
    assert not torch.equal(whole[0], whole[2])  # different seeds, different images
    assert whole.min() >= -1 and whole.max() <= 1


def test_guidance_and_labels_change_the_image(tiny):
    base = _run(tiny, "dpmpp", [1], [0], guidance=1.0)
    assert not torch.equal(base, _run(tiny, "dpmpp", [1], [0], guidance=3.0))
    assert not torch.equal(base, _run(tiny, "dpmpp", [1], [1], guidance=1.0))
    assert torch.equal(base, _run(tiny, "dpmpp", [1], [0], guidance=1.0))


def test_sampler_names_and_the_dpmpp_alias():
    assert sampler_name("dpm++") == "dpmpp" and sampler_name("unipc") == "unipc"
    with pytest.raises(ValueError, match="choose one of"):
        make_scheduler("euler", build_scheduler(preset_config("tiny", image_size_px=8, in_channels=1, num_classes=2)))
