"""The training loop: one function, sectioned like EDM's training_loop, parts in sibling modules."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from synthmed.data.dataset import load_arrays, to_model_range
from synthmed.files import portable_name
from synthmed.models.device import launched_without_gpu
from synthmed.models.sampling import default_sampler
from synthmed.models.unet import build_scheduler, build_unet, publish_model_folder
from synthmed.train.batches import balanced_batch_indices, batch_indices
from synthmed.train.checkpoint import latest_checkpoint, load_checkpoint, remove_partial_checkpoints, save_checkpoint
from synthmed.train.config import TrainConfig, resolve_mixed_precision
from synthmed.train.grids import class_grid, save_png_atomic
from synthmed.train.objective import diffusion_loss, draw_noise, drop_labels
from synthmed.train.steps import ema_weights, optimizer_step

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
STATS_NAME = "stats.jsonl"
LOG_NAME = "log.txt"
MODEL_DIR = "model"


def lr_factor(config: TrainConfig, *, step: int, progress: float) -> float:
    """Linear warmup over `lr_warmup_steps`, then constant or cosine decay to `lr_min_ratio` over the budget."""
    warm = min(1.0, (step + 1) / max(1, config.lr_warmup_steps))
    if config.lr_schedule == "constant":
        return warm
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return warm * (config.lr_min_ratio + (1 - config.lr_min_ratio) * cosine)


def budget_progress(config: TrainConfig, *, step: int, elapsed_s: float) -> float:
    """Fraction of the budget used: the larger of steps/max_steps and time/max_duration (1.0 = done)."""
    fractions = []
    if config.max_steps is not None:
        fractions.append(step / config.max_steps)
    if config.max_duration_min is not None:
        fractions.append(elapsed_s / (60 * config.max_duration_min))
    return max(fractions)


def train(config: TrainConfig, *, run_dir: str | Path, resume: bool = False) -> Path:
    """Train a class-conditional diffusion model; returns RUN/model (EMA weights, enough to sample).

    `resume=True` continues from RUN's newest complete checkpoint (model, EMA, optimizer, step,
    elapsed time, RNG state; the data order is a function of seed and step). Budgets count across
    sessions. Multi-GPU/multi-node: launch the CLI with `accelerate launch` (batch_size is per process).
    """
    # Check the run folder and the data before writing anything.
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_NAME
    if config_path.is_file() and not resume:
        raise FileExistsError(
            f"{run_dir} already holds a training run; pass --resume to continue it or choose a new --out folder."
        )
    if config_path.is_file() and TrainConfig.load(config_path).model != config.model:
        raise ValueError(
            f"{run_dir} was trained with a different model config; resume with the same preset/"
            f"dataset or choose a new --out folder."
        )
    pixels, labels, info = load_arrays(config.dataset, config.split)  # uint8, held in memory
    _check_data(config, pixels, labels, info.classes)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(config.mixed_precision), cpu=launched_without_gpu()
    )
    main_process = accelerator.is_main_process
    log_handler = _attach_log_file(run_dir / LOG_NAME) if main_process else None
    if main_process:
        config.save(config_path)

    try:
        images = torch.from_numpy(pixels)
        label_tensor = torch.from_numpy(np.array(labels, dtype=np.int64))
        logger.info(
            "training on %d images of %s (%s), classes %s", len(labels), config.dataset, config.split, info.classes
        )

        # Construct network, noise schedule, optimizer, EMA.
        with torch.random.fork_rng(devices=[]):  # initial weights from config.seed; global RNG left untouched
            torch.manual_seed(config.seed)
            unet = build_unet(config.model).train()
        scheduler = build_scheduler(config.model)
        optimizer = torch.optim.AdamW(
            unet.parameters(), lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay
        )
        ema = EMAModel(
            unet.parameters(),
            decay=config.ema_max_decay,
            use_ema_warmup=True,
            inv_gamma=config.ema_inv_gamma,
            power=config.ema_power,
            foreach=True,
        )
        # One random stream, the same in every process: each draws for the global batch and keeps its rows.
        generator = torch.Generator().manual_seed(config.seed * 1000)
        step, elapsed_before_s = 0, 0.0

        # Resume from the last complete checkpoint.
        remove_partial_checkpoints(run_dir)
        checkpoint = latest_checkpoint(run_dir) if resume else None
        if checkpoint is not None:
            online, state = load_checkpoint(checkpoint)
            unet.load_state_dict(online)
            optimizer.load_state_dict(state["optimizer"])
            ema.load_state_dict(state["ema"])
            generator.set_state(state["rng"])
            step, elapsed_before_s = int(state["step"]), float(state["elapsed_s"])
            logger.info("resumed from %s (step %d, %.0f s trained)", checkpoint, step, elapsed_before_s)
        elif resume:
            logger.info("--resume: no checkpoint in %s yet, starting from step 0", run_dir)
        unet, optimizer = accelerator.prepare(unet, optimizer)
        raw_unet = accelerator.unwrap_model(unet)
        params = list(raw_unet.parameters())  # shared with the wrapped (DDP) module
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(accelerator.device)

        # Training loop.
        session_start = time.perf_counter()
        elapsed_s = lambda: elapsed_before_s + time.perf_counter() - session_start  # noqa: E731
        last_ckpt_step, last_ckpt_s = step, elapsed_s()
        window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
        stats = open(run_dir / STATS_NAME, "a") if main_process else None
        _write_stats(stats, {"event": "resume" if step else "start", "step": step, "wall_s": round(elapsed_s(), 3)})
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
            # Draw this step's global batch and its randomness (flips, label dropout, noise, timesteps) alike in
            # every process, then keep this process's rows: N processes train as 1 at the same global batch.
            if config.class_balance_power > 0:
                index = balanced_batch_indices(
                    labels, config.batch_size * world, seed=config.seed, step=step, power=config.class_balance_power
                )
            else:
                index = batch_indices(len(labels), config.batch_size * world, seed=config.seed, step=step)
            mine = slice(accelerator.process_index, None, world)
            clean = to_model_range(images[index[mine]]).to(accelerator.device)
            if config.hflip:
                flip = (torch.rand(len(index), generator=generator) < 0.5)[mine]
                clean = torch.where(flip.view(-1, 1, 1, 1).to(clean.device), clean.flip(-1), clean)
            cond = drop_labels(
                label_tensor[index],
                null_class=config.model.null_class,
                prob=config.model.class_dropout_prob,
                generator=generator,
            )[mine].to(accelerator.device)
            noise, timesteps = draw_noise((len(index), *clean.shape[1:]), scheduler=scheduler, generator=generator)

            # Optimise one step.
            lr = config.lr * lr_factor(
                config, step=step, progress=budget_progress(config, step=step, elapsed_s=elapsed_s())
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = diffusion_loss(
                unet, scheduler, clean, cond, noise=noise[mine], timesteps=timesteps[mine], snr_gamma=config.snr_gamma
            )
            optimizer_step(accelerator, optimizer, params, loss, clip_norm=config.grad_clip_norm, ema=ema)
            step += 1
            bar.update(1)

            # Log statistics.
            window_loss += float(loss.detach())
            window_steps += 1
            if step % config.log_every_steps == 0:
                now = time.perf_counter()
                record = {
                    "step": step,
                    "loss": window_loss / window_steps,
                    "lr": lr,
                    "images_per_s": window_steps * config.batch_size * world / (now - window_start),
                    "wall_s": round(elapsed_s(), 3),
                    "ema_decay": ema.cur_decay_value,
                }
                _write_stats(stats, record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", ips=f"{record['images_per_s']:.0f}")
                window_loss, window_steps, window_start = 0.0, 0, now

            # Save a sample grid.
            if config.sample_every_steps and step % config.sample_every_steps == 0 and main_process:
                _save_grid(run_dir, raw_unet, ema, scheduler, config, step, accelerator.device)

            # Save a checkpoint.
            due = step - last_ckpt_step >= config.checkpoint_every_steps or (
                config.checkpoint_every_min is not None
                and elapsed_s() - last_ckpt_s >= 60 * config.checkpoint_every_min
            )
            if due:
                _checkpoint(accelerator, run_dir, step, raw_unet, ema, optimizer, generator, elapsed_s(), config)
                last_ckpt_step, last_ckpt_s = step, elapsed_s()
        bar.close()

        # Save the final checkpoint, the model folder and a grid.
        if latest_checkpoint(run_dir) is None or step != last_ckpt_step:
            _checkpoint(accelerator, run_dir, step, raw_unet, ema, optimizer, generator, elapsed_s(), config)
        model_dir = run_dir / MODEL_DIR
        if main_process:
            with ema_weights(ema, raw_unet.parameters()):
                publish_model_folder(
                    model_dir,
                    unet=raw_unet,
                    config=config.model,
                    extra={"step": step, "weights": "ema", "dataset": portable_name(config.dataset, parts=1)},
                )
            _save_grid(run_dir, raw_unet, ema, scheduler, config, step, accelerator.device)
            _write_stats(stats, {"event": "end", "step": step, "wall_s": round(elapsed_s(), 3)})
            if stats is not None:
                stats.close()
            logger.info("trained %d steps in %.1f min; model in %s", step, elapsed_s() / 60, model_dir)
        accelerator.wait_for_everyone()
        return model_dir
    finally:
        if log_handler is not None:
            logging.getLogger("synthmed").removeHandler(log_handler)
            log_handler.close()


def _check_data(config: TrainConfig, pixels: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    channels, size = pixels.shape[1], pixels.shape[2]
    if channels != config.model.in_channels:
        raise ValueError(
            f"{config.dataset} has {channels}-channel images but the model expects "
            f"{config.model.in_channels}; build the config with train_config_for_dataset()."
        )
    if size != config.model.image_size_px or pixels.shape[3] != size:
        raise ValueError(
            f"{config.dataset} has {pixels.shape[2]}x{pixels.shape[3]} px images but the model is "
            f"for {config.model.image_size_px} px; re-prepare with --size {config.model.image_size_px}."
        )
    if len(classes) != config.model.num_classes or labels.min() < 0 or labels.max() >= config.model.num_classes:
        raise ValueError(
            f"{config.dataset} has classes {classes} (label_idx {labels.min()}..{labels.max()}) but "
            f"the model has {config.model.num_classes} classes."
        )


def _checkpoint(accelerator, run_dir, step, unet, ema, optimizer, generator, elapsed_s, config) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        path = save_checkpoint(
            run_dir,
            step=step,
            unet=unet,
            ema=ema,
            optimizer=optimizer,
            state={"rng": generator.get_state(), "elapsed_s": elapsed_s},
            model_config=config.model,
            keep=config.keep_checkpoints,
        )
        logger.info("checkpoint %s", path)


def _save_grid(run_dir, unet, ema, scheduler, config, step, device) -> None:
    with ema_weights(ema, unet.parameters()):
        image = class_grid(
            unet,
            scheduler,
            config.model,
            per_class=config.grid_per_class,
            steps=config.grid_sampler_steps,
            sampler=default_sampler(scheduler),
            seed=config.seed,
            device=device,
        )
    save_png_atomic(image, run_dir / "grids" / f"step-{step:06d}.png")


def _write_stats(handle, record: dict) -> None:
    if handle is not None:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("synthmed")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
