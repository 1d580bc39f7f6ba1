"""Build the diffusers UNet2DModel + noise scheduler from a config, and save/load a model folder.

A model folder is self-contained for sampling::

    model/config.json            {"format": "synthmed-diffusion-v1", "model": DiffusionModelConfig}
    model/model.safetensors      the (EMA) weights
    model/scheduler_config.json  the training noise schedule (diffusers DDPMScheduler config)
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import save_file

from synthmed.files import atomic_write_json, fsync_path, publish_folder, read_json, sha256_file
from synthmed.models.config import DiffusionModelConfig
from synthmed.models.weights import load_safetensors, load_state_dict_into

FORMAT = "synthmed-diffusion-v1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SCHEDULER_NAME = "scheduler_config.json"


def build_unet(config: DiffusionModelConfig) -> UNet2DModel:
    """A class-conditional UNet2DModel with `num_classes + 1` class embeddings (last = null class)."""
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in config.attention_levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention_levels))
    return UNet2DModel(
        sample_size=config.image_size_px,
        in_channels=config.in_channels,
        out_channels=config.in_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        dropout=config.dropout,
        num_class_embeds=config.num_classes + 1,
    )


def build_scheduler(config: DiffusionModelConfig) -> DDPMScheduler:
    """The training noise schedule (DDPM forward process) matching the config."""
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
        clip_sample=True,
        clip_sample_range=1.0,
    )


def save_model_folder(
    folder: str | Path, *, unet: torch.nn.Module, config: DiffusionModelConfig, extra: dict | None = None
) -> Path:
    """Write config.json, model.safetensors and scheduler_config.json into `folder` (created if needed).

    Files are fsynced; callers that need the folder to appear atomically write it inside a temp
    folder and rename it (see `publish_model_folder`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in unet.state_dict().items()}
    weights = folder / WEIGHTS_NAME
    save_file(state, str(weights), metadata={"format": FORMAT})
    fsync_path(weights)
    build_scheduler(config).save_config(str(folder))
    fsync_path(folder / SCHEDULER_NAME)
    atomic_write_json(folder / CONFIG_NAME, {"format": FORMAT, "model": config.model_dump(), **(extra or {})})
    return folder


def publish_model_folder(
    folder: str | Path, *, unet: torch.nn.Module, config: DiffusionModelConfig, extra: dict | None = None
) -> Path:
    """Replace `folder` with a freshly written model folder so no reader ever sees a partial one."""
    return publish_folder(folder, lambda tmp: save_model_folder(tmp, unet=unet, config=config, extra=extra))


def is_model_folder(folder: str | Path) -> bool:
    """True when `folder` holds config.json and model.safetensors."""
    folder = Path(folder)
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def load_model_config(folder: str | Path) -> DiffusionModelConfig:
    """The validated DiffusionModelConfig stored in `folder/config.json`."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: point at a model folder written by `synthmed train` "
            f"(RUN/model or RUN/checkpoints/step-XXXXXX/model)."
        )
    payload = read_json(path, fix="re-create the model folder with `synthmed train` (or restore it from a backup)")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} has format {found!r}, expected {FORMAT!r}: point at a model folder written by `synthmed train`."
        )
    return DiffusionModelConfig.model_validate(payload["model"])


def load_model_folder(
    folder: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[UNet2DModel, DiffusionModelConfig, DDPMScheduler]:
    """Rebuild the UNet (weights loaded, eval mode), its config and its training scheduler."""
    folder = Path(folder)
    config = load_model_config(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: the model folder {folder} is incomplete.")
    unet = build_unet(config)
    fix = "the folder was edited or mixed from two models, or the file is damaged: re-create it with `synthmed train`"
    load_state_dict_into(unet, load_safetensors(weights, fix=fix), path=weights, fix=fix)
    scheduler_path = folder / SCHEDULER_NAME
    scheduler = (
        DDPMScheduler.from_config(DDPMScheduler.load_config(str(folder)))
        if scheduler_path.is_file()
        else build_scheduler(config)
    )
    return unet.to(device).eval(), config, scheduler


def weights_sha256(folder: str | Path) -> str:
    """SHA-256 of the model folder's weights file (provenance for every sample)."""
    return sha256_file(Path(folder) / WEIGHTS_NAME)
