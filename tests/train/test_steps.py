"""The shared optimiser step and EMA weight swap."""

import pytest
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel

from synthmed.train.steps import ema_weights, optimizer_step


def _model_and_ema():
    model = torch.nn.Linear(4, 1)
    params = list(model.parameters())
    ema = EMAModel(params, decay=0.5, use_ema_warmup=False)
    return model, params, ema


def test_optimizer_step_clips_steps_zeroes_and_updates_ema():
    model, params, ema = _model_and_ema()
    optimizer = torch.optim.SGD(params, lr=1.0)
    accelerator = Accelerator(cpu=True)
    for step in (1, 2):
        before = [p.detach().clone() for p in params]
        shadow_before = [s.clone() for s in ema.shadow_params]
        loss = (model(torch.full((2, 4), 1000.0)) ** 2).mean()  # a huge gradient
        optimizer_step(accelerator, optimizer, params, loss, clip_norm=0.01, ema=ema)
        moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(params, before)))
        assert 0 < float(moved) <= 0.01 + 1e-6  # lr 1 x clipped norm 0.01
        assert all(p.grad is None for p in params)
        assert ema.optimization_step == step
    d = ema.cur_decay_value  # diffusers' decay at step 2, capped by the configured 0.5
    assert 0 < d <= 0.5
    for shadow, old, p in zip(ema.shadow_params, shadow_before, params):
        torch.testing.assert_close(shadow, d * old + (1 - d) * p.detach())


def test_ema_weights_swaps_in_and_restores_even_on_error():
    model, params, ema = _model_and_ema()
    online = [p.detach().clone() for p in params]
    with torch.no_grad():
        for s in ema.shadow_params:
            s.fill_(7.0)
    with pytest.raises(RuntimeError):
        with ema_weights(ema, model.parameters()):
            assert all(torch.all(p == 7.0) for p in params)
            raise RuntimeError("saving failed")
    for p, o in zip(params, online):
        torch.testing.assert_close(p.detach(), o)


def test_ema_weights_without_ema_leaves_weights_alone():
    model, params, _ = _model_and_ema()
    online = [p.detach().clone() for p in params]
    with ema_weights(None, params):
        for p, o in zip(params, online):
            torch.testing.assert_close(p.detach(), o)
