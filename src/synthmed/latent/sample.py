"""Sample a latent run: one condition row per image, then the one sampler (guided, decoded, written as a set)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthmed.files import portable_name, sha256_file
from synthmed.latent.autoencoder import load_autoencoder
from synthmed.latent.conditioning import encode_metadata
from synthmed.latent.diffusion import LatentDiffusion, default_latent_sampler
from synthmed.latent.model import CONDITIONS_NAME, WEIGHTS_NAME
from synthmed.latent.text import embed_captions
from synthmed.models.sampling import SAMPLERS, image_seeds, sampler_name
from synthmed.sample.generate import SampleJob, write_image_set
from synthmed.sample.shard import current_shard

log = logging.getLogger(__name__)


def choose_conditions(
    conditions: pd.DataFrame, *, label: str, seeds: list[int], fixed: Mapping[str, object]
) -> pd.DataFrame:
    """Metadata for each image: `fixed` values where given, else a same-class training row drawn with its seed."""
    fields = [c for c in conditions.columns if c != "label"]
    pool = conditions[conditions["label"].astype(str) == str(label)]
    rows = []
    for seed in seeds:
        row: dict[str, object] = {"label": label}
        drawn = pool.iloc[int(np.random.default_rng(seed).integers(len(pool)))] if len(pool) else None
        for field in fields:
            row[field] = fixed[field] if fixed.get(field) is not None else (None if drawn is None else drawn[field])
        rows.append(row)
    return pd.DataFrame(rows, columns=["label", *fields])


def sample_latent(
    run: str | Path,
    *,
    out: str | Path,
    n_per_class: int,
    sampler: str | None = None,
    steps: int | None = None,
    guidance_scale: float = 2.0,
    seed_start: int = 0,
    batch_size: int = 16,
    classes: list[str] | None = None,
    age_years: float | None = None,
    sex: str | None = None,
    view: str | None = None,
    prompt: str | None = None,
    formats: tuple[str, ...] = ("png",),
    bit_depth: int = 8,
    modality: str = "OT",
    mixed_precision: str = "no",
    device: str = "auto",
) -> Path:
    """Write `n_per_class` decoded images per class to `out` (images + manifest.csv); image k of each
    class uses seed `seed_start + k` (the rule of every family), and is the same whatever `batch_size`.

    Text-conditioned runs use `prompt` for every image, or else a training caption of the image's
    class (drawn with its seed, like the metadata). `bit_depth` 16 writes 16-bit PNGs (grey images
    only), `modality` is the DICOM Modality tag, `mixed_precision` "bf16" autocasts the UNet.
    """
    run = Path(run).expanduser()
    if n_per_class < 1:
        raise ValueError(f"--n-per-class must be >= 1, got {n_per_class}")
    torch_device = current_shard().device(device)
    model, text = LatentDiffusion.load(run, device=torch_device)
    class_names = model.class_names
    chosen = [
        class_names[int(c)] if c not in class_names and c.isdigit() and int(c) < len(class_names) else c
        for c in classes or class_names
    ]
    unknown = [c for c in chosen if c not in class_names]
    if unknown:
        raise ValueError(f"classes {unknown} are not in this model; it knows {class_names}.")
    if prompt is not None and text is None:
        raise ValueError(f"{run} was trained without text conditioning; drop --prompt (or train with --text-encoder).")
    conditions_path = run / "model" / CONDITIONS_NAME
    conditions = (
        pd.read_csv(conditions_path, dtype={"label": str})
        if conditions_path.is_file()
        else pd.DataFrame(columns=["label"])
    )
    sampler = sampler_name(sampler) if sampler else default_latent_sampler(model.scheduler)
    steps = steps or SAMPLERS[sampler].default_steps
    _, ae_config = load_autoencoder(run / "autoencoder")
    if bit_depth == 16 and ae_config.channels != 1:
        raise ValueError(f"{run} makes RGB images; 16-bit PNG (--format png16) is for grey images: use png or dicom.")
    provenance = {
        "sampler": sampler,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "checkpoint": portable_name(run / "model"),
        "checkpoint_sha256": sha256_file(run / "model" / WEIGHTS_NAME),
        "provider": "synthmed-latent",
        "model": f"latent-diffusion f{ae_config.downsample_factor}",
    }
    # One job per image: its metadata (and caption) drawn with its own seed.
    fixed = {"age_years": age_years, "sex": sex, "view": view, "caption": prompt}
    seeds = image_seeds(n_per_class, seed_start)
    rows = pd.concat(
        [choose_conditions(conditions, label=name, seeds=seeds, fixed=fixed) for name in chosen], ignore_index=True
    )
    labels = torch.tensor([class_names.index(name) for name in rows["label"]])
    condition = {"labels": labels, "drop": torch.zeros(len(rows), dtype=torch.bool)}
    condition |= encode_metadata(rows, model.config.metadata)
    if text is not None:
        captions = [str(c) if pd.notna(c) else "" for c in rows.get("caption", [""] * len(rows))]
        table, index = embed_captions(captions, tokenizer=text[0], encoder=text[1])
        condition["text"] = table[index]
    jobs = [
        SampleJob(
            int(labels[i]),
            seeds[i % n_per_class],
            {k: v[i : i + 1] for k, v in condition.items()},
            {("prompt" if f == "caption" else f): v for f, v in rows.iloc[i].items() if f != "label" and pd.notna(v)},
        )
        for i in range(len(rows))
    ]
    write_image_set(
        model,
        jobs,
        out=Path(out),
        sampler=sampler,
        steps=steps,
        guidance_scale=guidance_scale,
        batch_size=batch_size,
        provenance=provenance,
        formats=formats,
        bit_depth=bit_depth,
        modality=modality,
        autocast=torch.bfloat16 if mixed_precision == "bf16" else None,
        device=torch_device,
    )
    log.info("wrote %d latent-diffusion images to %s", len(jobs), out)
    return Path(out)
