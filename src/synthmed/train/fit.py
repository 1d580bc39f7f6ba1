"""The one training loop every family uses: one function, sectioned like EDM's training_loop.

A family builds its model (a `TrainableModel`) and its data (`TrainingData`), then calls `fit`.
The loop owns budgets (steps and wall clock), class-balanced data order, the LR schedule, EMA,
gradient clipping, crash-safe checkpoints with exact resume, stats.jsonl + trackers, grids.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from synthmed.models.interface import TrainableModel, load_trainable_state
from synthmed.models.preview import save_png_atomic
from synthmed.train.batches import balanced_batch_indices, batch_indices
from synthmed.train.checkpoint import latest_checkpoint, load_checkpoint, remove_partial_checkpoints, save_checkpoint
from synthmed.train.config import RESUMABLE_FIELDS, LoopConfig, resolve_mixed_precision
from synthmed.train.run_files import (
    CONFIG_NAME,
    LOG_NAME,
    MODEL_DIR,
    STATS_NAME,
    append_stats,
    attach_log_file,
    check_run_folder,
    make_accelerator,
    reset_accelerate_state,
)
from synthmed.train.steps import ema_weights, optimizer_step

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """What the loop draws from: one class index per item (for class balance) and a batch reader."""

    labels: np.ndarray
    fetch: Callable[[np.ndarray], Any]  # item indices -> the batch `model.loss` takes


def lr_factor(config: LoopConfig, *, step: int, progress: float) -> float:
    """Linear warmup over `lr_warmup_steps`, then constant or cosine decay to `lr_min_ratio` over the budget."""
    warm = min(1.0, (step + 1) / max(1, config.lr_warmup_steps))
    if config.lr_schedule == "constant":
        return warm
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return warm * (config.lr_min_ratio + (1 - config.lr_min_ratio) * cosine)


def budget_progress(config: LoopConfig, *, step: int, elapsed_s: float, for_schedule: bool = False) -> float:
    """Fraction of the budget used: the larger of steps/max_steps and time/max_duration (1.0 = done).

    `for_schedule`: the progress the LR schedule follows, steps alone when the duration is only a cap.
    """
    if for_schedule and config.duration_is_cap and config.max_steps is not None:
        return step / config.max_steps
    fractions = []
    if config.max_steps is not None:
        fractions.append(step / config.max_steps)
    if config.max_duration_min is not None:
        fractions.append(elapsed_s / (60 * config.max_duration_min))
    return max(fractions)


def fit(
    model: TrainableModel, data: TrainingData, config: LoopConfig, *, run_dir: str | Path, resume=False, about=""
) -> Path:
    """Train `model` on `data` into RUN; returns RUN/model (the family's model folder, EMA weights).

    `about`: a line that says what is trained (data, objective), logged to the console and RUN/log.txt.

    `resume=True` continues from RUN's newest complete checkpoint (online weights, optimizer, EMA,
    step, elapsed time, RNG state; the data order is a function of seed and step), so a run killed
    at any moment and resumed ends with the same weights. Budgets count across sessions.
    Multi-GPU: `accelerate launch` (batch_size is per process; each process takes its slice).
    """
    # Check the run folder before writing anything.
    run_dir = Path(run_dir)
    check_run_folder(run_dir, config.model_dump(mode="json"), resume=resume, resumable=RESUMABLE_FIELDS)
    if len(data.labels) == 0:
        raise ValueError("the training split has no images; check the dataset's manifest.csv (split column).")
    accelerator = make_accelerator(
        resolve_mixed_precision(config.mixed_precision), log_with=config.log_with, project_dir=run_dir
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()  # every process has checked the folder before the main one writes into it
    main_process = accelerator.is_main_process
    log_handler = attach_log_file(run_dir / LOG_NAME) if main_process else None
    if main_process:
        config.save(run_dir / CONFIG_NAME)
        if about:
            logger.info("%s", about)
    stats = None
    try:
        # Optimizer, EMA, random stream.
        params = model.trainable_parameters()
        optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay)
        ema = _make_ema(params, config)
        # One random stream, the same in every process: each draws for the global batch and keeps its rows.
        generator = torch.Generator().manual_seed(config.seed * 1000)
        step, elapsed_before_s = 0, 0.0

        # Resume from the last complete checkpoint.
        remove_partial_checkpoints(run_dir)
        checkpoint = latest_checkpoint(run_dir) if resume else None
        if checkpoint is not None:
            online, state = load_checkpoint(checkpoint)
            fix = f"delete {checkpoint} to resume from the one before it, or start a new --out folder"
            load_trainable_state(model.network, online, fix=fix)
            optimizer.load_state_dict(state["optimizer"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            generator.set_state(state["rng"])
            _check_global_batch(state, config, world=accelerator.num_processes, checkpoint=checkpoint)
            step, elapsed_before_s = int(state["step"]), float(state["elapsed_s"])
            logger.info("resumed from %s (step %d, %.0f s trained)", checkpoint, step, elapsed_before_s)
        elif resume:
            logger.info("--resume: no checkpoint in %s yet, starting from step 0", run_dir)
        raw_network = model.network
        model.network, optimizer = accelerator.prepare(raw_network, optimizer)
        if ema is not None:
            ema.to(accelerator.device)
        if config.log_with != "none":
            flat = {k: v for k, v in config.model_dump(mode="json").items() if isinstance(v, int | float | str | bool)}
            accelerator.init_trackers("synthmed", config=flat)

        # Training loop.
        session_start = time.perf_counter()
        elapsed_s = lambda: elapsed_before_s + time.perf_counter() - session_start  # noqa: E731
        last_ckpt_step, last_ckpt_s = step, elapsed_s()
        window: dict[str, float] = {}
        window_steps, window_start = 0, time.perf_counter()
        stats = open(run_dir / STATS_NAME, "a") if main_process else None
        append_stats(stats, {"event": "resume" if step else "start", "step": step, "wall_s": round(elapsed_s(), 3)})
        bar = tqdm(
            total=config.max_steps,
            initial=step,
            desc="train",
            unit="step",
            disable=not main_process,
            dynamic_ncols=True,
        )
        world = accelerator.num_processes
        while budget_progress(config, step=step, elapsed_s=elapsed_s()) < 1.0:
            # Draw this step's global batch; every process draws its randomness alike and keeps its rows,
            # so N processes train as 1 at the same global batch.
            index = _batch_index(data.labels, config, step=step, size=config.batch_size * world)
            batch, mine = data.fetch(index), slice(accelerator.process_index, None, world)

            # Optimise one step.
            progress = budget_progress(config, step=step, elapsed_s=elapsed_s(), for_schedule=True)
            lr = config.lr * lr_factor(config, step=step, progress=progress)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with accelerator.autocast():
                losses = model.loss(batch, generator=generator, rows=mine)
            optimizer_step(accelerator, optimizer, params, losses["loss"], clip_norm=config.grad_clip_norm, ema=ema)
            step += 1
            bar.update(1)
            finished = budget_progress(config, step=step, elapsed_s=elapsed_s()) >= 1.0

            # Log statistics.
            for name, value in losses.items():
                window[name] = window.get(name, 0.0) + float(value.detach())
            window_steps += 1
            if step % config.log_every_steps == 0 or finished:
                now = time.perf_counter()
                record = {name: total / window_steps for name, total in window.items()}
                record |= {
                    "step": step,
                    "lr": lr,
                    "images_per_s": window_steps * config.batch_size * world / (now - window_start),
                    "wall_s": round(elapsed_s(), 3),
                }
                if ema is not None:
                    record["ema_decay"] = ema.cur_decay_value
                append_stats(stats, record)
                if config.log_with != "none":
                    accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
                bar.set_postfix(loss=f"{record['loss']:.4f}", ips=f"{record['images_per_s']:.0f}")
                window, window_steps, window_start = {}, 0, now

            # Save a preview grid.
            if config.sample_every_steps and step % config.sample_every_steps == 0 and main_process:
                with _raw(model, raw_network):
                    _save_grid(run_dir, model, ema, config, step)

            # Save a checkpoint.
            due = step - last_ckpt_step >= config.checkpoint_every_steps or (
                config.checkpoint_every_min is not None
                and elapsed_s() - last_ckpt_s >= 60 * config.checkpoint_every_min
            )
            if due:
                with _raw(model, raw_network):
                    _checkpoint(accelerator, run_dir, step, model, ema, optimizer, generator, elapsed_s(), config)
                last_ckpt_step, last_ckpt_s = step, elapsed_s()
        bar.close()

        # Save the final checkpoint, the model folder and a grid.
        model.network = raw_network
        if latest_checkpoint(run_dir) is None or step != last_ckpt_step:
            _checkpoint(accelerator, run_dir, step, model, ema, optimizer, generator, elapsed_s(), config)
        model_dir = run_dir / MODEL_DIR
        if main_process:
            with ema_weights(ema, params):
                model.save(model_dir, step=step)
            _save_grid(run_dir, model, ema, config, step)
            append_stats(stats, {"event": "end", "step": step, "wall_s": round(elapsed_s(), 3)})
            logger.info("trained %d steps in %.1f min; model in %s", step, elapsed_s() / 60, model_dir)
        accelerator.wait_for_everyone()
        if config.log_with != "none":
            accelerator.end_training()
        return model_dir
    finally:
        if stats is not None:
            stats.close()
        if log_handler is not None:
            logging.getLogger("synthmed").removeHandler(log_handler)
            log_handler.close()
        if accelerator.num_processes == 1:
            reset_accelerate_state()  # leave the process free for another precision (tests, notebooks)


def _check_global_batch(state: dict, config: LoopConfig, *, world: int, checkpoint: Path) -> None:
    """A resumed run keeps its global batch (batch_size x processes); the process count may change."""
    trained = int(state.get("global_batch", config.batch_size * world))  # older checkpoints did not record it
    if trained != config.batch_size * world:
        raise ValueError(
            f"{checkpoint} was trained with a global batch of {trained} images per step; on {world} process(es) "
            f"resume with --batch-size {trained / world:g} (per process), or train into a new --out folder."
        )


def _make_ema(params: list[torch.nn.Parameter], config: LoopConfig):
    if config.ema_max_decay <= 0:
        return None
    from diffusers.training_utils import EMAModel

    return EMAModel(
        params,
        decay=config.ema_max_decay,
        use_ema_warmup=True,
        inv_gamma=config.ema_inv_gamma,
        power=config.ema_power,
        foreach=True,
    )


def _batch_index(labels: np.ndarray, config: LoopConfig, *, step: int, size: int) -> np.ndarray:
    if config.class_balance_power > 0:
        return balanced_batch_indices(labels, size, seed=config.seed, step=step, power=config.class_balance_power)
    return batch_indices(len(labels), size, seed=config.seed, step=step)


@contextmanager
def _raw(model: TrainableModel, raw_network: torch.nn.Module) -> Iterator[None]:
    """Inside the block `model.network` is the unwrapped module (saving, sampling), the prepared one after."""
    prepared, model.network = model.network, raw_network
    try:
        yield
    finally:
        model.network = prepared


def _checkpoint(accelerator, run_dir, step, model, ema, optimizer, generator, elapsed_s, config) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        path = save_checkpoint(
            run_dir,
            step=step,
            model=model,
            ema=ema,
            optimizer=optimizer,
            state={
                "rng": generator.get_state(),
                "elapsed_s": elapsed_s,
                "global_batch": config.batch_size * accelerator.num_processes,
            },
            keep=config.keep_checkpoints,
        )
        logger.info("checkpoint %s", path)


def _save_grid(run_dir: Path, model: TrainableModel, ema, config: LoopConfig, step: int) -> None:
    with ema_weights(ema, model.trainable_parameters()):
        image = model.grid(seed=config.seed)
    if image is not None:
        save_png_atomic(image, run_dir / "grids" / f"step-{step:06d}.png")
