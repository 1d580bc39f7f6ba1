"""The latent family in an experiment: check its [train] / [train.autoencoder] / [sample] keys, run its stages."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError, model_validator

from synthmed.experiment.folder import resume_training
from synthmed.sample.generate import SampleConfig, SamplerName

if TYPE_CHECKING:
    from synthmed.experiment.runner import Stage
    from synthmed.experiment.schema import ExperimentConfig

AE_PRESET_DEFAULT = "f8"
LATENT_PRESET_DEFAULT = "32"
LATENT_BATCH_SIZE = 16
"""Images per latent sampling batch when [sample] batch_size is not given (the images do not depend on it)."""
# [train.autoencoder] keys the runner fills from the prepared dataset (not settable in the file).
AE_RUNNER_OWNED = {"dataset", "image_size_px", "channels"}


class LatentSampleConfig(SampleConfig):
    """[sample] of a latent experiment: SampleConfig's keys as `synthmed sample` applies them to a latent run
    (sampler default by objective, guidance 2, 16-image batches), less the pixel-only ones."""

    sampler: SamplerName = "ddim"  # default_latent_sampler's for diffusion (the runner names flow_euler for flow)
    guidance_scale: float = 2.0
    grid_per_class: int = 0

    @model_validator(mode="after")
    def _latent_keys_only(self) -> LatentSampleConfig:
        pixel_only = [
            key for key in ("model_batch_size", "grid_per_class") if key in self.model_fields_set and getattr(self, key)
        ]
        if pixel_only:
            raise ValueError(
                f"{', '.join(pixel_only)}: pixel sampling only (latent runs call the UNet on a fixed number of rows "
                f"and write no grids); remove it for train.family = 'latent'."
            )
        return self


def split_autoencoder(options: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """[train.autoencoder] as (AE_PRESETS name, AutoencoderConfig fields, AETrainConfig fields)."""
    from synthmed.latent.autoencoder import AutoencoderConfig

    owned = AE_RUNNER_OWNED & set(options)
    if owned:
        raise ValueError(
            f"[train.autoencoder] {', '.join(sorted(owned))}: set by `synthmed run` from the prepared dataset; "
            f"remove it."
        )
    rest = dict(options)
    preset = str(rest.pop("preset", AE_PRESET_DEFAULT))
    architecture = {k: rest.pop(k) for k in list(rest) if k in AutoencoderConfig.model_fields}
    return preset, architecture, rest


def autoencoder_train_config(
    options: dict[str, Any], *, dataset: str, image_size_px: int, channels: int, seed: int
) -> Any:
    """The AETrainConfig of the autoencoder stage (architecture from the preset, size and channels the dataset's)."""
    from synthmed.latent.autoencoder import AE_PRESETS, AETrainConfig, AutoencoderConfig

    preset, architecture, loop = split_autoencoder(options)
    if preset not in AE_PRESETS:
        raise ValueError(f"[train.autoencoder] preset {preset!r}: unknown; choose one of {sorted(AE_PRESETS)}.")
    try:
        autoencoder = AutoencoderConfig(
            image_size_px=image_size_px, channels=channels, **{**AE_PRESETS[preset], **architecture}
        )
        return AETrainConfig(dataset=dataset, autoencoder=autoencoder, **{"seed": seed, **loop})
    except ValidationError as exc:
        from synthmed.experiment.schema import stage_error

        raise stage_error("train.autoencoder", exc) from None


def latent_train_config(config: ExperimentConfig, *, dataset: str, autoencoder: str) -> Any:
    """The LatentTrainConfig of the train stage (the denoiser on the autoencoder's latents)."""
    from synthmed.latent.train import LatentTrainConfig

    train = config.train
    settings = {"seed": config.seed, **train.options}
    try:
        return LatentTrainConfig(
            dataset=dataset,
            autoencoder=autoencoder,
            preset=train.preset or LATENT_PRESET_DEFAULT,
            objective=train.objective,
            **settings,
        )
    except ValidationError as exc:
        from synthmed.experiment.schema import stage_error

        raise stage_error("train", exc) from None


def check_latent(config: ExperimentConfig, *, size_px: int, channels: int) -> None:
    """Refuse, before any work, [train] / [train.autoencoder] keys the latent stages could not run with
    (the dataset's size and channels are those [data.prepare] asks for, or placeholders)."""
    from synthmed.latent.model import UNET_PRESETS

    if config.train.model:
        raise ValueError(
            "[train.model] is the pixel UNet (DiffusionModelConfig); a latent denoiser is chosen by [train] preset "
            f"(one of {sorted(UNET_PRESETS)}): remove [train.model] or use train.family = 'pixel'."
        )
    preset = config.train.preset or LATENT_PRESET_DEFAULT
    if preset not in UNET_PRESETS:
        raise ValueError(
            f"[train] preset {preset!r}: not a latent UNet preset; choose one of {sorted(UNET_PRESETS)} (or leave "
            f"it out for {LATENT_PRESET_DEFAULT!r})."
        )
    if "autoencoder" in config.train.options or "dataset" in config.train.options:
        raise ValueError(
            "[train] autoencoder / dataset: set by `synthmed run` (the autoencoder stage trains RUN/autoencoder); "
            "put autoencoder settings in a [train.autoencoder] table."
        )
    ae = autoencoder_train_config(
        config.train.autoencoder, dataset="-", image_size_px=size_px, channels=channels, seed=config.seed
    )
    latent_train_config(config, dataset="-", autoencoder="-")
    side, levels = ae.autoencoder.latent_size, len(UNET_PRESETS[preset]["block_out_channels"])
    if side % 2 ** (levels - 1):
        raise ValueError(
            f"[train.autoencoder]: {size_px} px images downsampled {ae.autoencoder.downsample_factor}x leave "
            f"{side}x{side} latents, which the {levels}-level latent UNet (preset {preset!r}) cannot halve "
            f"{levels - 1} times; use a smaller autoencoder preset, a smaller [train] preset or larger images."
        )


# The stages.


def run_autoencoder(config: ExperimentConfig, stage: Stage, *, dataset: Path, **_: Any) -> None:
    """Train (or resume) the autoencoder in RUN/autoencoder on the prepared dataset."""
    from synthmed.data.manifest import read_dataset_info
    from synthmed.latent.autoencoder import train_autoencoder

    info = read_dataset_info(dataset)
    ae = autoencoder_train_config(
        config.train.autoencoder,
        dataset=str(Path(dataset).resolve()),
        image_size_px=info.image_size_px,
        channels=info.channels,
        seed=config.seed,
    )
    train_autoencoder(ae, out=stage.output, resume=resume_training(stage.output))


def run_latent_train(config: ExperimentConfig, stage: Stage, *, dataset: Path, run_dir: Path, **_: Any) -> None:
    """Train (or resume) the latent denoiser in RUN/train on the latents of RUN/autoencoder."""
    from synthmed.latent.train import train_latent

    train = latent_train_config(
        config, dataset=str(Path(dataset).resolve()), autoencoder=str((run_dir / "autoencoder").resolve())
    )
    train_latent(train, out=stage.output, resume=resume_training(stage.output))


def run_latent_sample(config: ExperimentConfig, stage: Stage, *, run_dir: Path, **_: Any) -> None:
    """Sample RUN/train as `synthmed sample RUN/train` does for a latent run."""
    from synthmed.latent.sample import sample_latent
    from synthmed.sample.writer import FORMAT_CHOICES

    shutil.rmtree(stage.output, ignore_errors=True)  # not recorded complete: a set from an interrupted run
    settings = LatentSampleConfig(model_dir=str(run_dir / "train"), out_dir=str(stage.output), **stage.settings)
    sample_latent(
        settings.model_dir,
        out=settings.out_dir,
        n_per_class=settings.n_per_class,
        sampler=settings.sampler,
        steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        seed_start=settings.seed_start,
        batch_size=settings.batch_size or LATENT_BATCH_SIZE,
        classes=settings.classes,
        formats=FORMAT_CHOICES[settings.format],
        bit_depth=16 if settings.format == "png16" else 8,
        modality=settings.modality,
        mixed_precision=settings.mixed_precision,
        device=settings.device,
    )
