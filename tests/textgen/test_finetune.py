"""Fine-tuning tiny random Stable Diffusion components end to end: LoRA, full UNet, resume, use in `prompt`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from synthmed.cli import main
from synthmed.data.manifest import load_image_set, read_manifest, write_manifest
from synthmed.textgen.finetune import finetune
from synthmed.textgen.finetune_run import FinetuneConfig, read_run_info
from synthmed.textgen.local_sd import LocalSDProvider
from synthmed.train.checkpoint import latest_checkpoint
from synthmed.train.run_files import read_stats


def test_lora_finetune_resume_and_prompt_with_it(tiny_sd_session, tiny_sd, tiny_dataset, tmp_path, capsys):
    frame = read_manifest(tiny_dataset)
    frame["view"] = np.where(frame.index % 2 == 0, "PA", "AP")
    frame["age_years"] = 40 + frame.index % 7
    write_manifest(frame, tiny_dataset)
    run = tmp_path / "run"
    common = [
        "finetune",
        str(tiny_dataset),
        "--checkpoint",
        str(tiny_sd_session),
        "--out",
        str(run),
        "--lora-rank",
        "4",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "2",
        "--learning-rate",
        "0.01",
        "--caption-template",
        "{modality}, {label}, {view}, age {age_years}",
    ]
    assert main(common + ["--max-steps", "2"]) == 0
    first = load_file(run / "model" / "lora" / "pytorch_lora_weights.safetensors")
    assert first and all("lora" in k for k in first)
    assert read_run_info(run).steps_done == 2 and latest_checkpoint(run).name == "step-000002"
    # Continuing needs --resume; a changed setting is refused.
    assert main(common + ["--max-steps", "4"]) == 2 and "--resume" in capsys.readouterr().err
    assert main(common + ["--max-steps", "4", "--resume", "--lora-rank", "2"]) == 2
    assert "lora_rank" in capsys.readouterr().err
    other_base = [str(tiny_sd) if a == str(tiny_sd_session) else a for a in common]
    assert (
        main(other_base + ["--max-steps", "4", "--resume"]) == 2 and "another --checkpoint" in capsys.readouterr().err
    )
    assert main(common + ["--max-steps", "4", "--resume"]) == 0
    assert read_run_info(run).steps_done == 4 and [s["step"] for s in read_stats(run) if "loss" in s][-1] == 4
    second = load_file(run / "model" / "lora" / "pytorch_lora_weights.safetensors")
    assert any(not np.allclose(first[k].numpy(), second[k].numpy()) for k in first)

    # The run changes what the base checkpoint draws for the same seed.
    base = LocalSDProvider(checkpoint=tiny_sd_session, steps=2).generate("test pattern, left", n=1, seed=0)[0]
    out = tmp_path / "set"
    assert (
        main(
            [
                "prompt",
                "test pattern, left",
                "--provider",
                "local-sd",
                "--checkpoint",
                str(tiny_sd_session),
                "--lora",
                str(run),
                "-n",
                "1",
                "--steps",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    tuned = load_image_set(out)
    assert "run" in tuned["model"][0] and '"finetune_run"' in tuned["parameters"][0]
    from PIL import Image

    assert not np.array_equal(np.asarray(base.image), np.asarray(Image.open(tuned["abs_path"][0]).convert("RGB")))


def test_full_unet_finetune_and_caption_column(tiny_sd_session, tiny_dataset, tmp_path):
    frame = read_manifest(tiny_dataset)
    frame["caption"] = "a blob on the " + frame["label"]
    write_manifest(frame, tiny_dataset)
    config = FinetuneConfig(
        dataset=str(tiny_dataset),
        checkpoint=str(tiny_sd_session),
        mode="full",
        max_steps=1,
        batch_size=2,
        lr=1e-3,
        ema_max_decay=0.0,
        mixed_precision="bf16",
    )
    run = finetune(config, out=tmp_path / "full")
    assert (run / "model" / "unet" / "config.json").is_file() and not (run / "model" / "lora").exists()
    images = LocalSDProvider(checkpoint=tiny_sd_session, finetune_run=run, steps=1).generate("a blob", n=1)
    assert images[0].image.size == (16, 16)


def test_bad_settings_have_clear_errors(tiny_sd_session, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        finetune(_config(tiny_dataset, tiny_sd_session, mixed_precision="fp16"), out=tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        finetune(_config(tiny_dataset, tmp_path), out=tmp_path / "b")
    with pytest.raises(ValueError, match="manifest lacks"):
        finetune(_config(tiny_dataset, tiny_sd_session, caption_template="{label}, {view}"), out=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="synthmed finetune"):
        LocalSDProvider(checkpoint=tiny_sd_session, finetune_run=tmp_path / "not_a_run")
    assert not pd.isna(read_manifest(tiny_dataset)["label"]).any()


def _config(dataset, checkpoint, **kw) -> FinetuneConfig:
    return FinetuneConfig(dataset=str(dataset), checkpoint=str(checkpoint), **{"max_steps": 1, **kw})


def test_lora_resume_equals_uninterrupted(tiny_sd_session, tiny_dataset, tmp_path):
    import torch

    config = _config(tiny_dataset, tiny_sd_session, max_steps=4, batch_size=2, lr=1e-2, lora_rank=2)
    finetune(config, out=tmp_path / "a")
    finetune(config.model_copy(update={"max_steps": 2}), out=tmp_path / "b")
    torch.manual_seed(123)  # a different global RNG state must not matter after resume
    finetune(config, out=tmp_path / "b", resume=True)
    a, b = latest_checkpoint(tmp_path / "a"), latest_checkpoint(tmp_path / "b")
    assert a.name == b.name == "step-000004"
    for name in ("online.safetensors", "model/lora/pytorch_lora_weights.safetensors"):
        wa, wb = load_file(a / name), load_file(b / name)
        assert wa and wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    assert all("lora" in k for k in load_file(a / "online.safetensors"))  # only the adapter is checkpointed
    # A run folder of the older fine-tune loop (finetune.json + lora/ in RUN) still applies, but cannot resume.
    import shutil

    old = shutil.copytree(tmp_path / "b" / "model", tmp_path / "old")
    assert LocalSDProvider(checkpoint=tiny_sd_session, finetune_run=old, steps=1).generate("a blob", n=1)
    with pytest.raises(ValueError, match="older synthmed.*new --out"):
        finetune(config, out=old, resume=True)
