"""Fine-tune a local Stable Diffusion checkpoint on a prepared dataset (LoRA via peft, or the full UNet)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from synthmed import __version__
from synthmed.data.captions import make_captions
from synthmed.data.dataset import load_arrays, to_model_range
from synthmed.data.manifest import load_image_set
from synthmed.files import publish_folder
from synthmed.models.weights import load_torch_file
from synthmed.textgen.finetune_run import (
    RUN_INFO_NAME,
    FinetuneConfig,
    FinetuneRunInfo,
    adapted_weights_dir,
    read_run_info,
    save_adapted_weights,
    write_run_info,
)
from synthmed.textgen.local_sd import check_sd_folder
from synthmed.train.run_files import (
    TRAIN_STATE_NAME,
    append_stats,
    atomic_torch_save,
    latest_checkpoint,
    make_accelerator,
    prune_checkpoints,
    releases_accelerator,
    step_dir,
)
from synthmed.train.steps import ema_weights, optimizer_step

log = logging.getLogger(__name__)

RESUMABLE_CHANGES = {"max_steps", "checkpoint_every_steps", "log_every_steps", "keep_checkpoints"}


@dataclass
class SDComponents:
    """The parts of a Stable Diffusion folder that training touches."""

    tokenizer: Any  # transformers CLIPTokenizer
    text_encoder: Any  # transformers CLIPTextModel
    vae: Any  # diffusers AutoencoderKL
    unet: Any  # diffusers UNet2DConditionModel
    noise_scheduler: Any  # diffusers DDPMScheduler


def load_sd_components(checkpoint: str | Path) -> SDComponents:
    """Tokenizer, text encoder, VAE, UNet and training noise schedule from a local diffusers folder."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = check_sd_folder(checkpoint)
    return SDComponents(
        tokenizer=CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True),
        text_encoder=CLIPTextModel.from_pretrained(str(folder / "text_encoder"), local_files_only=True),
        vae=AutoencoderKL.from_pretrained(str(folder / "vae"), local_files_only=True),
        unet=UNet2DConditionModel.from_pretrained(str(folder / "unet"), local_files_only=True),
        noise_scheduler=DDPMScheduler.from_config(DDPMScheduler.load_config(str(folder / "scheduler"))),
    )


def prepare_training_images(pixels, *, channels: int, resolution_px: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [-1, 1] [N, channels, R, R] (grey repeated to RGB for SD's VAE)."""
    images = to_model_range(torch.from_numpy(pixels))
    if images.shape[1] != channels:
        images = images.repeat(1, channels, 1, 1) if images.shape[1] == 1 else images.mean(1, keepdim=True)
    if images.shape[-1] != resolution_px or images.shape[-2] != resolution_px:
        images = F.interpolate(
            images, size=(resolution_px, resolution_px), mode="bilinear", antialias=True, align_corners=False
        ).clamp(-1, 1)
    return images


def _check_run_folder(out: Path, *, config: FinetuneConfig, checkpoint: str | Path, resume: bool) -> int:
    """Steps already done (0 for a new run); refuses to mix a new run into an old folder."""
    if not (out / RUN_INFO_NAME).is_file():
        if resume:
            raise FileNotFoundError(f"--resume given but {out / RUN_INFO_NAME} does not exist; drop --resume to start.")
        return 0
    if not resume:
        raise FileExistsError(
            f"{out} already holds a fine-tuning run; pass --resume to continue it or choose a new --out."
        )
    saved = read_run_info(out)
    if Path(saved.base_checkpoint) != Path(checkpoint).resolve():
        raise ValueError(f"--resume with another --checkpoint: {out} was started from {saved.base_checkpoint}.")
    old = saved.config.model_dump()
    changed = {k for k, v in config.model_dump().items() if old.get(k) != v} - RESUMABLE_CHANGES
    if changed:
        raise ValueError(
            f"--resume with changed settings {sorted(changed)}: a run can only be continued with "
            f"the settings it started with (only {sorted(RESUMABLE_CHANGES)} may change)."
        )
    return saved.steps_done


@releases_accelerator
def finetune(
    dataset: str | Path, *, checkpoint: str | Path, out: str | Path, config: FinetuneConfig, resume: bool = False
) -> Path:
    """Train LoRA layers (or the whole UNet) of a local SD checkpoint on `dataset`; returns the run folder."""
    from diffusers.training_utils import EMAModel
    from peft import LoraConfig

    out = Path(out).expanduser()
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("--mixed-precision fp16 needs a CUDA GPU; use bf16 (CPU or GPU) or no.")  # before loading
    _check_run_folder(out, config=config, checkpoint=checkpoint, resume=resume)

    # Load the model and the data (before creating the run folder: bad inputs leave nothing behind).
    sd = load_sd_components(checkpoint)
    pixels, _, info = load_arrays(dataset, config.split)
    frame = load_image_set(dataset, split=config.split)
    captions = make_captions(frame, template=config.caption_template, modality=info.modality)
    resolution_px = config.resolution_px or int(sd.unet.config.sample_size) * 2 ** (
        len(sd.vae.config.block_out_channels) - 1
    )
    images = prepare_training_images(pixels, channels=int(sd.vae.config.in_channels), resolution_px=resolution_px)
    tokens = sd.tokenizer(
        captions + [""],
        padding="max_length",
        max_length=sd.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    caption_ids, empty_ids = tokens[:-1], tokens[-1]
    log.info(
        "fine-tuning on %d images of %s at %d px; first caption: %r", len(images), dataset, resolution_px, captions[0]
    )
    out.mkdir(parents=True, exist_ok=True)

    # Choose what trains.
    sd.vae.requires_grad_(False).eval()
    sd.text_encoder.requires_grad_(False).eval()
    unet = sd.unet
    if config.mode == "lora":
        unet.requires_grad_(False)
        unet.add_adapter(
            LoraConfig(
                r=config.lora_rank,
                lora_alpha=config.lora_alpha or config.lora_rank,
                init_lora_weights="gaussian",
                target_modules=list(config.lora_targets),
            )
        )
    named = [(n, p) for n, p in unet.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"no UNet parameter matches the LoRA targets {config.lora_targets}.")
    params = [p for _, p in named]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-2 if config.mode == "full" else 0.0)
    ema = EMAModel(params, decay=config.ema_decay) if config.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(config.seed)

    # Resume.
    start_step = 0
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_torch_file(ckpt / TRAIN_STATE_NAME, fix=f"delete the damaged checkpoint {ckpt} and resume again")
        with torch.no_grad():
            for name, param in named:
                param.copy_(state["trainable"][name])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        generator.set_state(state["generator"])
        start_step = int(state["step"])
        log.info("resumed from %s (step %d)", ckpt, start_step)

    accelerator = make_accelerator(config.mixed_precision)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    device = accelerator.device
    sd.vae.to(device)
    sd.text_encoder.to(device)
    unet.train()
    run_info = FinetuneRunInfo(
        config=config,
        base_checkpoint=str(Path(checkpoint).resolve()),
        dataset=str(Path(dataset).resolve()),
        classes=list(info.classes),
        steps_done=start_step,
        synthmed_version=__version__,
    )
    write_run_info(out, run_info)

    def save(step: int) -> None:
        """Checkpoint the training state, publish the (EMA) adapted weights, record the step."""
        state = {
            "step": step,
            "trainable": {n: p.detach().cpu() for n, p in named},
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "ema": ema.state_dict() if ema is not None else {},
        }
        atomic_torch_save(state, step_dir(out, step) / TRAIN_STATE_NAME)
        prune_checkpoints(out, keep=config.keep_checkpoints)
        with ema_weights(ema, params):
            publish_folder(
                adapted_weights_dir(out, config.mode),
                lambda tmp: save_adapted_weights(tmp, unet=accelerator.unwrap_model(unet), mode=config.mode),
            )
        write_run_info(out, run_info.model_copy(update={"steps_done": step}))

    # Train.
    scheduler = sd.noise_scheduler
    vae_scale = float(getattr(sd.vae.config, "scaling_factor", 0.18215))
    started = time.perf_counter()
    progress = tqdm(
        range(start_step, config.max_steps),
        initial=start_step,
        total=config.max_steps,
        desc=f"finetune ({config.mode})",
        unit="step",
    )
    for step in progress:
        index = torch.randint(len(images), (config.batch_size,), generator=generator)
        ids = caption_ids[index].clone()
        ids[torch.rand(config.batch_size, generator=generator) < config.caption_dropout] = empty_ids
        with torch.no_grad():
            moments = sd.vae.encode(images[index].to(device)).latent_dist
            latents = moments.mean + moments.std * torch.randn(moments.mean.shape, generator=generator).to(device)
            latents = latents * vae_scale
            text = sd.text_encoder(ids.to(device))[0]
        noise = torch.randn(latents.shape, generator=generator).to(device)
        timesteps = torch.randint(
            0, scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator
        ).to(device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        target = (
            noise
            if scheduler.config.prediction_type == "epsilon"
            else scheduler.get_velocity(latents, noise, timesteps)
        )
        with accelerator.autocast():
            prediction = unet(noisy, timesteps, encoder_hidden_states=text).sample
        loss = F.mse_loss(prediction.float(), target.float())
        optimizer_step(accelerator, optimizer, params, loss, clip_norm=1.0, ema=ema)
        done = step + 1
        if done % config.log_every_steps == 0 or done == config.max_steps:
            append_stats(out, {"step": done, "loss": loss.item(), "elapsed_s": time.perf_counter() - started})
            progress.set_postfix(loss=f"{loss.item():.4f}")
        if done % config.checkpoint_every_steps == 0 or done == config.max_steps:
            save(done)
    if start_step >= config.max_steps:
        log.info("%s already has %d of %d steps; nothing to do", out, start_step, config.max_steps)
    return out
