"""The offline demo: phantom -> prepare -> train -> sample -> evaluate -> report, in one run folder."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class DemoConfig(BaseModel):
    """Settings of `synthmed demo` (defaults finish in about 10 minutes on 2 CPU cores)."""

    model_config = ConfigDict(extra="forbid")

    out_dir: Path
    size_px: int = Field(32, description="image size of the prepared phantom and the model")
    n_per_class: int = Field(200, ge=8, description="phantom radiographs per condition")
    train_minutes: float = Field(6.0, gt=0, description="wall-clock training budget")
    train_max_steps: int | None = Field(None, ge=1, description="optional step cap (tests use a few steps)")
    preset: str | None = Field(None, description="model preset; default: the preset for size_px")
    samples_per_class: int = Field(32, ge=1)
    sampler: str = "dpmpp"
    guidance_scale: float = Field(1.0, ge=0, description="1 = no guidance (guidance hurt short runs: BENCHMARKS.md)")
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


def run_demo(config: DemoConfig) -> DemoResult:
    """Run every stage on the built-in chest-radiograph phantom; each stage writes its own folder."""
    from synthmed.data.phantom import prepare_phantom
    from synthmed.sample.generate import SampleConfig, sample_images
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
        max_duration_min=config.train_minutes,
        max_steps=config.train_max_steps,
        seed=config.seed,
    )
    model_dir = train(train_config, run_dir=run_dir, resume=(run_dir / "checkpoints").is_dir())
    timings["train_s"] = time.perf_counter() - start

    # Sample, one seed per image (a finished set from an earlier demo run is kept: same model, same seeds).
    start = time.perf_counter()
    samples_dir = out / "samples"
    if not (samples_dir / "manifest.csv").is_file():
        sample_images(
            SampleConfig(
                model_dir=str(model_dir),
                out_dir=str(samples_dir),
                n_per_class=config.samples_per_class,
                sampler=config.sampler,
                guidance_scale=config.guidance_scale,
                seed_start=config.seed,
            )
        )
    timings["sample_s"] = time.perf_counter() - start
    grids = sorted((samples_dir / "grids").glob("*.png"))

    eval_dir = report_path = None
    if config.evaluate:
        from synthmed.evaluate.run import EvalConfig, evaluate
        from synthmed.report.build import build_report

        # Evaluate against the real (phantom) splits, then render the report.
        start = time.perf_counter()
        metrics_path = evaluate(
            EvalConfig(
                real_dir=dataset_dir,
                synthetic_dir=samples_dir,
                out_dir=out / "eval",
                seed=config.seed,
                tstr_seeds=(config.seed,),
                tstr_epochs=config.tstr_epochs,
                explain_images=2,
                lime_samples=100,
                bootstrap_samples=20,
                tstr_overrides={"min_steps": config.tstr_min_steps},
            )
        )
        eval_dir = Path(metrics_path).parent
        timings["evaluate_s"] = time.perf_counter() - start
        report_path = build_report(
            Path(eval_dir), out_path=out / "report.html", title="synthmed demo: chest-radiograph phantom"
        )
    return DemoResult(dataset_dir, run_dir, samples_dir, grids, eval_dir, report_path, timings)
