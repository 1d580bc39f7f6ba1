"""The latent family as a `DenoisingModel`: the latent UNet + the frozen autoencoder that decodes its samples."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from synthmed.files import publish_folder
from synthmed.latent.autoencoder import load_autoencoder
from synthmed.latent.model import (
    LatentDenoiser,
    LatentModelConfig,
    build_scheduler,
    load_latent_model,
    save_latent_model,
)
from synthmed.latent.text import embed_captions, load_text_encoder
from synthmed.models.interface import ALL_ROWS, Condition, DenoisingModel, seeded
from synthmed.models.objective import draw_noise, loss_on_rows
from synthmed.models.sampling import is_flow_model

METADATA_KEYS = ("age", "sex", "view")


def default_latent_sampler(scheduler) -> str:
    """ddim for diffusion latent models (their default since the start), flow_euler for flow matching."""
    return "flow_euler" if is_flow_model(scheduler) else "ddim"


class LatentDiffusion(DenoisingModel):
    """Denoises autoencoder latents conditioned on {"labels", "age"/"sex"/"view", "text"?, "drop"}.

    Training batches are (latent means, latent stds, condition): the loss draws a latent from the
    posterior, drops every condition of a row with `condition_dropout_prob` (CFG), and applies the
    DDPM objective (min-SNR weighted when `snr_gamma` is set).
    """

    def __init__(self, network: LatentDenoiser, *, vae, scaling_factor: float, null_text=None, scheduler=None):
        self.config: LatentModelConfig = network.config
        self.network = network
        self.scheduler = scheduler if scheduler is not None else build_scheduler(self.config)
        self.vae = vae.requires_grad_(False).eval()
        self.scaling_factor = scaling_factor
        self.null_text = null_text  # [1, tokens, width]: the empty caption (text-conditioned models)
        self.snr_gamma: float | None = None
        self.conditions: pd.DataFrame | None = None  # training labels + metadata, saved with the model
        self.grid_per_class, self.grid_steps = 4, 20
        self.class_names = self.config.class_names or [str(i) for i in range(self.config.num_classes)]
        size = self.config.latent_size
        self.sample_shape = (self.config.latent_channels, size, size)

    @classmethod
    def create(cls, config: LatentModelConfig, *, seed: int, vae, scaling_factor: float, null_text=None):
        """A freshly initialised denoiser (weights from `seed`; torch's global RNG left untouched)."""
        with seeded(seed):
            network = LatentDenoiser(config)
        return cls(network.train(), vae=vae, scaling_factor=scaling_factor, null_text=null_text)

    @classmethod
    def load(cls, run: str | Path, *, device: str | torch.device = "cpu") -> tuple[LatentDiffusion, tuple | None]:
        """(model, (tokenizer, text encoder) or None) of a `synthmed latent train` run folder."""
        run = Path(run)
        network, scheduler = load_latent_model(run / "model")
        vae, ae_config = load_autoencoder(run / "autoencoder")
        text = null_text = None
        if network.uses_text:
            text = load_text_encoder(run / "text")
            table, _ = embed_captions([""], tokenizer=text[0], encoder=text[1])
            null_text = table[-1:]
        model = cls(network, vae=vae, scaling_factor=ae_config.scaling_factor, null_text=null_text, scheduler=scheduler)
        model.network.to(device)
        model.vae.to(device)
        return model, text

    def loss(self, batch, *, generator: torch.Generator, rows: slice = ALL_ROWS) -> dict[str, torch.Tensor]:
        mean, std, condition = batch
        latents = (mean + std * torch.randn(mean.shape, generator=generator)) * self.scaling_factor
        drop = torch.rand(len(mean), generator=generator) < self.config.condition_dropout_prob
        draw = draw_noise(latents.shape, scheduler=self.scheduler, generator=generator)
        return loss_on_rows(
            self, latents, self._dropped(condition, drop), draw=draw, rows=rows, snr_gamma=self.snr_gamma
        )

    def save(self, folder: Path, *, step: int) -> Path:
        return publish_folder(
            folder,
            lambda tmp: save_latent_model(tmp, model=self.network, conditions=self.conditions, extra={"step": step}),
        )

    def grid(self, *, seed: int) -> Image.Image | None:
        from synthmed.models.preview import class_grid

        self.vae.to(next(self.network.parameters()).device)
        sampler = default_latent_sampler(self.scheduler)
        return class_grid(self, per_class=self.grid_per_class, steps=self.grid_steps, seed=seed, sampler=sampler)

    def predict(self, x: torch.Tensor, t: torch.Tensor, condition: Condition) -> torch.Tensor:
        metadata = {k: condition[k] for k in METADATA_KEYS if k in condition}
        t = t.expand(len(x)).to(x.device) if t.dim() == 0 else t
        return self.network(x, t, condition["labels"], metadata, condition["drop"], condition.get("text"))

    def null_condition(self, condition: Condition) -> Condition:
        return self._dropped(condition, torch.ones(len(condition["labels"]), dtype=torch.bool))

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(x / self.scaling_factor).sample.clamp(-1, 1)

    def class_condition(self, labels: torch.Tensor) -> Condition:
        """Class only: metadata unknown, text the empty caption."""
        n = len(labels)
        condition = {"labels": labels, "drop": torch.zeros(n, dtype=torch.bool)}
        spec = self.config.metadata
        if spec.age:
            condition["age"] = torch.zeros(n, 2)
        for key, values in (("sex", spec.sex_values), ("view", spec.view_values)):
            if values:
                condition[key] = torch.zeros(n, dtype=torch.long)
        if self.null_text is not None:
            condition["text"] = self.null_text.expand(n, *self.null_text.shape[1:])
        return condition

    def _dropped(self, condition: Condition, drop: torch.Tensor) -> Condition:
        """`condition` with rows `drop` made unconditional (null class/metadata via `drop`, empty caption)."""
        out = {**condition, "drop": drop.to(condition["labels"].device)}
        if "text" in condition and self.null_text is not None:
            null = self.null_text.to(condition["text"].device).expand_as(condition["text"])
            out["text"] = torch.where(out["drop"][:, None, None], null, condition["text"])
        return out
