"""Local Stable Diffusion: offline loading with clear errors, seeded images, prompts flowing into the manifest."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from synthmed.cli import main
from synthmed.data.manifest import SYNTHETIC_COLUMNS, load_image_set
from synthmed.textgen.local_sd import LocalSDProvider, check_sd_folder


def test_missing_parts_are_named(tiny_sd, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_sd_folder(tmp_path / "nowhere")
    shutil.rmtree(tiny_sd / "vae")
    (tiny_sd / "model_index.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing \['model_index.json', 'vae/config.json'\]"):
        LocalSDProvider(checkpoint=tiny_sd)


def test_one_seed_per_image_whatever_the_batch(tiny_sd_session):
    single = LocalSDProvider(checkpoint=tiny_sd_session, steps=2, batch_size=1)
    batched = LocalSDProvider(checkpoint=tiny_sd_session, steps=2, batch_size=3)
    a = single.generate("chest x-ray, effusion", n=3, seed=5)
    b = batched.generate("chest x-ray, effusion", n=3, seed=5)
    assert [g.seed for g in a] == [5, 6, 7] and a[0].image.size == (16, 16)
    for x, y in zip(a, b):
        assert np.abs(np.asarray(x.image, dtype=int) - np.asarray(y.image, dtype=int)).max() <= 1
    assert not np.array_equal(np.asarray(a[0].image), np.asarray(a[1].image))
    assert (
        a[0].parameters["steps"] == 2 and a[0].parameters["checkpoint"] == tiny_sd_session.name
    )  # a name, no operator path
    with pytest.raises(ValueError, match="multiple of 2"):
        single.generate("x", n=1, size_px=15)
    with pytest.raises(ValueError, match="does not take option"):
        single.generate("x", n=1, quality="hd")


def test_prompt_cli_writes_a_synthetic_set_with_provenance(tiny_sd_session, tmp_path, capsys):
    out = tmp_path / "set"
    code = main(
        [
            "prompt",
            "chest x-ray, left lower lobe effusion",
            "--provider",
            "local-sd",
            "-n",
            "3",
            "--checkpoint",
            str(tiny_sd_session),
            "--steps",
            "2",
            "--seed",
            "10",
            "--channels",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and "wrote 3 images" in capsys.readouterr().out
    frame = load_image_set(out)
    assert list(frame.columns[: len(SYNTHETIC_COLUMNS)]) == list(SYNTHETIC_COLUMNS)
    assert frame["prompt"].unique().tolist() == ["chest x-ray, left lower lobe effusion"]
    assert frame["label"].unique().tolist() == ["left lower lobe effusion"]
    assert frame["provider"].unique().tolist() == ["local-sd"] and frame["synthetic"].eq(1).all()
    assert frame["seed"].tolist() == [10, 11, 12] and frame["steps"].eq(2).all()
    assert json.loads(frame["parameters"][0])["size"] == "16x16"
    assert all((out / p).is_file() for p in frame["path"])
    # The same --out again is refused; nothing is overwritten.
    again = main(
        [
            "prompt",
            "x",
            "--provider",
            "local-sd",
            "-n",
            "1",
            "--checkpoint",
            str(tiny_sd_session),
            "--steps",
            "1",
            "--out",
            str(out),
        ]
    )
    assert again == 2 and "already exists" in capsys.readouterr().err
    assert len(load_image_set(out)) == 3


def test_prompt_cli_local_sd_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["prompt", "x", "--provider", "local-sd", "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
