"""Typed training configuration (saved as RUN/config.json) and its builder from a prepared dataset + preset."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthmed.data.manifest import read_dataset_info
from synthmed.files import read_json
from synthmed.models.config import (
    FLOW_PREDICTION,
    PRESET_LR,
    PRESET_SIZES_PX,
    DiffusionModelConfig,
    Objective,
    preset_choice,
    preset_config,
    resolve_objective,
)

MixedPrecision = Literal["auto", "no", "bf16", "fp16"]

OBJECTIVE_SETTINGS: dict[str, dict] = {
    "diffusion": {"prediction_type": "v_prediction", "snr_gamma": 5.0},
    "flow_matching": {"prediction_type": FLOW_PREDICTION, "snr_gamma": None},
}
"""Objective -> the model's prediction type and the loss's min-SNR gamma (flow matching has no SNR weighting)."""


Tracker = Literal["none", "tensorboard", "mlflow", "wandb"]

RESUMABLE_FIELDS = frozenset(
    {
        "max_steps",
        "max_duration_min",
        "batch_size",  # per process: the loop checks the global batch (batch_size x processes) on resume
        "log_every_steps",
        "sample_every_steps",
        "grid_per_class",
        "grid_sampler_steps",
        "checkpoint_every_steps",
        "checkpoint_every_min",
        "keep_checkpoints",
        "log_with",
    }
)
"""Fields a resumed run may change (budgets, cadences, the per-process batch of the same global batch);
every other field shapes the trajectory."""


ConfigT = TypeVar("ConfigT", bound="LoopConfig")


class LoopConfig(BaseModel):
    """Settings of the one training loop (`synthmed.train.fit.fit`) that every family uses.

    Defaults are the best quality per CPU-minute we measured for the pixel UNet
    (bench/results/generate.md): lr 1e-3 with a short warmup and cosine decay over the budget,
    bf16 autocast where the hardware has it, short-run EMA, every class equally often.
    """

    model_config = ConfigDict(extra="forbid")

    # Budget: stop at whichever comes first (both count across --resume sessions).
    max_steps: int | None = Field(None, ge=1)
    max_duration_min: float | None = Field(None, gt=0)
    duration_is_cap: bool | None = Field(
        None,
        description="True: max_duration_min only stops training and the LR schedule follows max_steps alone, so "
        "every machine trains the same model until the cap (the demo); None: the schedule spans whichever budget "
        "ends first",
    )
    # Optimisation.
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    lr_warmup_steps: int = Field(100, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    lr_min_ratio: float = Field(0.05, ge=0, le=1, description="final lr / lr for the cosine schedule")
    adam_betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip_norm: float = Field(1.0, gt=0)
    class_balance_power: float = Field(
        1.0,
        ge=0,
        le=1,
        description="1 = every class equally often (default: a "
        "minority class gets as many updates as the majority; BENCHMARKS.md c4); "
        "0 = draw images as the data is",
    )
    mixed_precision: MixedPrecision = Field(
        "auto", description="auto = bf16 on GPUs and on CPUs with native bf16 (AVX512-BF16/AMX), else no"
    )
    # EMA (diffusers EMAModel warmup: decay = 1 - (1 + step / inv_gamma) ** -power, capped); 0 = no EMA.
    ema_max_decay: float = Field(0.999, ge=0, lt=1)
    ema_power: float = Field(0.75, gt=0, le=1)
    ema_inv_gamma: float = Field(1.0, gt=0)
    # Bookkeeping.
    seed: int = 0
    log_every_steps: int = Field(10, ge=1)
    log_with: Tracker = Field("none", description="also send metrics to this accelerate tracker (if installed)")
    sample_every_steps: int = Field(0, ge=0, description="preview grid period; 0 = only at the end")
    checkpoint_every_steps: int = Field(500, ge=1)
    checkpoint_every_min: float | None = Field(5.0, gt=0, description="also checkpoint on wall clock")
    keep_checkpoints: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _check_budget(self) -> LoopConfig:
        if self.max_steps is None and self.max_duration_min is None:
            raise ValueError("give a budget: max_steps (--max-steps) and/or max_duration_min (--max-duration-min).")
        return self

    def save(self, path: str | Path) -> Path:
        """Atomically write this config as JSON."""
        from synthmed.files import atomic_write_json

        return atomic_write_json(path, self.model_dump(mode="json"))

    @classmethod
    def load(cls: type[ConfigT], path: str | Path) -> ConfigT:
        """Read and validate a saved config."""
        return cls.model_validate(read_json(path, fix="restore it, or start a new run in another --out folder"))


class TrainConfig(LoopConfig):
    """Every setting of one pixel training run (saved as RUN/config.json): the loop's plus data and model.
    Its field defaults are diffusion's (v-prediction, cosine schedule, min-SNR-5), so configs stored before flow
    matching existed load unchanged; new runs get DEFAULT_OBJECTIVE through `train_config_for_dataset`."""

    dataset: str = Field(description="prepared dataset folder (synthmed prepare)")
    split: str = "train"
    model: DiffusionModelConfig
    snr_gamma: float | None = Field(
        5.0, gt=0, description="min-SNR-gamma loss weighting (Hang et al. 2023); None = plain MSE"
    )
    hflip: bool = Field(False, description="random horizontal flips (off: laterality matters in chest X-rays)")
    grid_per_class: int = Field(8, ge=1)
    grid_sampler_steps: int = Field(20, ge=1)


def train_config_for_dataset(
    dataset: str | Path,
    *,
    preset: str | None = None,
    objective: Objective | None = None,
    model_overrides: dict | None = None,
    **overrides,
) -> TrainConfig:
    """A TrainConfig for a prepared dataset: model channels, size and classes read from its dataset.json.

    `preset`: a name in PRESETS (default: `default_preset`, from the image size and the device); the
    large presets bring their own learning rate (PRESET_LR) unless `lr` is given.
    `objective`: sets the prediction type and min-SNR gamma (OBJECTIVE_SETTINGS); None = `resolve_objective`'s
    rule (diffusion when `model_overrides` names a diffusion prediction type or `overrides` a min-SNR gamma, else
    DEFAULT_OBJECTIVE, flow matching).
    `model_overrides`: DiffusionModelConfig fields; `overrides`: TrainConfig fields (both win over `objective`).
    """
    objective = resolve_objective(
        objective, prediction_type=(model_overrides or {}).get("prediction_type"), snr_gamma=overrides.get("snr_gamma")
    )
    settings = OBJECTIVE_SETTINGS[objective]
    model_overrides = {"prediction_type": settings["prediction_type"], **(model_overrides or {})}
    overrides = {"snr_gamma": settings["snr_gamma"], **overrides}
    info = read_dataset_info(dataset)
    preset = preset or default_preset(dataset)[0]
    wanted = PRESET_SIZES_PX.get(preset)
    if wanted is not None and wanted < info.image_size_px:  # a preset made for larger images also fits (16 px on '32')
        raise ValueError(
            f"preset {preset!r} is for images up to {wanted} px but {dataset} holds "
            f"{info.image_size_px} px ones; re-run `synthmed prepare ... --size {wanted}` or pick "
            f"--preset {default_preset(dataset)[0]} (or leave --preset out)."
        )
    model = preset_config(
        preset,
        image_size_px=info.image_size_px,
        in_channels=info.channels,
        num_classes=len(info.classes),
        class_names=list(info.classes),
        **(model_overrides or {}),
    )
    if preset in PRESET_LR and overrides.get("lr") is None:
        overrides = {**overrides, "lr": PRESET_LR[preset]}  # large presets diverge at the loop's default
    return TrainConfig(dataset=str(dataset), model=model, **overrides)


def default_preset(
    dataset: str | Path, *, max_steps: int | None = None, max_duration_min: float | None = None
) -> tuple[str, str]:
    """The preset for a prepared dataset on this machine (CPU-sized at 64/128 px without a GPU) and why."""
    import torch

    parts = [f"{max_steps} steps"] if max_steps is not None else []
    parts += [f"{max_duration_min:g} min"] if max_duration_min is not None else []
    budget = " and ".join(parts)
    size = read_dataset_info(dataset).image_size_px
    return preset_choice(size, gpu=torch.cuda.is_available(), budget=budget or "not given")


def resolve_mixed_precision(choice: str) -> str:
    """'auto' -> 'bf16' on a CUDA GPU with bf16 or a CPU with native bf16 instructions, else 'no'.

    On CPUs without AVX512-BF16/AMX (e.g. AVX2-only), bf16 autocast is emulated and measured 15-20x
    slower than float32 (bench/results/generate.md), so 'auto' keeps float32 there.
    """
    if choice != "auto":
        return choice
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "no"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no"
