"""The experiment file: validation names the bad key, profiles and overrides merge, dry run writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthmed.cli import main
from synthmed.experiment.overrides import parse_set
from synthmed.experiment.schema import TrainSection, read_experiment
from synthmed.experiment.toml_files import load_toml, merge


def _edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_base_profile_and_overrides_merge_in_order(tiny_experiment: Path) -> None:
    config, root = read_experiment(tiny_experiment, environ={})
    assert config.train.options["max_steps"] == 2 and config.train.preset == "tiny"
    assert root == (tiny_experiment.parent / "data").resolve()
    config, _ = read_experiment(tiny_experiment, profile="cpu", environ={})
    assert config.train.options["max_steps"] == 3 and config.train.options["batch_size"] == 8
    config, _ = read_experiment(
        tiny_experiment, profile="cpu", overrides=["train.max_steps=7", "sample.sampler=flow_heun"], environ={}
    )
    assert config.train.options["max_steps"] == 7 and config.sample.options["sampler"] == "flow_heun"


def test_data_root_comes_from_env_unless_set(tiny_experiment: Path, tmp_path: Path) -> None:
    _, root = read_experiment(tiny_experiment, environ={"SYNTHMED_DATA_ROOT": str(tmp_path / "env")})
    assert root == tmp_path / "env"
    _, root = read_experiment(
        tiny_experiment, overrides=[f"data_root={tmp_path / 'flag'}"], environ={"SYNTHMED_DATA_ROOT": "x"}
    )
    assert root == tmp_path / "flag"


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("seed = 0", 'seed = 0\ncolour = "red"', "colour"),  # unknown top-level key
        ("max_steps = 2", "max_stepz = 2", "[train] max_stepz"),  # unknown stage key
        ("n_per_class = 3", "n_per_class = 0", "[sample] n_per_class"),  # bad value for the stage's config
        ("n_per_class = 3", 'out_dir = "x"', "[sample] out_dir"),  # the runner's own key
        ("size_px = 16", "size_pix = 16", "[data.prepare] size_pix"),
        ('preset = "tiny"', 'preset = "tiny"\nmodel = { widths = [8] }', "[train.model] widths"),
        ('source = "phantom"', 'source = "phantom"\nprepared = "x"', "exactly one of"),
        ("min_steps = 2", "image_size_px = 8, min_steps = 2", "[evaluate] tstr_overrides: image_size_px"),
        ("min_steps = 2", "min_stepz = 2", "[evaluate.tstr_overrides] min_stepz"),
    ],
)
def test_bad_keys_and_values_are_named(tiny_experiment: Path, old: str, new: str, named: str) -> None:
    _edit(tiny_experiment, old, new)
    with pytest.raises(ValueError, match="tiny.toml") as excinfo:
        read_experiment(tiny_experiment, environ={})
    assert named in str(excinfo.value)


def test_bad_profile_names_the_profiles_defined(tiny_experiment: Path) -> None:
    with pytest.raises(ValueError, match="defines no such profile; it has: cpu, gpu"):
        read_experiment(tiny_experiment, profile="tpu", environ={})


def test_a_typo_in_a_profile_not_chosen_is_still_an_error(tiny_experiment: Path) -> None:
    _edit(tiny_experiment, "[profile.gpu.train]\nbatch_size", "[profile.gpu.train]\nbatch_sise")
    with pytest.raises(ValueError, match=r"with --profile gpu: .*\[train\] batch_sise"):
        read_experiment(tiny_experiment, profile="cpu", environ={})


def test_extends_merges_the_base_file_under_this_one(tiny_experiment: Path) -> None:
    child = tiny_experiment.parent / "child.toml"
    child.write_text('extends = "tiny.toml"\nname = "child"\n[sample]\nn_per_class = 5\n')
    config, _ = read_experiment(child, environ={})
    assert config.name == "child" and config.sample.options == {"n_per_class": 5, "steps": 2, "grid_per_class": 2}
    tiny_experiment.write_text('extends = "child.toml"\n' + tiny_experiment.read_text())
    with pytest.raises(ValueError, match="loop"):
        read_experiment(child, environ={})


def test_a_yaml_file_with_the_same_tables_reads_as_the_toml_file(tiny_experiment: Path) -> None:
    import yaml

    as_yaml = tiny_experiment.parent / "tiny_yaml.yaml"
    tables = load_toml(tiny_experiment)
    as_yaml.write_text(yaml.safe_dump(tables))
    toml_config, _ = read_experiment(tiny_experiment, profile="cpu", environ={})
    yaml_config, _ = read_experiment(as_yaml, profile="cpu", environ={})
    assert yaml_config.model_dump() == toml_config.model_dump()
    child = tiny_experiment.parent / "child.yml"
    child.write_text("extends: tiny.toml\nname: child\nsample:\n  n_per_class: 5\n")  # YAML may extend TOML
    assert read_experiment(child, environ={})[0].sample.options["n_per_class"] == 5
    child.write_text("extends: tiny.toml\nname: child\ntrain:\n  preset: 32\n")  # YAML reads 32 as a number
    with pytest.raises(ValueError, match=r'preset: .*quote it: "32"'):
        read_experiment(child, environ={})
    child.write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping of keys to tables"):
        read_experiment(child, environ={})
    child.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        read_experiment(child, environ={})
    child.write_bytes(b"\x89PNG\r\n\x1a\n\xf3\x00")
    with pytest.raises(ValueError, match="child.yml is not a text file"):
        read_experiment(child, environ={})
    with pytest.raises(ValueError, match="is a folder; give the experiment file in it"):
        read_experiment(tiny_experiment.parent, environ={})


def test_extends_keeps_the_bases_data_root_and_lets_the_child_pick_its_data(tiny_experiment: Path) -> None:
    base = tiny_experiment.read_text().replace('data_root = "data"', 'data_root = "../shared"')
    assert 'data_root = "../shared"' in base  # the tiny file names its data_root
    tiny_experiment.write_text(base)
    sub = tiny_experiment.parent / "arms" / "child.toml"
    sub.parent.mkdir()
    sub.write_text(f'extends = "{tiny_experiment}"\nname = "child"\n[data]\nprepared = "prep"\n')
    raw = load_toml(sub)
    # A relative data_root is relative to the file that says it, also when inherited.
    assert Path(raw["data_root"]) == tiny_experiment.parent / "../shared"
    # The child switched from the base's data.source to data.prepared: the base's source is gone.
    assert raw["data"]["prepared"] == "prep" and "source" not in raw["data"]


def test_set_values_are_toml_values_or_strings() -> None:
    assert parse_set("train.max_steps=10") == (["train", "max_steps"], 10)
    assert parse_set("evaluate.tstr_archs=['vgg19']") == (["evaluate", "tstr_archs"], ["vgg19"])
    assert parse_set("data_root=/data/x") == (["data_root"], "/data/x")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set("train.max_steps")
    with pytest.raises(ValueError, match="one setting per --set"):
        parse_set("train.max_steps=2\n[evil]")  # TOML would read the 2 and drop the rest
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_dry_run_prints_the_plan_and_writes_nothing(tiny_experiment: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", str(tiny_experiment), "--profile", "cpu", "--dry-run", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["profile"] == "cpu" and printed["experiment"]["train"]["max_steps"] == 3
    assert [s["stage"] for s in printed["stages"]] == ["prepare", "train", "sample", "evaluate", "report"]
    assert all(s["status"] == "to run" for s in printed["stages"])
    assert not out.exists()


def test_cli_bad_input_is_one_line_and_exit_2(tiny_experiment: Path, capsys) -> None:
    _edit(tiny_experiment, "max_steps = 2", "max_stepz = 2")
    assert main(["run", str(tiny_experiment), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[train] max_stepz: unknown key" in err
    assert main(["run", str(tiny_experiment.parent / "missing.toml")]) == 2


def test_shipped_experiments_validate_for_both_profiles() -> None:
    folder = Path(__file__).resolve().parents[2] / "experiments"
    files = sorted(folder.glob("*.toml"))
    assert {f.stem for f in files} >= {"cxr256_pixel", "cxr_reader_study", "brain_mri_vgg19", "all_densenet121"}
    for path in files:
        for profile in ("cpu", "gpu"):
            config, _ = read_experiment(path, profile=profile, environ={})
            assert config.data.source is not None
            if profile == "cpu":
                assert config.data.prepare["size_px"] == 64, path.name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evaluate.tstr_seeds=[0, 0]", "lists 0 more than once"),
        ("evaluate.tstr_seeds=[-1]", "must be >= 0"),
        ("evaluate.tstr_archs=['vgg19', 'vgg19']", "lists vgg19 more than once"),
        ("evaluate.tstr_archs=[]", r"\[evaluate\] tstr_archs: .*at least 1 item"),
    ],
)
def test_repeated_or_negative_classifier_seeds_are_refused(tiny_experiment: Path, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):  # a repeated seed would fake an interval over seeds
        read_experiment(tiny_experiment, overrides=[override], environ={})


def test_set_values_take_the_type_of_the_field_they_set(tiny_experiment: Path) -> None:
    config, _ = read_experiment(
        tiny_experiment,
        overrides=["train.preset=32", "data.prepare.channels=1", "train.max_steps=7", "profile.gpu.train.preset=64"],
        environ={},
    )
    assert config.train.preset == "32" and config.data.prepare["channels"] == "1"
    assert config.train.options["max_steps"] == 7  # an int field keeps the TOML int
    assert config.profile["gpu"]["train"]["preset"] == "64"
    with pytest.raises(ValueError, match=r"\[train\] max_steps"):  # a string where an int belongs still fails
        read_experiment(tiny_experiment, overrides=["train.max_steps=many"], environ={})


def test_extends_stays_inside_the_including_files_folder(tiny_experiment: Path, tmp_path: Path) -> None:
    folder = tiny_experiment.parent
    (folder / "bases").mkdir()
    (folder / "bases" / "base.toml").write_text(tiny_experiment.read_text())
    (tmp_path / "outside.toml").write_text(tiny_experiment.read_text())
    child = folder / "child.toml"
    child.write_text('extends = "bases/base.toml"\nname = "child"\n')
    assert read_experiment(child, environ={})[0].name == "child"  # a file below the folder is fine
    child.write_text('extends = "../outside.toml"\nname = "child"\n')
    with pytest.raises(ValueError, match=r"extends '\.\./outside\.toml' points outside .*absolute path"):
        read_experiment(child, environ={})
    child.write_text(f'extends = "{tmp_path / "outside.toml"}"\nname = "child"\n')  # absolute: deliberate
    assert read_experiment(child, environ={})[0].name == "child"


def test_flow_matching_objective_drops_snr_gamma_and_says_so(tiny_experiment: Path) -> None:
    flow = ["train.objective=flow_matching", "train.snr_gamma=5.0"]
    config, _ = read_experiment(tiny_experiment, overrides=flow, environ={})
    assert config.train.flow and "snr_gamma" not in config.train.options
    assert "snr_gamma" not in config.model_dump()["train"]
    assert config.train.notes() == [
        "[train] snr_gamma = 5.0 is ignored: objective flow_matching has no min-SNR weighting"
    ]
    assert config.train.model_overrides()["prediction_type"] == "flow_prediction"
    config, _ = read_experiment(tiny_experiment, overrides=["train.snr_gamma=5.0"], environ={})
    assert config.train.options["snr_gamma"] == 5.0 and not config.train.notes()  # diffusion keeps it
    assert config.train.objective == "diffusion"  # min-SNR without an objective means diffusion
    with pytest.raises(ValueError, match="remove train.model.prediction_type"):
        read_experiment(tiny_experiment, overrides=[*flow, "train.model.prediction_type=epsilon"], environ={})
    with pytest.raises(ValueError, match="unknown key"):
        read_experiment(tiny_experiment, overrides=["train.objective_x=flow_matching"], environ={})


def test_the_default_objective_is_flow_matching_unless_a_diffusion_setting_is_given(tiny_experiment: Path) -> None:
    read = lambda *sets: read_experiment(tiny_experiment, overrides=list(sets), environ={})[0].train  # noqa: E731
    assert read().objective == "flow_matching" and read().model_overrides()["prediction_type"] == "flow_prediction"
    implied = read("train.model.prediction_type=epsilon")
    assert implied.objective == "diffusion" and implied.model_overrides() == {"prediction_type": "epsilon"}
    assert read("train.objective=diffusion").model_overrides() == {}  # the model's own default, v-prediction
    assert TrainSection(family="latent").objective == "diffusion"  # latent keeps diffusion (LATENT_DEFAULT_OBJECTIVE)


@pytest.mark.parametrize(
    ("objective", "sampler", "fitting"),
    [("flow_matching", "dpmpp", "['flow_euler', 'flow_heun']"), ("diffusion", "flow_heun", "['ddim', 'ddpm',")],
)
def test_dry_run_refuses_a_sampler_that_does_not_fit_the_objective(
    tiny_experiment: Path, tmp_path: Path, capsys, objective: str, sampler: str, fitting: str
) -> None:
    out = tmp_path / "run"
    sets = ["--set", f"train.objective={objective}", "--set", f"sample.sampler={sampler}"]
    assert main(["run", str(tiny_experiment), "--dry-run", "--out", str(out), *sets]) == 2
    err = capsys.readouterr().err
    assert f"[sample] sampler '{sampler}' does not fit [train] objective '{objective}'" in err and fitting in err
    assert not out.exists()


def test_dry_run_checks_the_data_folder_exists(tiny_experiment: Path, tmp_path: Path, capsys) -> None:
    _edit(tiny_experiment, 'source = "phantom"', 'source = "raw_xrays"')
    args = ["run", str(tiny_experiment), "--dry-run", "--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err
    missing = tiny_experiment.parent / "data" / "raw_xrays"
    assert f"data.source 'raw_xrays': {missing} does not exist" in err
    assert "--set data_root=" in err and "SYNTHMED_DATA_ROOT" in err
    missing.mkdir(parents=True)
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--set", f"data_root={tmp_path / 'elsewhere'}"]) == 2
    assert str(tmp_path / "elsewhere" / "raw_xrays") in capsys.readouterr().err
