"""The latent denoiser: a diffusers UNet2DModel on autoencoder latents, conditioned on class + metadata.

RUN/model/config.json            {"format": "synthmed-latent-v1", "model": LatentModelConfig}
RUN/model/model.safetensors      (EMA) weights of LatentDenoiser
RUN/model/scheduler_config.json  training noise schedule
RUN/model/conditions.csv         label + metadata of the training images (sampled at generation)
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field

from synthmed.files import atomic_write_json, read_json
from synthmed.latent.conditioning import ConditionEmbedding, MetadataSpec
from synthmed.models.config import UNetConfig
from synthmed.models.unet import build_scheduler as build_unet_scheduler
from synthmed.models.unet import unet_arguments
from synthmed.models.weights import load_weights, save_weights

FORMAT = "synthmed-latent-v1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SCHEDULER_NAME = "scheduler_config.json"
CONDITIONS_NAME = "conditions.csv"

UNET_PRESETS: dict[str, dict] = {
    "tiny": dict(block_out_channels=[16, 32], layers_per_block=1, attention_levels=[False, True], attention_head_dim=8),
    "32": dict(
        block_out_channels=[128, 256, 384],
        layers_per_block=2,
        attention_levels=[False, True, True],
        attention_head_dim=32,
    ),  # 32x32 latents (256 px with an f8 autoencoder)
    "64": dict(
        block_out_channels=[128, 256, 256, 384],
        layers_per_block=2,
        attention_levels=[False, False, True, True],
        attention_head_dim=32,
    ),  # 64x64 latents (f4 at 256 px)
    # CPU-sized, for 16x16 latents (f4 at 64 px): one block per level, narrow channels (as the pixel '64-cpu').
    "16-cpu": dict(
        block_out_channels=[32, 64, 128],
        layers_per_block=1,
        attention_levels=[False, True, True],
        attention_head_dim=32,
        norm_num_groups=8,
    ),
}


class LatentModelConfig(UNetConfig):
    """Everything needed to rebuild the latent denoiser and its noise schedule."""

    latent_channels: int = Field(ge=1)
    latent_size: int = Field(gt=0)
    num_classes: int = Field(ge=1)
    class_names: list[str] = Field(default_factory=list)
    layers_per_block: int = Field(2, ge=1)
    metadata: MetadataSpec = Field(default_factory=MetadataSpec)
    condition_dropout_prob: float = Field(0.1, ge=0.0, le=1.0)
    cross_attention_dim: int | None = Field(None, ge=1, description="text-embedding width; None = no text")

    def _side(self) -> tuple[str, int, str]:
        return "latent_size", self.latent_size, "use fewer UNet levels or a larger image size"


class LatentDenoiser(torch.nn.Module):
    """A diffusers UNet whose class embedding is our ConditionEmbedding (passed in as `class_labels`).

    Class/metadata only: UNet2DModel. With `cross_attention_dim`: UNet2DConditionModel, whose
    cross-attention reads caption embeddings (`text` [B, tokens, width]).
    """

    def __init__(self, config: LatentModelConfig):
        super().__init__()
        from diffusers import UNet2DConditionModel, UNet2DModel

        self.config = config
        text = config.cross_attention_dim is not None
        arguments = unet_arguments(
            config, size=config.latent_size, channels=config.latent_channels, attention="CrossAttn" if text else "Attn"
        )
        if text:
            self.unet = UNet2DConditionModel(
                **arguments, cross_attention_dim=config.cross_attention_dim, class_embed_type="identity"
            )
        else:
            self.unet = UNet2DModel(**arguments, class_embed_type="identity")
        self.condition = ConditionEmbedding(
            num_classes=config.num_classes, dim=config.block_out_channels[0] * 4, spec=config.metadata
        )

    @property
    def uses_text(self) -> bool:
        return self.config.cross_attention_dim is not None

    def forward(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        labels: torch.Tensor,
        metadata: dict[str, torch.Tensor] | None = None,
        drop: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        emb = self.condition(labels, metadata, drop)
        if not self.uses_text:
            return self.unet(latents, timesteps, class_labels=emb).sample
        if text is None:
            raise ValueError("this latent model is text-conditioned: pass caption embeddings as `text`.")
        return self.unet(latents, timesteps, encoder_hidden_states=text.to(emb.dtype), class_labels=emb).sample


def build_scheduler(config: LatentModelConfig):
    """The training noise schedule (latents are unbounded: no sample clipping)."""
    return build_unet_scheduler(config, clip_sample=False)


def save_latent_model(folder: str | Path, *, model: LatentDenoiser, conditions=None, extra: dict | None = None) -> Path:
    """Write weights, scheduler and conditions first, config.json last, into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / WEIGHTS_NAME, model, file_format=FORMAT)
    build_scheduler(model.config).save_config(str(folder))
    if conditions is not None:
        conditions.to_csv(folder / CONDITIONS_NAME, index=False)
    atomic_write_json(folder / CONFIG_NAME, {"format": FORMAT, "model": model.config.model_dump(), **(extra or {})})
    return folder


def load_latent_model(folder: str | Path) -> tuple[LatentDenoiser, object]:
    """(LatentDenoiser in eval mode, training scheduler) from a model folder."""
    from diffusers import DDPMScheduler

    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: point at a run folder written by `synthmed latent train` (it holds model/config.json)."
        )
    payload = read_json(path, fix="re-create the run with `synthmed latent train`")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a `synthmed latent train` model config (format {FORMAT!r} expected).")
    model = LatentDenoiser(LatentModelConfig.model_validate(payload["model"]))
    fix = "the file is damaged or from another run: re-create the run with `synthmed latent train`"
    weights = folder / WEIGHTS_NAME
    load_weights(model, weights, fix=fix)
    scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(str(folder)))
    return model.eval(), scheduler
