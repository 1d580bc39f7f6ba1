"""Flow matching as a training objective: times, the loss, learning on tiny data, the loop and the CLI flag."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from synthmed.cli import main
from synthmed.models.config import preset_config
from synthmed.models.objective import diffusion_loss, flow_matching_loss, flow_times
from synthmed.models.unet import build_scheduler, build_unet, load_model_folder
from synthmed.sample.generate import SampleConfig, sample_images
from synthmed.train.config import TrainConfig, train_config_for_dataset
from synthmed.train.loop import train


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Training in this process sets accelerate's process-wide state (precision); later tests need it unset."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)


def _flow_config(**kw):
    return preset_config("tiny", image_size_px=8, in_channels=1, num_classes=2, prediction_type="flow_prediction", **kw)


def test_flow_times_lie_in_the_open_unit_interval():
    logit_normal = flow_times(4000, generator=torch.Generator().manual_seed(0))
    uniform = flow_times(4000, generator=torch.Generator().manual_seed(0), sampling="uniform")
    for t in (logit_normal, uniform):
        assert t.shape == (4000,) and t.min() > 0 and t.max() < 1
    # logit-normal(0, 1) concentrates on the middle: fewer draws in the outer fifths than uniform has.
    outer = lambda t: ((t < 0.2) | (t > 0.8)).float().mean()  # noqa: E731
    assert outer(logit_normal) < 0.25 < outer(uniform)
    assert abs(float(logit_normal.median()) - 0.5) < 0.05


def _predict(unet):
    """The (x, t, condition) prediction the objectives take, for a class-conditional UNet."""
    return lambda x, t, labels: unet(x, t, class_labels=labels).sample


def test_diffusion_loss_of_a_flow_model_is_the_flow_matching_loss():
    config = _flow_config()
    unet = build_unet(config)
    clean = torch.rand((4, 1, 8, 8), generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0])
    via_dispatch = diffusion_loss(
        _predict(unet),
        build_scheduler(config),
        clean,
        labels,
        generator=torch.Generator().manual_seed(3),
        snr_gamma=5.0,
    )
    direct = flow_matching_loss(
        _predict(unet), clean, labels, generator=torch.Generator().manual_seed(3), num_train_timesteps=1000
    )
    assert torch.equal(via_dispatch, direct)
    v_config = config.model_copy(update={"prediction_type": "v_prediction"})
    v_loss = diffusion_loss(
        _predict(unet),
        build_scheduler(v_config),
        clean,
        labels,
        generator=torch.Generator().manual_seed(3),
        snr_gamma=5.0,
    )
    assert not torch.equal(v_loss, direct)


def test_flow_matching_loss_decreases_on_a_tiny_dataset():
    data_gen = torch.Generator().manual_seed(0)
    clean = (torch.rand((16, 1, 1, 1), generator=data_gen) * 1.6 - 0.8).expand(16, 1, 8, 8).contiguous()
    labels = torch.arange(16) % 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_unet(_flow_config())

    def held_out_loss() -> float:  # the same noise and times each time
        with torch.no_grad():
            return float(
                flow_matching_loss(
                    _predict(unet), clean, labels, generator=torch.Generator().manual_seed(99), num_train_timesteps=1000
                )
            )

    before = held_out_loss()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(40):
        loss = flow_matching_loss(_predict(unet), clean, labels, generator=generator, num_train_timesteps=1000)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert held_out_loss() < 0.7 * before


FAST = dict(batch_size=4, grid_per_class=1, grid_sampler_steps=2, mixed_precision="no", lr_warmup_steps=1)


def test_train_a_flow_model_then_sample_it(tiny_dataset, tmp_path):
    config = train_config_for_dataset(
        tiny_dataset, preset="tiny", model_overrides={"prediction_type": "flow_prediction"}, max_steps=2, **FAST
    )
    model_dir = train(config, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "grids" / "step-000002.png").is_file()  # the grid used the flow sampler
    _, stored, _ = load_model_folder(model_dir)
    assert stored.prediction_type == "flow_prediction"
    out = sample_images(
        SampleConfig(model_dir=str(model_dir), out_dir=str(tmp_path / "s"), n_per_class=2, sampler="flow_heun", steps=2)
    )
    assert len(pd.read_csv(out / "manifest.csv")) == 4
    default = sample_images(SampleConfig(model_dir=str(model_dir), out_dir=str(tmp_path / "e"), n_per_class=1, steps=2))
    assert set(pd.read_csv(default / "manifest.csv")["sampler"]) == {"flow_euler"}  # no sampler: the model's own
    with pytest.raises(ValueError, match="trained with flow matching"):
        sample_images(
            SampleConfig(model_dir=str(model_dir), out_dir=str(tmp_path / "d"), n_per_class=1, sampler="dpmpp")
        )


def test_the_objective_sets_prediction_type_and_min_snr_and_explicit_settings_win(tiny_dataset):
    build = lambda **kw: train_config_for_dataset(tiny_dataset, preset="tiny", max_steps=1, **kw)  # noqa: E731
    default, diffusion, flow = build(), build(objective="diffusion"), build(objective="flow_matching")
    assert (default.model.prediction_type, default.snr_gamma) == ("flow_prediction", None)  # DEFAULT_OBJECTIVE
    assert flow.model_dump() == default.model_dump()
    assert (diffusion.model.prediction_type, diffusion.snr_gamma) == ("v_prediction", 5.0)
    chosen = build(objective="diffusion", snr_gamma=2.0, model_overrides={"prediction_type": "epsilon"})
    assert (chosen.model.prediction_type, chosen.snr_gamma) == ("epsilon", 2.0)
    # A diffusion prediction type or a min-SNR gamma without an objective means diffusion (both are diffusion's).
    implied = build(model_overrides={"prediction_type": "epsilon"})
    assert (implied.model.prediction_type, implied.snr_gamma) == ("epsilon", 5.0)
    assert (build(snr_gamma=3.0).model.prediction_type, build(snr_gamma=3.0).snr_gamma) == ("v_prediction", 3.0)


def _train_argv(dataset, out, *extra):
    tiny = "--preset tiny --batch-size 2 --mixed-precision no --max-steps 1".split()
    return ["train", str(dataset), "--out", str(out), *tiny, *extra]


def test_objective_flag(tiny_dataset, tmp_path, capsys, caplog):
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="synthmed.train"):
        assert main(_train_argv(tiny_dataset, run)) == 0  # no flag: the default, flow matching, said in the log
    assert "objective flow_matching: the default" in caplog.text
    assert "objective flow matching (prediction type flow_prediction)" in (run / "log.txt").read_text()
    stored = TrainConfig.load(run / "config.json")
    assert stored.model.prediction_type == "flow_prediction" and stored.snr_gamma is None
    assert main(_train_argv(tiny_dataset, run, "--resume", "--prediction-type", "epsilon")) == 2
    assert "cannot resume" in capsys.readouterr().err
    bad = tmp_path / "bad"
    assert main(_train_argv(tiny_dataset, bad, "--objective", "flow_matching", "--prediction-type", "epsilon")) == 2
    assert "drop --prediction-type" in capsys.readouterr().err
    assert main(_train_argv(tiny_dataset, bad, "--objective", "flow_matching", "--snr-gamma", "5")) == 2
    assert "--snr-gamma" in capsys.readouterr().err
    assert main(_train_argv(tiny_dataset, tmp_path / "v", "--objective", "diffusion")) == 0
    assert TrainConfig.load(tmp_path / "v" / "config.json").model.prediction_type == "v_prediction"
    # A diffusion-only flag without --objective means diffusion.
    for flag, value, expected in (
        ("--prediction-type", "epsilon", ("epsilon", 5.0)),
        ("--snr-gamma", "3", ("v_prediction", 3.0)),
    ):
        out = tmp_path / flag.strip("-")
        assert main(_train_argv(tiny_dataset, out, flag, value)) == 0
        implied = TrainConfig.load(out / "config.json")
        assert f"objective diffusion: {flag} is diffusion's setting" in caplog.text
        assert (implied.model.prediction_type, implied.snr_gamma) == expected


def test_resume_keeps_the_run_objective_when_none_is_given(tiny_dataset, tmp_path):
    """A diffusion run (e.g. started before flow matching became the default) resumes as diffusion, min-SNR kept."""
    run = tmp_path / "run"
    assert main(_train_argv(tiny_dataset, run, "--objective", "diffusion")) == 0
    argv = _train_argv(tiny_dataset, run, "--resume")
    argv[argv.index("--max-steps") + 1] = "2"
    assert main(argv) == 0
    resumed = TrainConfig.load(run / "config.json")
    assert (resumed.model.prediction_type, resumed.snr_gamma, resumed.max_steps) == ("v_prediction", 5.0, 2)
    # Naming the run's own objective agrees with an epsilon run too; another objective is refused.
    eps = tmp_path / "eps"
    assert main(_train_argv(tiny_dataset, eps, "--prediction-type", "epsilon")) == 0
    again = _train_argv(tiny_dataset, eps, "--resume", "--objective", "diffusion")
    again[again.index("--max-steps") + 1] = "2"
    assert main(again) == 0 and TrainConfig.load(eps / "config.json").model.prediction_type == "epsilon"
    assert main(_train_argv(tiny_dataset, eps, "--resume", "--objective", "flow_matching")) == 2
