"""Fine-tune a local Stable Diffusion checkpoint on a prepared dataset (LoRA via peft, or the full UNet)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthmed import __version__
from synthmed.data.captions import make_captions
from synthmed.data.dataset import load_arrays, to_model_range
from synthmed.data.manifest import load_image_set
from synthmed.files import publish_folder
from synthmed.models.interface import ALL_ROWS, TrainableModel, seeded
from synthmed.models.objective import diffusion_loss, draw_noise
from synthmed.textgen.finetune_run import (
    FinetuneConfig,
    FinetuneRunInfo,
    adapted_weights_dir,
    save_adapted_weights,
    write_run_info,
)
from synthmed.textgen.local_sd import check_sd_folder
from synthmed.train.config import RESUMABLE_FIELDS
from synthmed.train.fit import TrainingData, fit
from synthmed.train.run_files import CONFIG_NAME, check_run_folder

log = logging.getLogger(__name__)


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


class LoraDiffusion(TrainableModel):
    """Stable Diffusion's UNet adapted by LoRA layers (or trained whole) as a `TrainableModel`.

    Training batches are (images in [-1, 1], caption token ids); the loss encodes the images with
    the frozen VAE (a posterior sample), empties `caption_dropout` of the captions (CFG), embeds
    them with the frozen text encoder and applies the DDPM objective of the checkpoint's scheduler.
    """

    def __init__(self, sd: SDComponents, *, config: FinetuneConfig, run_info: FinetuneRunInfo, empty_ids):
        from peft import LoraConfig

        sd.vae.requires_grad_(False).eval()
        sd.text_encoder.requires_grad_(False).eval()
        self.sd, self.config, self.run_info, self.empty_ids = sd, config, run_info, empty_ids
        self.network = sd.unet
        if config.mode == "lora":
            self.network.requires_grad_(False)
            with seeded(config.seed):
                self.network.add_adapter(
                    LoraConfig(
                        r=config.lora_rank,
                        lora_alpha=config.lora_alpha or config.lora_rank,
                        init_lora_weights="gaussian",
                        target_modules=list(config.lora_targets),
                    )
                )
        if not self.trainable_parameters():
            raise ValueError(f"no UNet parameter matches the LoRA targets {config.lora_targets}.")
        self.vae_scale = float(getattr(sd.vae.config, "scaling_factor", 0.18215))

    def loss(self, batch, *, generator: torch.Generator, rows: slice = ALL_ROWS) -> dict[str, torch.Tensor]:
        images, ids = batch
        ids = ids.clone()
        ids[torch.rand(len(ids), generator=generator) < self.config.caption_dropout] = self.empty_ids
        vae = self.sd.vae.config
        side = images.shape[-1] // 2 ** (len(vae.block_out_channels) - 1)
        shape = (len(images), vae.latent_channels, side, side)
        eps = torch.randn(shape, generator=generator)
        noise, timesteps = draw_noise(shape, scheduler=self.sd.noise_scheduler, generator=generator)
        device = next(self.network.parameters()).device
        with torch.no_grad():
            moments = self.sd.vae.to(device).encode(images[rows].to(device)).latent_dist
            latents = moments.mean + moments.std * eps[rows].to(device)
            text = self.sd.text_encoder.to(device)(ids[rows].to(device))[0]
        self.sd.noise_scheduler.alphas_cumprod = self.sd.noise_scheduler.alphas_cumprod.to(device)
        loss = diffusion_loss(
            lambda x, t, c: self.network(x, t, encoder_hidden_states=c).sample,
            self.sd.noise_scheduler,
            latents * self.vae_scale,
            text,
            noise=noise[rows],
            timesteps=timesteps[rows],
            snr_gamma=self.config.snr_gamma,
        )
        return {"loss": loss}

    def save(self, folder: Path, *, step: int) -> Path:
        def write(tmp: Path) -> None:
            weights = adapted_weights_dir(tmp, self.config.mode)
            weights.mkdir()
            save_adapted_weights(weights, unet=self.network, mode=self.config.mode)
            write_run_info(tmp, self.run_info.model_copy(update={"steps_done": step}))

        return publish_folder(folder, write)

    def grid(self, *, seed: int) -> None:
        return None  # sample a fine-tune with `synthmed prompt --provider local-sd --lora RUN`


def finetune(config: FinetuneConfig, *, out: str | Path, resume: bool = False) -> Path:
    """Train LoRA layers (or the whole UNet) of the local SD folder `config.checkpoint` on `config.dataset`
    with the one loop; returns RUN (RUN/model holds the adapted weights and finetune.json)."""
    out = Path(out).expanduser()
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("--mixed-precision fp16 needs a CUDA GPU; use bf16 (CPU or GPU) or no.")  # before loading
    if resume and (out / CONFIG_NAME).is_file():
        started = FinetuneConfig.load(out / CONFIG_NAME).checkpoint
        if started != config.checkpoint:
            raise ValueError(f"--resume with another --checkpoint: {out} was started from {started}.")
    check_run_folder(out, config.model_dump(mode="json"), resume=resume, resumable=RESUMABLE_FIELDS)

    # Load the model and the data (before creating the run folder: bad inputs leave nothing behind).
    sd = load_sd_components(config.checkpoint)
    pixels, labels, info = load_arrays(config.dataset, config.split)
    frame = load_image_set(config.dataset, split=config.split)
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
        "fine-tuning on %d images of %s at %d px; first caption: %r",
        len(images),
        config.dataset,
        resolution_px,
        captions[0],
    )
    run_info = FinetuneRunInfo(
        config=config.model_dump(mode="json"),
        base_checkpoint=config.checkpoint,
        dataset=config.dataset,
        classes=list(info.classes),
        synthmed_version=__version__,
    )
    model = LoraDiffusion(sd, config=config, run_info=run_info, empty_ids=empty_ids)
    data = TrainingData(labels=np.asarray(labels), fetch=lambda index: (images[index], caption_ids[index]))
    fit(model, data, config, run_dir=out, resume=resume)
    return out
