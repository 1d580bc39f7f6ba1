"""Build the diffusers UNet2DModel + noise scheduler from a config, and save/load a model folder.

A model folder is a diffusers DDPMPipeline folder plus synthmed's metadata, self-contained for sampling::

    model/model_index.json                          DDPMPipeline: unet + scheduler (DiffusionPipeline.from_pretrained)
    model/unet/config.json                          diffusers UNet2DModel config
    model/unet/diffusion_pytorch_model.safetensors  the (EMA) weights
    model/scheduler/scheduler_config.json           the training noise schedule (DDPMScheduler)
    model/README.md                                 model card (data, recipe, synthetic outputs, licence)
    model/synthmed.json                             {"format": "synthmed-diffusion-v2", "model": DiffusionModelConfig,
                                                     "step", "weights", "dataset", ...}  (written last)

Folders of the older flat layout (v1: config.json + model.safetensors + scheduler_config.json) still load.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from synthmed.files import atomic_write_json, atomic_write_text, fsync_path, publish_folder, read_json, sha256_file
from synthmed.models.card import model_card
from synthmed.models.config import DiffusionModelConfig, UNetConfig
from synthmed.models.weights import load_weights

FORMAT = "synthmed-diffusion-v2"
METADATA_NAME = "synthmed.json"
UNET_DIR = "unet"
SCHEDULER_DIR = "scheduler"
DIFFUSERS_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CARD_NAME = "README.md"
# The older flat layout (v1), still read.
LEGACY_FORMAT = "synthmed-diffusion-v1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SCHEDULER_NAME = "scheduler_config.json"
EXPECTED_FILES = (
    f"{METADATA_NAME} + {UNET_DIR}/{DIFFUSERS_WEIGHTS_NAME} (+ model_index.json, {UNET_DIR}/config.json, "
    f"{SCHEDULER_DIR}/) written by `synthmed train`, or the older {CONFIG_NAME} + {WEIGHTS_NAME}"
)


def unet_arguments(config: UNetConfig, *, size: int, channels: int, attention: str = "Attn") -> dict:
    """The diffusers UNet arguments every family shares: shape, widths, norms and one block per level
    (`{attention}DownBlock2D` / `{attention}UpBlock2D` where the level attends)."""
    levels = config.attention_levels
    return dict(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=tuple(f"{attention}DownBlock2D" if a else "DownBlock2D" for a in levels),
        up_block_types=tuple(f"{attention}UpBlock2D" if a else "UpBlock2D" for a in reversed(levels)),
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
    )


def build_unet(config: DiffusionModelConfig) -> UNet2DModel:
    """A class-conditional UNet2DModel with `num_classes + 1` class embeddings (last = null class)."""
    return UNet2DModel(
        **unet_arguments(config, size=config.image_size_px, channels=config.in_channels),
        dropout=config.dropout,
        num_class_embeds=config.num_classes + 1,
    )


def build_scheduler(config: UNetConfig, *, clip_sample: bool = True) -> DDPMScheduler:
    """The training noise schedule (DDPM forward process) matching the config; latents pass clip_sample=False."""
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
        clip_sample=clip_sample,
        clip_sample_range=1.0,
    )


def _as_unet(unet: torch.nn.Module) -> UNet2DModel:
    """The UNet2DModel inside `unet` (unwrapping torch.compile's `_orig_mod` and DDP's `module`)."""
    inner: object = unet
    for _ in range(4):
        if isinstance(inner, UNet2DModel):
            return inner
        wrapped = getattr(inner, "_orig_mod", None)
        inner = wrapped if wrapped is not None else getattr(inner, "module", None)
    raise TypeError(
        f"save_model_folder needs the diffusers UNet2DModel from build_unet, got {type(unet).__name__}: "
        f"pass the unwrapped model (e.g. accelerator.unwrap_model(model))."
    )


def save_model_folder(
    folder: str | Path, *, unet: torch.nn.Module, config: DiffusionModelConfig, extra: dict | None = None
) -> Path:
    """Write the diffusers pipeline (model_index.json, unet/, scheduler/), README.md and synthmed.json into `folder`.

    `extra` (e.g. step, weights, dataset, metrics) goes into synthmed.json and the model card. Files are
    fsynced and synthmed.json is written last, so a folder that has it is complete; callers that need the
    folder to appear atomically write it inside a temp folder and rename it (see `publish_model_folder`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = DDPMPipeline(unet=_as_unet(unet), scheduler=build_scheduler(config))
    pipeline.save_pretrained(str(folder), safe_serialization=True)
    meta = {"format": FORMAT, "model": config.model_dump(), **(extra or {})}
    atomic_write_text(folder / CARD_NAME, model_card(config, meta))
    for path in sorted(folder.rglob("*"), reverse=True):  # files first, then their folders
        fsync_path(path)
    atomic_write_json(folder / METADATA_NAME, meta)
    return folder


def publish_model_folder(
    folder: str | Path, *, unet: torch.nn.Module, config: DiffusionModelConfig, extra: dict | None = None
) -> Path:
    """Replace `folder` with a freshly written model folder so no reader ever sees a partial one."""
    return publish_folder(folder, lambda tmp: save_model_folder(tmp, unet=unet, config=config, extra=extra))


def _layout(folder: Path) -> str | None:
    """'v2' (diffusers layout), 'v1' (older flat layout) or None."""
    if (folder / METADATA_NAME).is_file() and (folder / UNET_DIR / DIFFUSERS_WEIGHTS_NAME).is_file():
        return "v2"
    if (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file():
        return "v1"
    return None


def _require_layout(folder: Path) -> str:
    layout = _layout(folder)
    if layout is None:
        raise FileNotFoundError(
            f"{folder} is not a synthmed model folder: expected {EXPECTED_FILES}. Point at a model folder "
            f"written by `synthmed train` (RUN/model or RUN/checkpoints/step-XXXXXX/model)."
        )
    return layout


def is_model_folder(folder: str | Path) -> bool:
    """True when `folder` holds a complete model folder (diffusers layout, or the older flat layout)."""
    return _layout(Path(folder)) is not None


def model_weights_path(folder: str | Path) -> Path:
    """The weights file of the model folder (unet/diffusion_pytorch_model.safetensors, or v1 model.safetensors)."""
    folder = Path(folder)
    return folder / (WEIGHTS_NAME if _require_layout(folder) == "v1" else f"{UNET_DIR}/{DIFFUSERS_WEIGHTS_NAME}")


def load_model_metadata(folder: str | Path) -> dict:
    """synthmed's metadata of the folder: {"format", "model": {...}, "step", "weights", "dataset", ...}."""
    folder = Path(folder)
    name = CONFIG_NAME if _require_layout(folder) == "v1" else METADATA_NAME
    path = folder / name
    payload = read_json(path, fix="re-create the model folder with `synthmed train` (or restore it from a backup)")
    expected = LEGACY_FORMAT if name == CONFIG_NAME else FORMAT
    if not isinstance(payload, dict) or payload.get("format") != expected or "model" not in payload:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} has format {found!r}, expected {expected!r} with a 'model' entry: point at a model folder "
            f"written by `synthmed train`."
        )
    return payload


def load_model_config(folder: str | Path) -> DiffusionModelConfig:
    """The validated DiffusionModelConfig stored in the folder's synthmed.json (or v1 config.json)."""
    return DiffusionModelConfig.model_validate(load_model_metadata(folder)["model"])


def load_model_folder(
    folder: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[UNet2DModel, DiffusionModelConfig, DDPMScheduler]:
    """Rebuild the UNet (weights loaded, eval mode), its config and its training scheduler."""
    folder = Path(folder)
    config = load_model_config(folder)
    weights = model_weights_path(folder)
    unet = build_unet(config)
    fix = "the folder was edited or mixed from two models, or the file is damaged: re-create it with `synthmed train`"
    load_weights(unet, weights, fix=fix)
    scheduler_dir = folder if weights.name == WEIGHTS_NAME else folder / SCHEDULER_DIR
    scheduler = (
        DDPMScheduler.from_config(DDPMScheduler.load_config(str(scheduler_dir)))
        if (scheduler_dir / SCHEDULER_NAME).is_file()
        else build_scheduler(config)
    )
    return unet.to(device).eval(), config, scheduler


def weights_sha256(folder: str | Path) -> str:
    """SHA-256 of the model folder's weights file (provenance for every sample)."""
    return sha256_file(model_weights_path(folder))
