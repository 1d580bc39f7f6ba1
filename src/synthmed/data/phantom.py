"""A seeded digital chest-radiograph phantom: parameters per condition and an ImageFolder writer.

Conditions follow radiology: `cardiomegaly` has a cardiothoracic ratio (CTR) above 0.5 (normal
0.38-0.48); `pleural_effusion` is a dependent opacity that blunts the costophrenic angle with a
meniscus rising along the lateral chest wall (one side or both); `consolidation` is a patchy airspace
opacity confined to one lobe. Every image's ground truth is in `PhantomParams` and metadata.csv.
Rendering lives in `synthmed.data.phantom_render`.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from synthmed.files import atomic_write_bytes

log = logging.getLogger(__name__)

CONDITIONS = ("normal", "consolidation", "pleural_effusion", "cardiomegaly")
LOBES = ("right_upper", "right_middle", "right_lower", "left_upper", "left_lower")


@dataclass(frozen=True)
class PhantomParams:
    """Everything that determines one phantom radiograph (normalised coordinates: x, y in [-1, 1])."""

    condition: str
    # Anatomy (fixed per patient).
    sex: str = "M"
    age_years: int = 50
    thorax_half_width: float = 0.72  # lateral lung edge at its widest, |x|
    lung_apex_y: float = -0.64
    dome_right_y: float = 0.30  # top of the right hemidiaphragm (image left)
    dome_left_y: float = 0.35  # the left hemidiaphragm is usually lower
    ctr: float = 0.44  # cardiothoracic ratio (heart width / internal thoracic width)
    heart_tilt_deg: float = 32.0
    rib_spacing: float = 0.105
    soft_tissue: float = 1.0  # body habitus (soft-tissue thickness scale)
    # Acquisition (varies between images of one patient).
    rotation_deg: float = 0.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    scale: float = 1.0
    exposure: float = 1.0  # attenuation scale: low = overexposed (darker), high = underexposed
    gamma: float = 1.0
    noise_std: float = 0.02
    blur_px: float = 0.8  # at 256 px, scaled with the size
    texture_seed: int = 0
    # Findings (ground truth).
    effusion_side: str = "none"  # none, right, left, bilateral
    effusion_height: float = 0.0  # fluid height above the costophrenic angle, fraction of lung height
    effusion_meniscus: float = 0.0  # rise of the fluid along the lateral wall (normalised units)
    consolidation_lobe: str = "none"
    consolidation_x: float = 0.0
    consolidation_y: float = 0.0
    consolidation_radius: float = 0.0
    consolidation_density: float = 0.0

    def to_row(self) -> dict:
        """The parameters as a flat dict (metadata.csv columns)."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def sample_phantom_params(condition: str, rng: np.random.Generator) -> PhantomParams:
    """Draw a random patient with `condition` (one of CONDITIONS) and one acquisition of them."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown phantom condition {condition!r}; choose one of {', '.join(CONDITIONS)}.")
    sex = "F" if rng.random() < 0.5 else "M"
    base = PhantomParams(
        condition=condition,
        sex=sex,
        age_years=int(rng.integers(18, 90)),
        thorax_half_width=float(rng.uniform(0.66, 0.76)),
        lung_apex_y=float(rng.uniform(-0.70, -0.58)),
        dome_right_y=float(rng.uniform(0.22, 0.36)),
        ctr=float(rng.uniform(0.38, 0.48)),
        heart_tilt_deg=float(rng.uniform(25, 40)),
        rib_spacing=float(rng.uniform(0.098, 0.112)),
        soft_tissue=float(rng.uniform(0.85, 1.25)),
    )
    base = replace(base, dome_left_y=base.dome_right_y + float(rng.uniform(0.01, 0.07)))
    if condition == "cardiomegaly":
        base = replace(base, ctr=float(rng.uniform(0.56, 0.68)), heart_tilt_deg=float(rng.uniform(18, 30)))
    elif condition == "pleural_effusion":
        side = str(rng.choice(["right", "left", "bilateral"], p=[0.4, 0.35, 0.25]))
        base = replace(
            base,
            effusion_side=side,
            effusion_height=float(rng.uniform(0.12, 0.4)),
            effusion_meniscus=float(rng.uniform(0.08, 0.16)),
        )
    elif condition == "consolidation":
        base = replace(base, **_consolidation(rng))
    return resample_acquisition(base, rng)


def resample_acquisition(params: PhantomParams, rng: np.random.Generator) -> PhantomParams:
    """The same patient imaged again: new position, rotation, exposure, noise and texture."""
    return replace(
        params,
        rotation_deg=float(rng.normal(0, 2.0)),
        shift_x=float(rng.normal(0, 0.03)),
        shift_y=float(rng.normal(0, 0.03)),
        scale=float(rng.uniform(0.92, 1.06)),
        exposure=float(rng.uniform(0.8, 1.25)),
        gamma=float(rng.uniform(0.85, 1.2)),
        noise_std=float(rng.uniform(0.008, 0.03)),
        blur_px=float(rng.uniform(0.5, 1.1)),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _consolidation(rng: np.random.Generator) -> dict:
    lobe = str(rng.choice(LOBES))
    side = -1.0 if lobe.startswith("right") else 1.0  # patient's right is on the image's left
    centres = {"upper": (0.36, -0.38), "middle": (0.26, 0.05), "lower": (0.45, 0.12)}
    cx, cy = centres[lobe.split("_")[1]]
    if lobe == "left_upper":
        cy = -0.28
    return {
        "consolidation_lobe": lobe,
        "consolidation_x": side * (cx + float(rng.normal(0, 0.04))),
        "consolidation_y": cy + float(rng.normal(0, 0.04)),
        "consolidation_radius": float(rng.uniform(0.15, 0.25)),
        "consolidation_density": float(rng.uniform(0.7, 1.0)),
    }


def write_phantom_dataset(
    out_dir: str | Path,
    *,
    n_per_class: int = 200,
    size_px: int = 256,
    seed: int = 0,
    conditions: tuple[str, ...] = CONDITIONS,
) -> Path:
    """Write `out_dir/CLASS/*.png` (8-bit grey) plus `out_dir/metadata.csv`; returns `out_dir`.

    metadata.csv has file (CLASS/name.png), patient_id, label, age_years, sex, view (PA) and every
    ground-truth parameter. About a third of patients have 2-3 images (new acquisitions of the same
    anatomy), so splitting by patient matters. `synthmed prepare out_dir --metadata out_dir/metadata.csv`
    prepares it like user data.
    """
    from synthmed.data.phantom_render import render_phantom

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    for condition in conditions:
        (out_dir / condition).mkdir(parents=True, exist_ok=True)
        count, patient = 0, 0
        with tqdm(total=n_per_class, desc=f"phantom {condition}", unit="img", leave=False) as bar:
            while count < n_per_class:
                params = sample_phantom_params(condition, rng)
                repeats = min(int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1])), n_per_class - count)
                patient_id = f"{condition[:4]}{seed:03d}-{patient:05d}"
                for _ in range(repeats):
                    name = f"{condition}/{patient_id}_{count:05d}.png"
                    buffer = io.BytesIO()
                    Image.fromarray(render_phantom(params, size_px=size_px), "L").save(buffer, format="PNG")
                    atomic_write_bytes(out_dir / name, buffer.getvalue())
                    rows.append(
                        {"file": name, "patient_id": patient_id, "label": condition, "view": "PA", **params.to_row()}
                    )
                    params = resample_acquisition(params, rng)
                    count += 1
                    bar.update(1)
                patient += 1
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out_dir / "metadata.csv", text.getvalue().encode())
    log.info("wrote %d phantom radiographs (%d conditions) to %s", len(rows), len(conditions), out_dir)
    return out_dir


def prepare_phantom(
    out_dir: str | Path,
    *,
    n_per_class: int = 200,
    size_px: int = 64,
    seed: int = 0,
    render_size_px: int | None = None,
    config=None,
) -> Path:
    """Render the phantom into a temporary ImageFolder and prepare it into `out_dir` (a prepared dataset).

    `render_size_px` defaults to twice `size_px` (at least 128, at most 512): enough for clean
    downsampling without paying for pixels that are thrown away. `config` is a `PrepareConfig` (its
    size, seed, metadata and name are set here). Returns `out_dir`.
    """
    import tempfile

    from synthmed.data.prepare import PrepareConfig, prepare_dataset

    render_size_px = render_size_px or min(max(2 * size_px, 128), 512)
    config = (config or PrepareConfig()).model_copy(
        update={
            "size_px": size_px,
            "seed": seed,
            "name": (config.name if config and config.name else "chest-phantom"),
            "modality": "chest x-ray (digital phantom)",
            "source_description": f"synthmed chest phantom (n_per_class={n_per_class}, seed={seed}, "
            f"rendered at {render_size_px} px)",
        }
    )
    with tempfile.TemporaryDirectory(prefix="synthmed-phantom-") as tmp:
        raw = write_phantom_dataset(Path(tmp) / "phantom", n_per_class=n_per_class, size_px=render_size_px, seed=seed)
        return prepare_dataset(
            raw, out_dir=out_dir, config=config.model_copy(update={"metadata_csv": raw / "metadata.csv"})
        )
