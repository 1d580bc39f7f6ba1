"""Latent diffusion end to end at 32 px with tiny configs: autoencoder -> latent UNet -> sampled synthetic set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthmed.cli import main
from synthmed.data.arrays import load_image_arrays
from synthmed.data.manifest import SYNTHETIC_COLUMNS, load_image_set
from synthmed.files import sha256_file
from synthmed.latent.autoencoder import (
    AE_PRESETS,
    AETrainConfig,
    AutoencoderConfig,
    build_autoencoder,
    load_autoencoder,
    train_autoencoder,
)
from synthmed.train.checkpoint import latest_checkpoint
from synthmed.train.run_files import read_stats


def test_cli_autoencoder_train_sample_resume(dataset32, tmp_path, capsys):
    ae, run, out = tmp_path / "ae", tmp_path / "run", tmp_path / "set"
    assert (
        main(
            [
                "latent",
                "train-autoencoder",
                str(dataset32),
                "--out",
                str(ae),
                "--preset",
                "tiny",
                "--max-steps",
                "3",
                "--batch-size",
                "4",
                "--checkpoint-every",
                "3",
            ]
        )
        == 0
    )
    assert "4x16x16 latents" in capsys.readouterr().out
    vae, config = load_autoencoder(ae)
    assert (
        config.scaling_factor != 1.0
        and config.channels == 1
        and [s["step"] for s in read_stats(ae) if "loss" in s] == [3]
    )

    common = [
        "latent",
        "train",
        str(dataset32),
        "--autoencoder",
        str(ae),
        "--out",
        str(run),
        "--preset",
        "tiny",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "2",
    ]
    assert main(common + ["--max-steps", "2"]) == 0
    assert json.loads((run / "model" / "config.json").read_text())["step"] == 2
    model_config = json.loads((run / "model" / "config.json").read_text())["model"]
    assert model_config["metadata"]["sex_values"] == ["F", "M"] and model_config["metadata"]["age"]
    assert main(common + ["--max-steps", "4"]) == 2 and "--resume" in capsys.readouterr().err
    assert main(common + ["--max-steps", "4", "--resume"]) == 0
    assert latest_checkpoint(run).name == "step-000004"
    assert json.loads((run / "model" / "config.json").read_text())["step"] == 4
    assert [s["step"] for s in read_stats(run) if "loss" in s] == [2, 4]

    assert (
        main(
            [
                "latent",
                "sample",
                str(run),
                "--out",
                str(out),
                "--n-per-class",
                "2",
                "--steps",
                "2",
                "--sex",
                "F",
                "--batch-size",
                "3",
            ]
        )
        == 0
    )
    frame = load_image_set(out)
    assert list(frame.columns[: len(SYNTHETIC_COLUMNS)]) == list(SYNTHETIC_COLUMNS)
    assert frame["label"].tolist() == ["left", "left", "right", "right"] and frame["seed"].tolist() == [
        0,
        1,
        0,
        1,
    ]  # image k of each class: seed k
    assert frame["sex"].eq("F").all() and frame["age_years"].between(20, 80).all()
    assert frame["sampler"].eq("ddim").all() and frame["synthetic"].eq(1).all()
    arrays = load_image_arrays(out, classes=["left", "right"])  # evaluation reads it like any set
    assert arrays.pixels.shape == (4, 1, 32, 32)


def test_sampling_is_seeded_per_image(dataset32, tmp_path):
    ae, run = tmp_path / "ae", tmp_path / "run"
    assert (
        main(
            [
                "latent",
                "train-autoencoder",
                str(dataset32),
                "--out",
                str(ae),
                "--preset",
                "tiny",
                "--max-steps",
                "1",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "latent",
                "train",
                str(dataset32),
                "--autoencoder",
                str(ae),
                "--out",
                str(run),
                "--preset",
                "tiny",
                "--max-steps",
                "1",
                "--batch-size",
                "2",
                "--metadata",
                "",
                "--mixed-precision",
                "bf16",
            ]
        )
        == 0
    )
    assert json.loads((run / "model" / "config.json").read_text())["model"]["metadata"]["sex_values"] == []
    sets = []
    for name, batch in (("a", "1"), ("b", "4")):
        assert (
            main(
                [
                    "latent",
                    "sample",
                    str(run),
                    "--out",
                    str(tmp_path / name),
                    "--n-per-class",
                    "2",
                    "--steps",
                    "2",
                    "--batch-size",
                    batch,
                    "--classes",
                    "right",
                ]
            )
            == 0
        )
        sets.append(load_image_arrays(tmp_path / name, classes=["left", "right"]).pixels.astype(int))
    assert np.array_equal(sets[0], sets[1])  # batch-size invariant
    assert main(["latent", "sample", str(run), "--out", str(tmp_path / "a"), "--n-per-class", "1"]) == 2  # kept
    drawn = load_image_set(tmp_path / "a")
    assert len(drawn) == 2
    assert set(drawn["checkpoint"]) == {"run/model"}  # a relative name, never the operator's path
    assert set(drawn["checkpoint_sha256"]) == {sha256_file(run / "model" / "model.safetensors")}
    assert (
        main(["latent", "sample", str(run), "--out", str(tmp_path / "c"), "--n-per-class", "1", "--classes", "middle"])
        == 2
    )


def test_autoencoder_learns_and_bad_inputs_are_clear(dataset32, tmp_path):
    config = AutoencoderConfig(image_size_px=32, **AE_PRESETS["tiny"])
    train = AETrainConfig(
        dataset=str(dataset32),
        autoencoder=config,
        max_steps=30,
        batch_size=8,
        lr=3e-3,
        lr_warmup_steps=1,
        checkpoint_every_steps=30,
        log_every_steps=5,
    )
    train_autoencoder(train, out=tmp_path / "ae")
    l1 = [s["l1"] for s in read_stats(tmp_path / "ae") if "l1" in s]
    assert l1[-1] < 0.7 * l1[0]
    assert (tmp_path / "ae" / "grids" / "step-000030.png").is_file()  # originals over reconstructions
    with pytest.raises(FileExistsError, match="--resume"):
        train_autoencoder(train, out=tmp_path / "ae")
    with pytest.raises(FileNotFoundError, match="train-autoencoder"):
        load_autoencoder(tmp_path / "nothing")
    with pytest.raises(ValueError, match="divisible"):
        AutoencoderConfig(image_size_px=30, **AE_PRESETS["f8"])
    # A plain diffusers AutoencoderKL folder (e.g. an SD vae/) loads too.
    torch.manual_seed(0)
    build_autoencoder(config).save_pretrained(tmp_path / "diffusers_vae")
    vae, loaded = load_autoencoder(tmp_path / "diffusers_vae", image_size_px=32)
    assert loaded.latent_size == 16 and loaded.channels == 1


def test_text_conditioned_latent_run(dataset32, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tiny_sd", Path(__file__).parents[1] / "textgen" / "tiny_sd.py")
    tiny_sd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_sd)
    sd = tiny_sd.make_tiny_sd(tmp_path / "sd")
    ae, run = tmp_path / "ae", tmp_path / "run"
    assert (
        main(
            [
                "latent",
                "train-autoencoder",
                str(dataset32),
                "--out",
                str(ae),
                "--preset",
                "tiny",
                "--max-steps",
                "1",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "latent",
                "train",
                str(dataset32),
                "--autoencoder",
                str(ae),
                "--out",
                str(run),
                "--preset",
                "tiny",
                "--max-steps",
                "2",
                "--batch-size",
                "2",
                "--text-encoder",
                str(sd),
                "--caption-template",
                "{label} blob, {sex}",
            ]
        )
        == 0
    )
    config = json.loads((run / "model" / "config.json").read_text())["model"]
    assert config["cross_attention_dim"] == 16 and (run / "text" / "tokenizer").is_dir()
    assert main(["latent", "sample", str(run), "--out", str(tmp_path / "a"), "--n-per-class", "1", "--steps", "2"]) == 0
    drawn = load_image_set(tmp_path / "a")
    assert drawn["prompt"].tolist()[0].startswith("left blob, ") and drawn["prompt"].tolist()[1].startswith(
        "right blob"
    )
    assert (
        main(
            [
                "latent",
                "sample",
                str(run),
                "--out",
                str(tmp_path / "b"),
                "--n-per-class",
                "1",
                "--steps",
                "2",
                "--prompt",
                "right blob, F",
            ]
        )
        == 0
    )
    fixed = load_image_set(tmp_path / "b")
    assert fixed["prompt"].eq("right blob, F").all()
    a = load_image_arrays(tmp_path / "a", classes=["left", "right"]).pixels.astype(int)
    b = load_image_arrays(tmp_path / "b", classes=["left", "right"]).pixels.astype(int)
    assert not np.array_equal(a[0], b[0])  # same seed, other caption: another image
