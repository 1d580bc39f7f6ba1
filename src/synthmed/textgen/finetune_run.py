"""The `synthmed finetune` run folder: its config, the adapted weights, and applying them to a pipeline.

RUN/model/finetune.json   FinetuneConfig + base checkpoint + dataset + steps done
RUN/model/lora/pytorch_lora_weights.safetensors   (mode "lora": diffusers LoRA format, EMA weights)
RUN/model/unet/           (mode "full": UNet2DConditionModel.save_pretrained, EMA weights)
RUN/config.json, stats.jsonl, checkpoints/ ...   the shared run folder (synthmed.train.run_files)

Runs of older synthmed (finetune.json and lora/ directly in RUN) still apply; they cannot be resumed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from synthmed.files import atomic_write_json
from synthmed.train.config import LoopConfig

log = logging.getLogger(__name__)

RUN_INFO_NAME = "finetune.json"
LORA_DIR = "lora"
UNET_DIR = "unet"
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


class FinetuneConfig(LoopConfig):
    """A fine-tuning run (RUN/config.json): the loop's settings plus base checkpoint, data and adapter choice."""

    dataset: str = Field(description="prepared dataset folder")
    checkpoint: str = Field(description="local diffusers Stable Diffusion folder (resolved path)")
    mode: Literal["lora", "full"] = "lora"
    lora_rank: int = Field(8, ge=1)
    lora_alpha: float | None = Field(None, gt=0, description="LoRA scale numerator; None = lora_rank")
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS))
    caption_template: str = "{modality}, {label}"
    caption_dropout: float = Field(0.1, ge=0.0, le=1.0, description="empty-caption rate (classifier-free guidance)")
    resolution_px: int | None = Field(None, gt=0, description="None = the checkpoint's native resolution")
    split: str = "train"
    snr_gamma: float | None = Field(None, gt=0, description="min-SNR-gamma loss weighting; None = plain MSE")
    batch_size: int = Field(4, ge=1)
    lr: float = Field(1e-4, gt=0)
    lr_warmup_steps: int = Field(0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    max_steps: int | None = Field(1000, ge=1)
    checkpoint_every_steps: int = Field(200, ge=1)
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "no"


class FinetuneRunInfo(BaseModel):
    """`finetune.json`: what was adapted, from what, and how far training got."""

    config: dict[str, Any]  # FinetuneConfig (a dict: runs of older synthmed had other fields)
    base_checkpoint: str
    dataset: str
    classes: list[str]
    steps_done: int = 0
    synthmed_version: str = ""


def write_run_info(run_dir: str | Path, info: FinetuneRunInfo) -> Path:
    return atomic_write_json(Path(run_dir) / RUN_INFO_NAME, info.model_dump())


def model_folder(run_dir: str | Path) -> Path:
    """RUN/model (where the loop publishes the adapted weights), or RUN itself for runs of older synthmed."""
    run_dir = Path(run_dir).expanduser()
    return run_dir / "model" if (run_dir / "model" / RUN_INFO_NAME).is_file() else run_dir


def read_run_info(run_dir: str | Path) -> FinetuneRunInfo:
    """The run's finetune.json, or a FileNotFoundError saying what folder was expected."""
    path = model_folder(run_dir) / RUN_INFO_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --lora expects a run folder written by `synthmed finetune "
            f"DATASET --checkpoint SD_DIR --out RUN`."
        )
    return FinetuneRunInfo.model_validate(json.loads(path.read_text()))


def adapted_weights_dir(run_dir: str | Path, mode: str) -> Path:
    """RUN/lora or RUN/unet."""
    return Path(run_dir) / (LORA_DIR if mode == "lora" else UNET_DIR)


def save_adapted_weights(folder: Path, *, unet, mode: str) -> None:
    """Write the LoRA layers (diffusers format) or the whole UNet of `unet` into `folder` itself."""
    if mode == "lora":
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
        StableDiffusionPipeline.save_lora_weights(
            save_directory=str(folder), unet_lora_layers=layers, safe_serialization=True
        )
    else:
        unet.save_pretrained(str(folder), safe_serialization=True)


def apply_finetune_run(pipe, run_dir: str | Path) -> None:
    """Load a run's LoRA weights into `pipe` (or replace its UNet by the fully fine-tuned one)."""
    info = read_run_info(run_dir)
    run_dir = model_folder(run_dir)
    if info.steps_done == 0:
        raise FileNotFoundError(
            f"{run_dir} has no finished weights yet (0 steps done); run `synthmed finetune` "
            f"on it first (use --resume to continue)."
        )
    if info.config["mode"] == "lora":
        weights = run_dir / LORA_DIR
        if not (weights / "pytorch_lora_weights.safetensors").is_file():
            raise FileNotFoundError(f"{weights}/pytorch_lora_weights.safetensors not found: the run is incomplete.")
        pipe.load_lora_weights(str(weights), adapter_name="synthmed")
    else:
        from diffusers import UNet2DConditionModel

        weights = run_dir / UNET_DIR
        if not (weights / "config.json").is_file():
            raise FileNotFoundError(f"{weights}/config.json not found: the run is incomplete.")
        pipe.unet = UNet2DConditionModel.from_pretrained(str(weights), dtype=pipe.unet.dtype, local_files_only=True)
    log.info("applied %s fine-tune %s (%d steps on %s)", info.config["mode"], run_dir, info.steps_done, info.dataset)
