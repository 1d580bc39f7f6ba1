"""The offline demo: phantom -> prepare -> train -> sample -> evaluate -> report, in one run folder."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from synthmed.files import atomic_write_json, read_json
from synthmed.models.config import DEFAULT_OBJECTIVE, Objective

log = logging.getLogger(__name__)

DEMO_TRAIN_STEPS = 1189
"""Steps the old 6-minute wall-clock demo reached on a quiet 2-core machine: about 6 minutes of training there."""
DEMO_TRAIN_CAP_MIN = 30.0
"""Wall-clock cap on training: five times the quiet-machine time, so only a badly overloaded machine hits it."""
DEMO_GUIDANCE_SCALE = 4.0
"""Classifier-free guidance of the demo's samples. On the full-budget demo model (1,189 steps), scale 1/2/4 had
75/91/100% of synthetic images recognised as their condition (consolidation 28/75/100%; n = 32 per class), with
explanations good at every scale; only scale 4 puts every condition at >= 80% (bench/results/demo_recipe.json)."""


class DemoConfig(BaseModel):
    """Settings of `synthmed demo`. Training runs a fixed number of steps, so every machine gets the same model
    (about 6 minutes of training on a quiet 2-core machine); the wall-clock cap only stops a run that would
    otherwise take far longer, and the demo says so in its log, its summary and the report when it does."""

    model_config = ConfigDict(extra="forbid")

    out_dir: Path
    size_px: int = Field(32, description="image size of the prepared phantom and the model")
    n_per_class: int = Field(200, ge=8, description="phantom radiographs per condition")
    train_steps: int = Field(
        DEMO_TRAIN_STEPS, ge=1, description="training budget in steps (the same result on every machine)"
    )
    train_cap_minutes: float = Field(
        DEMO_TRAIN_CAP_MIN, gt=0, description="wall-clock safety cap; a run stopped by it is reported as such"
    )
    preset: str | None = Field(None, description="model preset; default: the preset for size_px")
    samples_per_class: int = Field(32, ge=1)
    sampler: str | None = Field(None, description="None = the model's own (flow_euler for flow matching)")
    objective: Objective = Field(DEFAULT_OBJECTIVE, description="training objective (bench/results/demo_recipe.json)")
    guidance_scale: float = Field(
        DEMO_GUIDANCE_SCALE, ge=0, description="classifier-free guidance (bench/results/demo_recipe.json)"
    )
    evaluate: bool = True
    tstr_epochs: int = Field(8, ge=1)
    tstr_min_steps: int = Field(60, ge=0, description="fewest classifier updates per TSTR fit")
    seed: int = 0


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put things."""

    dataset_dir: Path
    run_dir: Path
    samples_dir: Path
    grid_paths: list[Path]
    eval_dir: Path | None
    report_path: Path | None
    timings_s: dict[str, float]
    training: dict

    @property
    def cap_hit(self) -> bool:
        """True when the wall-clock cap stopped training before its step budget."""
        return bool(self.training["cap_hit"])


def run_demo(config: DemoConfig) -> DemoResult:
    """Run every stage on the built-in chest-radiograph phantom; each stage writes its own folder."""
    from synthmed.data.phantom import prepare_phantom
    from synthmed.models.sampling import default_sampler
    from synthmed.models.unet import build_scheduler, load_model_config
    from synthmed.sample.generate import sample_images
    from synthmed.train.config import train_config_for_dataset
    from synthmed.train.loop import train

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # Prepare the phantom dataset.
    start = time.perf_counter()
    dataset_dir = out / "dataset"
    if not (dataset_dir / "dataset.json").is_file():
        prepare_phantom(dataset_dir, n_per_class=config.n_per_class, size_px=config.size_px, seed=config.seed)
    timings["prepare_s"] = time.perf_counter() - start

    # Train (resumes if an earlier demo run was interrupted).
    start = time.perf_counter()
    run_dir = out / "run"
    train_config = train_config_for_dataset(
        dataset_dir,
        preset=config.preset,
        objective=config.objective,
        max_duration_min=config.train_cap_minutes,
        max_steps=config.train_steps,
        duration_is_cap=True,  # the LR schedule follows the steps: a slow machine trains the same model
        seed=config.seed,
        # float32 everywhere: 'auto' would pick bf16 on CPUs with AMX/AVX512-BF16 and give another model there.
        mixed_precision="no",
    )
    model_dir = train(train_config, run_dir=run_dir, resume=(run_dir / "checkpoints").is_dir())
    timings["train_s"] = time.perf_counter() - start
    training = training_summary(model_dir, steps_planned=config.train_steps, cap_minutes=config.train_cap_minutes)
    if training["cap_hit"]:
        log.warning("%s", training["verdict"])

    # Sample, one seed per image (a finished set from an earlier demo run is kept if it came from the same
    # model and settings; a resumed training run or other sampling settings make a new set).
    start = time.perf_counter()
    samples_dir = out / "samples"
    sampler = config.sampler or default_sampler(build_scheduler(load_model_config(model_dir)))
    made_by = {"model_step": training["steps_done"], "guidance_scale": config.guidance_scale, "sampler": sampler}
    made_by["samples_per_class"] = config.samples_per_class
    stamp = out / "samples_made_by.json"
    if (samples_dir / "manifest.csv").is_file() and (not stamp.is_file() or read_json(stamp) != made_by):
        shutil.rmtree(samples_dir)
    if not (samples_dir / "manifest.csv").is_file():
        shutil.rmtree(out / "eval", ignore_errors=True)  # the evaluation and report of the previous set
        (out / "report.html").unlink(missing_ok=True)
        sample_images(demo_sample_config(config.model_copy(update={"sampler": sampler}), model_dir, samples_dir))
        atomic_write_json(stamp, made_by)
    timings["sample_s"] = time.perf_counter() - start
    grids = sorted((samples_dir / "grids").glob("*.png"))

    eval_dir = report_path = None
    if config.evaluate:
        from synthmed.evaluate.run import evaluate
        from synthmed.report.build import build_report

        # Evaluate against the real (phantom) splits, then render the report.
        start = time.perf_counter()
        metrics_path = evaluate(demo_eval_config(config, dataset_dir, samples_dir, out / "eval"))
        eval_dir = Path(metrics_path).parent
        timings["evaluate_s"] = time.perf_counter() - start
        _add_training_section(Path(metrics_path), training)
        title = "synthmed demo: chest-radiograph phantom"
        if training["cap_hit"]:
            title += f" (training stopped by the time cap at step {training['steps_done']} of {config.train_steps})"
        report_path = build_report(Path(eval_dir), out_path=out / "report.html", title=title)
    return DemoResult(dataset_dir, run_dir, samples_dir, grids, eval_dir, report_path, timings, training)


def demo_sample_config(config: DemoConfig, model_dir: Path, out_dir: Path, *, guidance_scale: float | None = None):
    """The demo's sampling settings (one seed per image, the same seeds in every class), as a SampleConfig."""
    from synthmed.sample.generate import SampleConfig

    return SampleConfig(
        model_dir=str(model_dir),
        out_dir=str(out_dir),
        n_per_class=config.samples_per_class,
        sampler=config.sampler,
        guidance_scale=config.guidance_scale if guidance_scale is None else guidance_scale,
        seed_start=config.seed,
    )


def demo_eval_config(config: DemoConfig, dataset_dir: Path, samples_dir: Path, out_dir: Path, **overrides):
    """The demo's evaluation settings (small: one TSTR seed, few explanation images), as an EvalConfig."""
    from synthmed.evaluate.run import EvalConfig

    settings = dict(
        real_dir=dataset_dir,
        synthetic_dir=samples_dir,
        out_dir=out_dir,
        seed=config.seed,
        tstr_seeds=(config.seed,),
        tstr_epochs=config.tstr_epochs,
        explain_images=2,
        lime_samples=100,
        bootstrap_samples=20,
        tstr_overrides={"min_steps": config.tstr_min_steps},
    )
    return EvalConfig(**(settings | overrides))


def training_summary(model_dir: Path, *, steps_planned: int, cap_minutes: float) -> dict:
    """What training did: steps done of those planned, and whether the wall-clock cap stopped it early."""
    from synthmed.models.unet import load_model_metadata

    steps_done = int(load_model_metadata(model_dir)["step"])
    cap_hit = steps_done < steps_planned
    if cap_hit:
        verdict = (
            f"Training stopped at the {cap_minutes:g}-minute time cap (wall clock) after {steps_done} of "
            f"{steps_planned} steps, so this model is weaker than the demo's and its results differ from other "
            f"machines'. Re-run with a larger cap (--train-minutes): training resumes where it stopped."
        )
    elif steps_planned < DEMO_TRAIN_STEPS:
        verdict = (
            f"Training ran its budget of {steps_planned} steps, fewer than the demo's {DEMO_TRAIN_STEPS}: a quick "
            f"look at the pipeline, whose results are weaker than and not comparable with the full demo's "
            f"(BENCHMARKS.md, 'Demo recipe')."
        )
    else:
        verdict = f"Training ran its full budget of {steps_planned} steps (the same model on every machine)."
    return {
        "steps_planned": steps_planned,
        "steps_done": steps_done,
        "time_cap_min": cap_minutes,
        "cap_hit": cap_hit,
        "verdict": verdict,
        "status": "poor" if cap_hit else "fair" if steps_planned < DEMO_TRAIN_STEPS else "good",
    }


def _add_training_section(metrics_path: Path, training: dict) -> None:
    """Put the training summary into metrics.json, so the report shows whether the time cap cut training short."""
    metrics = read_json(metrics_path)
    metrics["demo_training"] = training
    atomic_write_json(metrics_path, metrics)
