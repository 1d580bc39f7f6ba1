"""Sample N images per class from a trained model into PNG/DICOM files with a provenance manifest (every family)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tqdm.auto import tqdm

from synthmed.data.dataset import from_model_range
from synthmed.data.manifest import MANIFEST_NAME
from synthmed.files import portable_name, swap_folder
from synthmed.models.interface import Condition, DenoisingModel
from synthmed.models.pixel import PixelDiffusion
from synthmed.models.preview import grid_image, save_png_atomic
from synthmed.models.sampling import (
    SAMPLERS,
    check_sampler_fits,
    default_sampler,
    denoise,
    image_seeds,
    make_scheduler,
)
from synthmed.models.unet import EXPECTED_FILES, is_model_folder, load_model_metadata, weights_sha256
from synthmed.sample.batch_sizes import default_batch_sizes
from synthmed.sample.shard import current_shard, sharded_batches
from synthmed.sample.writer import FORMAT_CHOICES, SyntheticSetWriter, slug
from synthmed.train.checkpoint import latest_checkpoint

logger = logging.getLogger(__name__)

SamplerName = Literal["ddpm", "ddim", "dpmpp", "unipc", "flow_euler", "flow_heun"]  # = SAMPLERS' keys


class SampleConfig(BaseModel):
    """One sampling job. Image k of a class uses seed `seed_start + k` (the same seeds for every class,
    so images with equal seeds across classes share their starting noise)."""

    model_config = ConfigDict(extra="forbid")

    model_dir: str = Field(description="a model folder, a training run folder, or a checkpoint folder")
    out_dir: str
    n_per_class: int = Field(ge=1)
    classes: list[str] | None = Field(None, description="class names or indices; None = all classes")
    sampler: SamplerName | None = Field(
        None, description="None = the model's own: flow_euler for flow matching, dpmpp for diffusion"
    )
    steps: int | None = Field(
        None,
        ge=1,
        description="None = the sampler's default (ddpm 1000, ddim 50, dpmpp 20, unipc 20, flow_euler 20, "
        "flow_heun 10)",
    )
    guidance_scale: float = Field(1.0, ge=0.0, description="classifier-free guidance w (1 = no guidance)")
    seed_start: int = Field(0, ge=0, lt=2**63, description="image k of a class uses seed seed_start + k (< 2**63)")
    batch_size: int | None = Field(
        None, ge=1, description="images per batch; None = per device (synthmed.sample.batch_sizes)"
    )
    model_batch_size: int | None = Field(
        None,
        ge=1,
        description="rows per UNet call (fixed so results do not depend on batch_size); None = per device "
        "(synthmed.sample.batch_sizes)",
    )
    format: Literal["png", "png16", "dicom", "png+dicom"] = "png"
    mixed_precision: Literal["no", "bf16"] = "no"
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    modality: str = Field(
        "OT", pattern=r"^[A-Z0-9 _]{1,16}$", description="DICOM Modality tag (a CS value: A-Z, 0-9, space, _; <= 16)"
    )
    grid_per_class: int = Field(32, ge=0, description="images in each class grid PNG (0 = none)")

    @field_validator("classes")
    @classmethod
    def _named_classes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not [name for name in value if name.strip()]:
            raise ValueError("classes is empty: name at least one class (or leave it out for all classes).")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto":
            try:
                torch.device(value)
            except (RuntimeError, ValueError):
                raise ValueError(f"device {value!r} is not a device: use auto, cpu, cuda or cuda:N.") from None
        return value

    def for_device(self, device_type: str, *, processes: int = 1) -> SampleConfig:
        """This config with batch_size and model_batch_size filled in for `device_type` where None
        (`default_batch_sizes`); a given value always wins."""
        batch_size, model_batch_size = default_batch_sizes(device_type, processes=processes)
        return self.model_copy(
            update={
                "batch_size": self.batch_size or batch_size,
                "model_batch_size": self.model_batch_size or model_batch_size,
            }
        )

    @model_validator(mode="after")
    def _seeds_in_range(self) -> SampleConfig:
        if self.seed_start + self.n_per_class > 2**63:
            raise ValueError(
                f"seed_start {self.seed_start} + n_per_class {self.n_per_class} passes 2**63 (the largest seed); "
                f"lower seed_start."
            )
        return self


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder from a model folder, a run folder (RUN/model) or a checkpoint (latest one's model/)."""
    path = Path(path)
    if is_model_folder(path):
        return path
    if is_model_folder(path / "model"):
        return path / "model"
    checkpoint = latest_checkpoint(path)
    if checkpoint is not None:
        return checkpoint / "model"
    raise FileNotFoundError(
        f"{path} holds no model: expected a model folder ({EXPECTED_FILES}), a run "
        f"folder with model/ (from `synthmed train`) or checkpoints/step-*/model."
    )


def _to_pixels(images: torch.Tensor, bit_depth: int) -> np.ndarray:
    """[B, C, H, W] in [-1, 1] -> uint8/uint16 [B, H, W] or [B, H, W, 3]."""
    if bit_depth == 16:
        array = ((images.clamp(-1, 1) + 1) * 32767.5).round().to(torch.int32).numpy().astype(np.uint16)
    else:
        array = from_model_range(images).numpy()
    return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)


def _class_indices(requested: list[str] | None, names: list[str]) -> list[int]:
    if not requested:
        return list(range(len(names)))
    chosen: list[int] = []
    for item in requested:
        if item in names:
            index = names.index(item)
        elif item.isdigit() and int(item) < len(names):
            index = int(item)
        else:
            raise ValueError(
                f"class {item!r} is not one of this model's classes {names} (or indices 0..{len(names) - 1})."
            )
        if index in chosen:
            raise ValueError(f"class {names[index]!r} is named twice in classes ({requested}); name each class once.")
        chosen.append(index)
    return chosen


def refuse_existing_output(out: Path) -> None:
    """Refuse an `--out` that holds anything: a sample set is written whole or not at all."""
    if (out / MANIFEST_NAME).exists():
        raise FileExistsError(
            f"{out / MANIFEST_NAME} already exists: that folder holds an image set; choose a new --out folder "
            f"(or delete that one first)."
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} is not an empty folder; choose a new --out folder (or delete that one first).")


@dataclass
class SampleJob:
    """One image to draw: its class, its seed (the one seed rule: image k of a class uses seed_start + k),
    its condition row (a batch of one) and any provenance of its own (drawn metadata, caption)."""

    label: int
    seed: int
    condition: Condition
    provenance: dict = field(default_factory=dict)


def class_jobs(model: DenoisingModel, labels: list[int], *, n_per_class: int, seed_start: int) -> list[SampleJob]:
    """`n_per_class` jobs per class, class by class, with the seeds of `image_seeds`."""
    return [
        SampleJob(label, seed, model.class_condition(torch.tensor([label])))
        for label in labels
        for seed in image_seeds(n_per_class, seed_start)
    ]


def write_image_set(
    model: DenoisingModel,
    jobs: list[SampleJob],
    *,
    out: Path,
    sampler: str,
    steps: int,
    guidance_scale: float,
    batch_size: int,
    provenance: dict,
    formats: tuple[str, ...] = ("png",),
    bit_depth: int = 8,
    modality: str = "OT",
    model_batch_size: int = 16,
    autocast: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    grid_per_class: int = 0,
) -> Path:
    """Denoise `jobs` batch by batch (one generator per image) into an image set at `out`.

    The set is written into `OUT.partial` and renamed to OUT at the end: a run that fails or is
    killed leaves no OUT, and running the same command again starts clean (deterministic seeds make
    the images the same as an uninterrupted run's). Image k is the same whatever `batch_size`. Under
    `accelerate launch` each process denoises its share of every batch and the main process writes
    everything: the same files as one process (synthmed.sample.shard).
    """
    refuse_existing_output(out)
    names, shard = model.class_names, current_shard()

    def denoise_jobs(batch: list[SampleJob]) -> torch.Tensor:
        return denoise(
            model,
            make_scheduler(sampler, model.scheduler),
            condition={k: torch.cat([job.condition[k] for job in batch]) for k in batch[0].condition},
            generators=[torch.Generator().manual_seed(job.seed) for job in batch],
            steps=steps,
            guidance_scale=guidance_scale,
            stochastic=SAMPLERS[sampler].stochastic,
            autocast_dtype=autocast,
            device=device,
            model_batch_size=model_batch_size,
        )

    batches = sharded_batches(jobs, batch_size, shard, denoise_jobs)  # (batch, images) on the main process
    if not shard.is_main:
        for _ in batches:  # denoise this process's share of every batch; the main process writes
            pass
        shard.wait()
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed run
    writer = SyntheticSetWriter(partial, formats=formats, bit_depth=bit_depth, modality=modality)
    grids: dict[int, list[np.ndarray]] = {job.label: [] for job in jobs}
    try:
        with writer, tqdm(total=len(jobs), desc=f"sample {sampler}", unit="img") as bar:
            for batch, images in batches:
                for job, pixels, image in zip(batch, _to_pixels(images, bit_depth), images):
                    writer.add(
                        pixels,
                        label=names[job.label],
                        label_idx=job.label,
                        seed=job.seed,
                        provenance={**provenance, **job.provenance},
                    )
                    if len(grids[job.label]) < grid_per_class:
                        grids[job.label].append(from_model_range(image).numpy())
                bar.update(len(batch))
        # Save one grid per class.
        for label, tiles in grids.items():
            if tiles:
                rows = [np.stack(tiles[i : i + 8]) for i in range(0, len(tiles), 8)]
                save_png_atomic(grid_image(rows), partial / "grids" / f"{slug(names[label])}.png")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.is_dir():
        out.rmdir()  # empty (checked above)
    swap_folder(partial, out)
    logger.info("wrote %d images and manifest.csv to %s", len(jobs), out)
    shard.wait()
    return out


def sample_images(config: SampleConfig) -> Path:
    """Generate `n_per_class` images for each chosen class of a pixel model; returns the output folder.

    Batch sizes left None are resolved for the device (`SampleConfig.for_device`) and recorded, with
    the device type and precision, in every manifest row: what it takes to make the same set again.
    """
    out = Path(config.out_dir)
    refuse_existing_output(out)
    model_dir = resolve_model_dir(config.model_dir).resolve()
    shard = current_shard()
    device = shard.device(config.device)
    config = config.for_device(device.type, processes=shard.count)
    assert config.batch_size is not None and config.model_batch_size is not None  # for_device fills them
    model = PixelDiffusion.load(model_dir, device=device)
    chosen = _class_indices(config.classes, model.class_names)
    sampler = config.sampler or default_sampler(model.scheduler)
    check_sampler_fits(sampler, model.scheduler)  # refused before any output
    steps = config.steps or SAMPLERS[sampler].default_steps
    model_meta = load_model_metadata(model_dir)
    provenance = {
        "sampler": sampler,
        "steps": steps,
        "guidance_scale": config.guidance_scale,
        "checkpoint": portable_name(model_dir),
        "checkpoint_sha256": weights_sha256(model_dir),
        "provider": "synthmed",
        "model": f"{model_meta['format']} step {model_meta.get('step', '?')}",
        "prompt": "",
        "batch_size": config.batch_size,
        "model_batch_size": config.model_batch_size,
        "device": device.type,
        "mixed_precision": config.mixed_precision,
    }
    logger.info(
        "sampling %d x %d classes with %s (%d steps, guidance %.2f) from %s on %s, batches of %d images, "
        "%d rows per UNet call",
        config.n_per_class,
        len(chosen),
        sampler,
        steps,
        config.guidance_scale,
        model_dir,
        device,
        config.batch_size,
        config.model_batch_size,
    )
    try:
        return write_image_set(
            model,
            class_jobs(model, chosen, n_per_class=config.n_per_class, seed_start=config.seed_start),
            out=out,
            sampler=sampler,
            steps=steps,
            guidance_scale=config.guidance_scale,
            batch_size=config.batch_size,
            provenance=provenance,
            formats=FORMAT_CHOICES[config.format],
            bit_depth=16 if config.format == "png16" else 8,
            modality=config.modality,
            model_batch_size=config.model_batch_size,
            autocast=torch.bfloat16 if config.mixed_precision == "bf16" else None,
            device=device,
            grid_per_class=config.grid_per_class,
        )
    except torch.OutOfMemoryError as exc:
        raise torch.OutOfMemoryError(
            f"{device} ran out of memory with {config.model_batch_size} rows per UNet call: pass a smaller "
            f"--model-batch-size (model_batch_size), e.g. {max(1, config.model_batch_size // 2)} (the images "
            f"change in their low bits; the manifest records the value). {exc}"
        ) from exc
