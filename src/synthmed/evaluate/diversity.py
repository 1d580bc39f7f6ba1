"""Within-class diversity as MS-SSIM over random image pairs (high MS-SSIM = images alike = mode collapse).

MS-SSIM (Wang et al. 2003) through torchmetrics. Small images cannot hold the standard 5 scales of
an 11 px Gaussian window, so the kernel and the number of scales shrink with the image size and
are recorded beside the values; compare synthetic and real values computed the same way only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

STANDARD_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@dataclass(frozen=True)
class DiversityConfig:
    """How many random pairs per class, and the seed that draws them."""

    pairs_per_class: int = 200
    seed: int = 0
    batch_pairs: int = 256
    min_images: int = 5  # fewer images in a class give too few distinct pairs to judge


def _fits(size_px: int, kernel: int, scales: int) -> bool:
    # The coarsest scale must hold the window, and torchmetrics also checks size // (scales-1)^2 > kernel-1.
    return size_px >= (kernel - 1) * 2 ** (scales - 1) and size_px // max(1, scales - 1) ** 2 > kernel - 1


def msssim_settings(size_px: int) -> dict:
    """The most scales (up to the standard 5) with a window of at least 5 px that fit `size_px` (else 3 px)."""
    choice = next(((k, s) for s in range(5, 0, -1) for k in (11, 9, 7, 5) if _fits(size_px, k, s)), None)
    if choice is None:
        choice = next(((3, s) for s in range(5, 0, -1) if _fits(size_px, 3, s)), None)
    if choice is None:
        raise ValueError(f"images of {size_px} px are too small for MS-SSIM (need at least 8 px).")
    kernel, scales = choice
    betas = np.array(STANDARD_BETAS[:scales])
    return {
        "kernel_size": kernel,
        "sigma": round(1.5 * kernel / 11, 4),
        "scales": scales,
        "betas": tuple(float(b) for b in betas / betas.sum()),
    }


def pairwise_msssim(
    pixels_uint8: np.ndarray, pairs: np.ndarray, *, settings: dict, batch_pairs: int = 256
) -> np.ndarray:
    """MS-SSIM of each (i, j) row of `pairs` over images `[N, C, H, W]` (data range [0, 1])."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as msssim

    images = torch.from_numpy(np.asarray(pixels_uint8)).float() / 255.0
    values = []
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_pairs):
            chunk = torch.as_tensor(pairs[start : start + batch_pairs])
            values.append(
                msssim(
                    images[chunk[:, 0]],
                    images[chunk[:, 1]],
                    data_range=1.0,
                    kernel_size=settings["kernel_size"],
                    sigma=settings["sigma"],
                    betas=settings["betas"],
                    normalize="relu",
                    reduction="none",
                )
            )
    return torch.cat(values).numpy().astype(float) if values else np.zeros(0)


def random_pairs(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random index pairs (i != j) among `n` images; empty when n < 2."""
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    first = rng.integers(0, n, count)
    second = (first + rng.integers(1, n, count)) % n
    return np.stack([first, second], axis=1)


def _summary(values: np.ndarray, rng: np.random.Generator) -> dict:
    if values.size == 0:
        return {"n_pairs": 0, "note": "too few images to judge variety"}
    boot = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(200)]
    return {
        "mean": float(values.mean()),
        "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "n_pairs": int(values.size),
    }


def compute_diversity(
    *,
    real_pixels: np.ndarray,
    real_labels: np.ndarray,
    synthetic_pixels: np.ndarray,
    synthetic_labels: np.ndarray,
    classes: list[str],
    config: DiversityConfig,
) -> dict:
    """Within-class MS-SSIM of synthetic images beside the same for real training images."""
    rng = np.random.default_rng(config.seed)
    size_px = int(min(real_pixels.shape[-1], real_pixels.shape[-2]))
    settings = msssim_settings(size_px)
    per_class: dict[str, dict] = {}
    for idx, name in enumerate(classes):
        entry: dict = {}
        for key, pixels, labels in (
            ("synthetic", synthetic_pixels, synthetic_labels),
            ("real", real_pixels, real_labels),
        ):
            members = pixels[labels == idx]
            n = len(members) if len(members) >= config.min_images else 0
            pairs = random_pairs(n, config.pairs_per_class, rng)
            values = pairwise_msssim(members, pairs, settings=settings, batch_pairs=config.batch_pairs)
            entry[key] = _summary(values, rng) | {"n_images": int(len(members))}
            entry[f"_{key}_values"] = values
        per_class[name] = entry
    result: dict = {
        "per_class": {},
        "msssim_settings": settings | {"image_size_px": size_px},
        "pairs_per_class": config.pairs_per_class,
    }
    pooled: dict[str, list[np.ndarray]] = {"synthetic": [], "real": []}
    for name, entry in per_class.items():
        for key in pooled:
            pooled[key].append(entry.pop(f"_{key}_values"))
        result["per_class"][name] = entry
    result["overall"] = {key: _summary(np.concatenate(vals), rng) for key, vals in pooled.items()}
    result["_values"] = {key: np.concatenate(vals) for key, vals in pooled.items()}
    return result


def _differing_classes(result: dict, *, direction: int) -> list[str]:
    """'CLASS (synthetic vs real MS-SSIM)' for each class whose synthetic MS-SSIM is clearly above (+1) or below (-1)
    the real one: above by 0.05 plus 10% of the room towards 1; below half the real value (a few degrees or pixels
    of misalignment between real images lower MS-SSIM by about a quarter, noise by 70-90%)."""
    found = []
    for name, entry in result["per_class"].items():
        synth, real = entry["synthetic"].get("mean"), entry["real"].get("mean")
        if synth is None or real is None:
            continue
        if (direction > 0 and synth > real + 0.1 * (1 - real) + 0.05) or (direction < 0 and synth < 0.5 * real):
            found.append(f"{name} ({synth:.2f} vs {real:.2f} for real)")
    return found


def collapsed_classes(result: dict) -> list[str]:
    """Classes whose synthetic images are clearly more alike than real ones (mode collapse)."""
    return _differing_classes(result, direction=+1)


def scattered_classes(result: dict) -> list[str]:
    """Classes whose synthetic images are clearly less alike than real ones: unstructured (noise-like) images."""
    return _differing_classes(result, direction=-1)


def diversity_status(result: dict) -> str:
    """poor when any class shows mode collapse or unstructured variety; info when too few images to measure."""
    if collapsed_classes(result) or scattered_classes(result):
        return "poor"
    overall = result["overall"]
    return "good" if "mean" in overall["synthetic"] and "mean" in overall["real"] else "info"


def diversity_verdict(result: dict) -> str:
    """One sentence: are synthetic images of a class as varied as real ones (neither collapsed nor unstructured)?"""
    collapsed, scattered = collapsed_classes(result), scattered_classes(result)
    parts = []
    if collapsed:
        parts.append(
            "Synthetic images within a class look more alike than real ones do: mode collapse, or images smoothed "
            "(blurred, resampled, low contrast: MS-SSIM rises when fine detail is lost; see fidelity): "
            + ", ".join(collapsed)
            + " (MS-SSIM, higher = more alike)."
        )
    if scattered:
        parts.append(
            "Synthetic images within a class share far less structure than real ones do: they vary the way "
            "noise or unaligned images do, not the way patients do (an undertrained or broken generator, or "
            "noise or compression artefacts added to the images; see fidelity): "
            + ", ".join(scattered)
            + " (MS-SSIM, higher = more alike)."
        )
    if parts:
        return " ".join(parts)
    overall = result["overall"]
    if "mean" not in overall["synthetic"] or "mean" not in overall["real"]:
        return "Too few images per class to measure variety."
    return (
        f"Synthetic images vary about as much as real images of the same class "
        f"(MS-SSIM {overall['synthetic']['mean']:.2f} vs {overall['real']['mean']:.2f}; higher = more alike)."
    )
