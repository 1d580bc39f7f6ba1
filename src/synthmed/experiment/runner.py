"""Run an experiment's stages in order into one run folder, skipping finished stages and resuming interrupted ones."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from synthmed.experiment.folder import LOCK_NAME, STATE_NAME, check_run_folder, locked, resume_training
from synthmed.experiment.latent import run_autoencoder, run_latent_sample, run_latent_train
from synthmed.experiment.schema import ExperimentConfig, data_path
from synthmed.files import atomic_write_json

log = logging.getLogger(__name__)

STAGES = ("prepare", "autoencoder", "train", "sample", "evaluate", "report", "study")
VERSIONED = ("synthmed", "torch", "torchvision", "diffusers", "accelerate", "numpy", "pydantic")
FLOW_DEFAULT_SAMPLER = "flow_euler"
"""The sampler of flow-matching runs when [sample] names none (synthmed.models.sampling.default_sampler's)."""


@dataclass(frozen=True)
class Stage:
    """One planned stage: its settings (fingerprinted with those of the stages before it) and its output."""

    name: str
    settings: dict[str, Any]
    output: Path
    fingerprint: str


@dataclass
class RunResult:
    """What `run_experiment` did, stage by stage ('ran', 'skipped' or 'off')."""

    run_dir: Path
    actions: dict[str, str] = field(default_factory=dict)


def software_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages the stages run on."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _fingerprint(settings: dict[str, Any], parent: str) -> str:
    text = json.dumps(settings, sort_keys=True, default=str) + parent
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(config: ExperimentConfig, *, data_root: Path, run_dir: Path) -> list[Stage]:
    """The stages this experiment runs, in order, with where each writes."""
    run_dir = Path(run_dir)
    stages: list[Stage] = []

    def add(name: str, settings: dict[str, Any], output: Path) -> None:
        parent = stages[-1].fingerprint if stages else ""
        stages.append(Stage(name, settings, output, _fingerprint(settings, parent)))

    data = config.data
    if data.source is not None:
        source = data.source if data.source == "phantom" else str(data_path(data_root, data.source))
        prepare = {"source": source, "options": data.prepare, "seed": config.seed}
        if data.source == "phantom":
            prepare["phantom_n_per_class"] = data.phantom_n_per_class
        add("prepare", prepare, run_dir / "dataset")
        dataset = run_dir / "dataset"
    else:
        dataset = data_path(data_root, str(data.prepared))
        add("prepare", {"prepared": str(dataset)}, dataset)
    if config.train.latent:
        add("autoencoder", {"seed": config.seed, **config.train.autoencoder}, run_dir / "autoencoder")
    train = {"preset": config.train.preset, "model": config.train.model, "seed": config.seed, **config.train.options}
    if config.train.flow:  # named only when not the default, so older run folders keep their fingerprints
        train["objective"] = config.train.objective
    if config.train.latent:  # likewise
        train["family"] = config.train.family
    add("train", train, run_dir / "train")
    if config.sample.enabled:
        # else SampleConfig's dpmpp (pixel) or LatentSampleConfig's ddim (latent), as `synthmed sample` chooses
        sampler = {"sampler": FLOW_DEFAULT_SAMPLER} if config.train.flow else {}
        add("sample", {"seed_start": config.seed, **sampler, **config.sample.options}, run_dir / "samples")
        if config.evaluate.enabled:
            add("evaluate", {"seed": config.seed, **config.evaluate.options}, run_dir / "eval")
            if config.report.enabled:
                add("report", config.report.model_dump(), run_dir / "report.html")
        for name, spec in config.study.items():
            add("study", {"name": name, "seed": config.seed, **spec}, run_dir / "study" / name)
    return stages


class _State:
    """RUN/stages.json: the fingerprint and finish time of every completed stage (rewritten atomically)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / STATE_NAME
        self.done: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @staticmethod
    def key(stage: Stage) -> str:
        return f"study/{stage.settings['name']}" if stage.name == "study" else stage.name

    def complete(self, stage: Stage) -> bool:
        entry = self.done.get(self.key(stage))
        if entry is None or not stage.output.exists():
            return False
        if entry["fingerprint"] != stage.fingerprint:
            raise ValueError(
                f"the {self.key(stage)} stage in {self.path.parent} ran with other settings (or after other "
                f"earlier stages); use a new --out folder, or delete {stage.output} and the stages after it."
            )
        return True

    def record(self, stage: Stage, seconds: float) -> None:
        self.done[self.key(stage)] = {
            "fingerprint": stage.fingerprint,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
        }
        atomic_write_json(self.path, self.done)


def describe(config: ExperimentConfig, *, data_root: Path, run_dir: Path, profile: str | None) -> dict[str, Any]:
    """The resolved experiment as written to RUN/experiment.json (and printed by --dry-run)."""
    resolved = config.model_dump(mode="json", exclude={"profile"})
    state = _State(Path(run_dir))
    stages = []
    for stage in plan(config, data_root=data_root, run_dir=run_dir):
        try:
            status = "complete (skipped)" if state.complete(stage) else "to run"
        except ValueError as exc:
            status = f"blocked: {exc}"
        stages.append({"stage": _State.key(stage), "output": str(stage.output), "status": status})
    return {
        "experiment": resolved,
        "notes": config.train.notes(),
        "profile": profile,
        "profiles_defined": sorted(config.profile),
        "data_root": str(data_root),
        "run_dir": str(run_dir),
        "stages": stages,
    }


def run_experiment(
    config: ExperimentConfig,
    *,
    data_root: Path,
    run_dir: Path,
    profile: str | None = None,
    on_output: Callable[[str], None] = print,
) -> RunResult:
    """Run every stage not yet complete; an interrupted stage resumes (train) or re-runs (the others)."""
    import time

    run_dir = Path(run_dir)
    stages = plan(config, data_root=data_root, run_dir=run_dir)
    check_inputs(config, data_root=data_root, run_dir=run_dir)  # also refuses a foreign non-empty folder
    existed = run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    with locked(run_dir):  # a second `synthmed run` into this folder is refused until this one ends
        state = _State(run_dir)
        _refuse_blocked(stages, state)  # a run folder made with other settings: refused before any work
        fresh = not any(child.name != LOCK_NAME for child in run_dir.iterdir())
        for note in config.train.notes():
            on_output(f"note: {note}")
        result = RunResult(run_dir)
        try:
            atomic_write_json(
                run_dir / "experiment.json", describe(config, data_root=data_root, run_dir=run_dir, profile=profile)
            )
            atomic_write_json(run_dir / "versions.json", software_versions())
            for stage in stages:
                key = _State.key(stage)
                if state.complete(stage):
                    result.actions[key] = "skipped"
                    on_output(f"{key}: complete, skipped ({stage.output})")
                    continue
                on_output(f"{key}: running -> {stage.output}")
                started = time.perf_counter()
                RUNNERS[stage.name](config, stage, dataset=stages[0].output, run_dir=run_dir, on_output=on_output)
                state.record(stage, time.perf_counter() - started)
                result.actions[key] = "ran"
            ended = describe(config, data_root=data_root, run_dir=run_dir, profile=profile)
            for entry in ended["stages"]:  # the plan as it ended, not as it began
                entry["status"] = f"complete: {result.actions.get(entry['stage'], 'skipped')} in this run"
            atomic_write_json(run_dir / "experiment.json", ended)
        except BaseException:
            if fresh and _nothing_to_keep(stages, state, run_dir):
                _remove_contents(run_dir, keep_folder=existed)
            raise
    return result


def _refuse_blocked(stages: list[Stage], state: _State) -> None:
    """One error naming every output to delete when a completed stage ran with other settings (the stages after
    it depend on it, so their outputs go too)."""
    for i, stage in enumerate(stages):
        try:
            state.complete(stage)
        except ValueError as exc:
            outputs = [later.output for later in stages[i:]]
            if any(later.name == "report" for later in stages[i:]):
                from synthmed.report.build import METRICS_NAME
                from synthmed.report.paper_tables import TABLES_DIR

                run_dir = state.path.parent  # the report's copy of the metrics and its tables sit beside it
                outputs += [run_dir / METRICS_NAME, run_dir / TABLES_DIR]
            present = [str(p) for p in outputs if p.exists()]
            raise ValueError(f"{exc} Those are: {', '.join(present)}.") from None


def check_inputs(config: ExperimentConfig, *, data_root: Path, run_dir: Path) -> None:
    """Refuse, before any work (and in --dry-run), a non-empty --out that is not a run folder, and inputs that
    are missing: the data source or prepared dataset (unless the run's prepare stage is complete) and an
    evaluation weights folder."""
    check_run_folder(Path(run_dir))
    prepare = plan(config, data_root=data_root, run_dir=run_dir)[0]
    try:
        prepared_here = _State(Path(run_dir)).complete(prepare)
    except ValueError:  # other settings: reported by the run (or the dry run's stage status)
        prepared_here = False
    if config.data.source != "phantom" and not prepared_here:
        key, value = (
            ("data.source", config.data.source) if config.data.source else ("data.prepared", config.data.prepared)
        )
        path = data_path(data_root, str(value))
        if not path.exists():
            raise FileNotFoundError(
                f"{key} {value!r}: {path} does not exist (data_root is {data_root}). Point data_root at the folder "
                f"that holds it: --set data_root=/path/to/data or SYNTHMED_DATA_ROOT=/path/to/data (or give "
                f"{key} as an absolute path)."
            )
    for table, options in (("train", config.train.options), ("train.autoencoder", config.train.autoencoder)):
        if options.get("mixed_precision") == "fp16":
            import torch

            if not torch.cuda.is_available():
                raise ValueError(
                    f"[{table}] mixed_precision = 'fp16' needs a CUDA GPU and this machine has none; use 'no', "
                    f"'bf16' or 'auto' (fix it in the experiment file or with --set {table}.mixed_precision=auto)."
                )
    options = config.evaluate.options
    if config.sample.enabled and config.evaluate.enabled and options.get("tstr_weights_dir"):
        from synthmed.evaluate.classifiers import check_weights_dir

        archs = options.get("tstr_archs", ("small_cnn",))
        check_weights_dir(options["tstr_weights_dir"], archs, flag="[evaluate] tstr_weights_dir")


def _nothing_to_keep(stages: list[Stage], state: _State, run_dir: Path) -> bool:
    """True when no stage finished with output in the run folder and no training checkpoint exists yet."""
    finished_here = [s for s in stages if _State.key(s) in state.done and s.output.is_relative_to(run_dir)]
    trained = ("autoencoder", "train")
    return not finished_here and not any(any((run_dir / t / "checkpoints").glob("step-*")) for t in trained)


def _remove_contents(run_dir: Path, *, keep_folder: bool) -> None:
    """Empty a run folder this run filled (a failed first stage leaves no half-made run behind)."""
    for child in run_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if not keep_folder:
        with contextlib.suppress(OSError):  # never hide the error that stopped the run
            run_dir.rmdir()


# The stages: each calls the stage's public Python function (as synthmed.demo does).


def _prepare(config: ExperimentConfig, stage: Stage, **_: Any) -> None:
    from synthmed.data.prepare import PrepareConfig, prepare_dataset

    if "prepared" in stage.settings:
        if not (stage.output / "dataset.json").is_file():
            raise FileNotFoundError(
                f"data.prepared {stage.output} is not a prepared dataset (no dataset.json); prepare it with "
                f"`synthmed prepare`, or give data.source instead."
            )
        return
    if stage.output.is_dir() and any(stage.output.iterdir()) and not (stage.output / "dataset.json").is_file():
        raise FileExistsError(
            f"{stage.output} is not a prepared dataset (no dataset.json) and `synthmed run` does not replace "
            f"other files: move or delete that folder, or give another --out."
        )
    options = PrepareConfig(**stage.settings["options"], overwrite=True)  # an interrupted prepare starts over
    if stage.settings["source"] == "phantom":
        from synthmed.data.phantom import prepare_phantom

        prepare_phantom(
            stage.output,
            n_per_class=stage.settings["phantom_n_per_class"],
            size_px=options.size_px,
            seed=config.seed,
            config=options,
        )
    else:
        prepare_dataset(stage.settings["source"], out_dir=stage.output, config=options)


def _train(config: ExperimentConfig, stage: Stage, *, dataset: Path, **kwargs: Any) -> None:
    if config.train.latent:
        run_latent_train(config, stage, dataset=dataset, **kwargs)
        return
    from synthmed.train.config import train_config_for_dataset
    from synthmed.train.loop import train

    train_config = train_config_for_dataset(
        dataset,
        preset=config.train.preset,
        objective=config.train.objective,  # its prediction type and min-SNR gamma (train.config.OBJECTIVE_SETTINGS)
        model_overrides=config.train.model,
        **{"seed": config.seed, **config.train.options},
    )
    train(train_config, run_dir=stage.output, resume=resume_training(stage.output))


def _sample(config: ExperimentConfig, stage: Stage, *, run_dir: Path, **_: Any) -> None:
    if config.train.latent:
        run_latent_sample(config, stage, run_dir=run_dir)
        return
    from synthmed.sample.generate import SampleConfig, sample_images

    shutil.rmtree(stage.output, ignore_errors=True)  # not recorded complete: a set from an interrupted run
    sample_images(SampleConfig(model_dir=str(run_dir / "train"), out_dir=str(stage.output), **stage.settings))


def _evaluate(config: ExperimentConfig, stage: Stage, *, dataset: Path, run_dir: Path, **_: Any) -> None:
    from synthmed.evaluate.run import EvalConfig, evaluate

    evaluate(EvalConfig(real_dir=dataset, synthetic_dir=run_dir / "samples", out_dir=stage.output, **stage.settings))


def _report(config: ExperimentConfig, stage: Stage, *, run_dir: Path, **_: Any) -> None:
    from synthmed.report.build import METRICS_NAME, build_report

    title = config.report.title or f"synthmed experiment {config.name}"
    # This stage owns the report's copies beside report.html: one left by an earlier evaluation is stale.
    (run_dir / METRICS_NAME).unlink(missing_ok=True)
    build_report(run_dir / "eval", out_path=stage.output, title=title)


def _study(config: ExperimentConfig, stage: Stage, *, dataset: Path, run_dir: Path, on_output, **_: Any) -> None:
    import os

    from synthmed.study.blinding import StudySpec, build_study

    settings = {k: v for k, v in stage.settings.items() if k != "name"}
    shutil.rmtree(stage.output, ignore_errors=True)  # not recorded complete: a half-built study folder
    created = build_study(
        StudySpec(**settings),
        real_dir=dataset,
        synthetic_dir=run_dir / "samples",
        study_dir=stage.output,
        admin_password=os.environ.get("SYNTHMED_STUDY_ADMIN_PASSWORD"),
    )
    on_output(
        f"study {stage.settings['name']}: {created.n_real} real + {created.n_synthetic} synthetic cases, "
        f"{created.image_size_px} px; admin user {created.admin_username} password {created.admin_password}"
    )
    for name, token in created.invitations.items():
        on_output(f"  invite {name}: /invite/{token}")
    on_output(f"  shown once (the database keeps only hashes); serve: synthmed study serve {stage.output}")


RUNNERS: dict[str, Callable[..., None]] = {
    "prepare": _prepare,
    "autoencoder": run_autoencoder,
    "train": _train,
    "sample": _sample,
    "evaluate": _evaluate,
    "report": _report,
    "study": _study,
}
