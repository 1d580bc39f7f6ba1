"""Typed, validated configuration of the denoising UNets (shared fields; the pixel model), with size presets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PredictionType = Literal["epsilon", "v_prediction", "flow_prediction"]
"""What the UNet predicts: noise, velocity (diffusion), or the flow velocity noise - x0 (flow matching)."""
FLOW_PREDICTION = "flow_prediction"
"""The prediction type of flow-matching models (diffusers' name for the velocity noise - x0); the one place it is
spelled (the sampler, the trainer's objectives, the experiment schema and the CLI import it)."""
Objective = Literal["diffusion", "flow_matching"]
"""Training objective: diffusion (v-prediction by default, min-SNR) or flow matching (rectified flow)."""
DEFAULT_OBJECTIVE: Objective = "flow_matching"
"""The objective of new pixel runs when none is asked for (`synthmed train`, experiment files, the demo): flow
matching was ahead of v-prediction + min-SNR at equal CPU time on two datasets and at the demo's full budget
(bench/results/objective_compare.json, demo_recipe.json). Giving a diffusion prediction type or min-SNR gamma
without an objective means diffusion."""
LATENT_DEFAULT_OBJECTIVE: Objective = "diffusion"
"""Latent runs keep diffusion: the comparison was measured on pixel models only, and on the tiny latent learning
test (tests/latent/test_latent_learning.py, 120 steps) flow matching put 2 of 16 samples on the wrong class side
where diffusion put none."""


def objective_of(prediction_type: str) -> Objective:
    """The objective a model with `prediction_type` was trained with (flow_prediction = flow matching)."""
    return "flow_matching" if prediction_type == FLOW_PREDICTION else "diffusion"


def resolve_objective(
    objective: Objective | None,
    *,
    prediction_type: str | None = None,
    snr_gamma: float | None = None,
    default: Objective = DEFAULT_OBJECTIVE,
) -> Objective:
    """The objective a new run trains with: `objective` when given; else diffusion when a diffusion prediction
    type or a min-SNR gamma is given (both are diffusion's alone); else `default`."""
    if objective is not None:
        return objective
    if prediction_type is not None:
        return objective_of(prediction_type)
    return "diffusion" if snr_gamma else default


BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]


def largest_group_count(channels: list[int] | tuple[int, ...], *, most: int = 32) -> int:
    """The largest of most, most/2, ..., 1 that divides every channel count (GroupNorm's num_groups)."""
    groups = most
    while groups > 1 and any(c % groups for c in channels):
        groups //= 2
    return groups


class UNetConfig(BaseModel):
    """The UNet and noise-schedule fields every denoiser family shares (pixel and latent), validated alike."""

    model_config = ConfigDict(extra="forbid")

    block_out_channels: list[int] = Field(min_length=1)
    layers_per_block: int = Field(1, ge=1)
    attention_levels: list[bool] = Field(
        description="self-attention at each resolution level (same length as block_out_channels)"
    )
    attention_head_dim: int = Field(32, ge=1)
    norm_num_groups: int = Field(
        0, ge=0, description="GroupNorm groups; 0 = largest of 32, 16, 8, ... dividing every channel count"
    )
    prediction_type: PredictionType = Field(
        "v_prediction",
        description="objective: epsilon/v_prediction = diffusion; flow_prediction = flow matching (rectified flow)",
    )
    num_train_timesteps: int = Field(1000, ge=2)
    beta_schedule: BetaSchedule = "squaredcos_cap_v2"

    def _side(self) -> tuple[str, int, str]:
        """(field name, value, how to fix) of the square side the UNet halves once per extra level."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _check_unet(self) -> UNetConfig:
        levels = len(self.block_out_channels)
        if len(self.attention_levels) != levels:
            raise ValueError(
                f"attention_levels has {len(self.attention_levels)} entries but block_out_channels "
                f"has {levels}: give one True/False per level."
            )
        name, side, fix = self._side()
        if side % (2 ** (levels - 1)):
            raise ValueError(f"{name}={side} must be divisible by 2**{levels - 1} (one halving per level); {fix}.")
        if self.norm_num_groups == 0:
            self.norm_num_groups = largest_group_count(self.block_out_channels)
        elif any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(
                f"norm_num_groups={self.norm_num_groups} must divide every block_out_channels "
                f"entry {self.block_out_channels}."
            )
        return self


class DiffusionModelConfig(UNetConfig):
    """Everything needed to rebuild the pixel UNet and its noise schedule (saved in the model folder).

    Class conditioning: `num_classes` real classes get embeddings 0..num_classes-1 and index
    `num_classes` is the null class used for classifier-free guidance (label dropout in training).
    """

    image_size_px: int = Field(gt=0, description="square image side")
    in_channels: Literal[1, 3] = Field(1, description="1 for grey modalities (native), 3 for RGB")
    num_classes: int = Field(ge=1)
    class_names: list[str] = Field(default_factory=list, description="names of classes 0..num_classes-1")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    class_dropout_prob: float = Field(0.1, ge=0.0, le=1.0, description="label dropout for CFG in training")

    def _side(self) -> tuple[str, int, str]:
        return "image_size_px", self.image_size_px, "pick a size that is, e.g. 32/64/128/256"

    @model_validator(mode="after")
    def _check(self) -> DiffusionModelConfig:
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names for num_classes={self.num_classes}.")
        return self

    @property
    def null_class(self) -> int:
        """The class index meaning 'no class' (unconditional branch of classifier-free guidance)."""
        return self.num_classes


PRESETS: dict[str, dict] = {
    # Test size: runs a training step in milliseconds.
    "tiny": dict(
        block_out_channels=[8, 16],
        layers_per_block=1,
        attention_levels=[False, True],
        attention_head_dim=8,
        num_train_timesteps=1000,
    ),
    # Small fast UNet for CPU budgets (MedMNIST-like 28-32 px).
    "32": dict(
        block_out_channels=[32, 64, 64],
        layers_per_block=1,
        attention_levels=[False, False, True],
        attention_head_dim=32,
    ),
    "64": dict(
        block_out_channels=[64, 128, 192, 256],
        layers_per_block=2,
        attention_levels=[False, False, True, True],
        attention_head_dim=32,
    ),
    "128": dict(
        block_out_channels=[64, 128, 256, 256, 512],
        layers_per_block=2,
        attention_levels=[False, False, False, True, True],
        attention_head_dim=64,
    ),
    # CPU-sized models for 64 and 128 px: one block per level, narrow channels, attention only at 8 px
    # (bench/results/presets_cpu.json: several times the images/s of '64'/'128' on one CPU thread).
    "64-cpu": dict(
        block_out_channels=[16, 32, 64, 128],
        layers_per_block=1,
        attention_levels=[False, False, False, True],
        attention_head_dim=32,
        norm_num_groups=8,
    ),
    "128-cpu": dict(
        block_out_channels=[16, 32, 64, 64, 128],
        layers_per_block=1,
        attention_levels=[False, False, False, False, True],
        attention_head_dim=32,
        norm_num_groups=8,
    ),
    # The reference-scale model (256 px chest X-rays), for a GPU.
    "256": dict(
        block_out_channels=[64, 128, 256, 256, 512, 512],
        layers_per_block=2,
        attention_levels=[False, False, False, False, True, True],
        attention_head_dim=64,
    ),
}
"""Architecture presets by name; `tiny` is for tests (8-16 channels)."""

PRESET_SIZES_PX = {"tiny": None, "32": 32, "64": 64, "64-cpu": 64, "128": 128, "128-cpu": 128, "256": 256}

PRESET_LR = {"128": 1e-4, "256": 1e-4}
"""Peak learning rate of the large GPU presets when none is given (the loop's default, 1e-3, is tuned for the
small CPU presets). The 114M-parameter '256' UNet diverged at 1e-3 (loss 0.015 -> 0.25 by step 110, NaN by
step 454, bf16, batch 32, H200: bench/results/gpu_256.json); 1e-4 is diffusers' DDPM training example's rate."""


def preset_config(
    preset: str,
    *,
    image_size_px: int,
    in_channels: int,
    num_classes: int,
    class_names: list[str] | None = None,
    **overrides,
) -> DiffusionModelConfig:
    """A model config from preset `preset` ('tiny', '32', '64', '128', '256') plus field overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    levels = len(PRESETS[preset]["block_out_channels"])
    if image_size_px % (2 ** (levels - 1)):
        raise ValueError(
            f"preset {preset!r} needs image_size_px divisible by {2 ** (levels - 1)}, got "
            f"{image_size_px}; prepare the dataset at a matching --size."
        )
    fields = dict(
        PRESETS[preset],
        image_size_px=image_size_px,
        in_channels=in_channels,
        num_classes=num_classes,
        class_names=list(class_names or []),
    )
    fields.update(overrides)
    return DiffusionModelConfig(**fields)


def preset_for_size(image_size_px: int, *, gpu: bool = True) -> str:
    """The preset made for `image_size_px` (the nearest preset size at or above it, '256' beyond).

    `gpu=False` picks the CPU-sized preset where there is one (64 and 128 px): the GPU-sized ones train at a
    few images/s on a CPU (bench/results/presets_cpu.json).
    """
    for name in ("32", "64", "128", "256"):
        if image_size_px <= int(name):
            return name if gpu or f"{name}-cpu" not in PRESETS else f"{name}-cpu"
    return "256"


def preset_choice(image_size_px: int, *, gpu: bool, budget: str) -> tuple[str, str]:
    """The default preset for this image size on this device, and one sentence saying why (for the training log)."""
    preset = preset_for_size(image_size_px, gpu=gpu)
    device = "a GPU" if gpu else "no GPU (CPU training)"
    why = f"{image_size_px} px images, {device}, budget {budget}"
    if preset.endswith("-cpu"):
        why += f"; the CPU-sized preset (pass --preset {preset.removesuffix('-cpu')} for the larger GPU model)"
    elif not gpu and preset == "256":
        why += "; no CPU-sized preset at this size: expect a few images/s (prepare at --size 128 or 64 for CPU)"
    return preset, why
