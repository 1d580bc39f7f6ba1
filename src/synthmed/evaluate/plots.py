"""Figures of the fidelity, diversity and memorisation sections (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from synthmed.files import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _show(ax, image_chw: np.ndarray, title: str) -> None:
    image = image_chw[0] if image_chw.shape[0] == 1 else image_chw.transpose(1, 2, 0)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def plot_fid_bars(result: dict, path: Path) -> Path:
    """FID of synthetic vs real-floor, overall and per class, with 95% bootstrap intervals."""
    names = ["overall", *result["per_class"]]
    blocks = [result["overall"], *result["per_class"].values()]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names) + 2), 3))
    for offset, key, label in ((-0.2, "synthetic", "synthetic vs real train"), (0.2, "real_floor", "held-out real vs real train (floor)")):
        values, errors = [], [[], []]
        for block in blocks:
            fid = block[key].get("fid")
            value = fid["value"] if fid else np.nan
            lo, hi = (fid["ci95"] if fid and fid.get("ci95") else (value, value))
            values.append(value)
            errors[0].append(max(value - lo, 0) if np.isfinite(value) else 0)
            errors[1].append(max(hi - value, 0) if np.isfinite(value) else 0)
        ax.bar(np.arange(len(names)) + offset, values, width=0.4, yerr=errors, capsize=3, label=label)
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_ylabel("FID (lower = closer)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_prdc(result: dict, path: Path) -> Path:
    """Precision, recall, density, coverage of synthetic vs the real floor (overall)."""
    metrics = ["precision", "recall", "density", "coverage"]
    fig, ax = plt.subplots(figsize=(5, 3))
    for offset, key, label in ((-0.2, "synthetic", "synthetic"), (0.2, "real_floor", "held-out real (floor)")):
        block = result["overall"][key]
        values = [block[m]["value"] if m in block else np.nan for m in metrics]
        ax.bar(np.arange(len(metrics)) + offset, values, width=0.4, label=label)
    ax.set_xticks(np.arange(len(metrics)), metrics)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_feature_pca(real: np.ndarray, synthetic: np.ndarray, path: Path, *, max_points: int = 1000,
                     rng: np.random.Generator) -> Path:
    """Real and synthetic features projected on the real features' first two principal axes."""
    real_pts = real[rng.choice(len(real), min(max_points, len(real)), replace=False)]
    synth_pts = synthetic[rng.choice(len(synthetic), min(max_points, len(synthetic)), replace=False)]
    mean = real_pts.mean(axis=0)
    _, _, vt = np.linalg.svd(real_pts - mean, full_matrices=False)
    fig, ax = plt.subplots(figsize=(4, 4))
    for pts, label, marker in ((real_pts, "real train", "o"), (synth_pts, "synthetic", "x")):
        proj = (pts - mean) @ vt[:2].T
        ax.scatter(proj[:, 0], proj[:, 1], s=6, alpha=0.5, marker=marker, label=label)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_msssim(values: dict[str, np.ndarray], path: Path) -> Path:
    """Histograms of within-class MS-SSIM of random pairs, synthetic vs real."""
    fig, ax = plt.subplots(figsize=(5, 3))
    bins = np.linspace(0, 1, 41)
    for key, data in values.items():
        if len(data):
            ax.hist(data, bins=bins, alpha=0.5, density=True, label=f"{key} (mean {np.mean(data):.2f})")
    ax.set_xlabel("MS-SSIM of random same-class pairs (higher = more alike)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_similarity_histogram(synthetic: np.ndarray, calibration: np.ndarray, threshold: float, path: Path, *,
                              what: str) -> Path:
    """Nearest-training-image similarity of synthetic and held-out real images, with the copy threshold."""
    fig, ax = plt.subplots(figsize=(5, 3))
    low = float(min(np.min(synthetic, initial=1), np.min(calibration, initial=1)))
    bins = np.linspace(low, 1.0, 50)
    ax.hist(calibration, bins=bins, alpha=0.5, density=True, label="held-out real")
    ax.hist(synthetic, bins=bins, alpha=0.5, density=True, label="synthetic")
    ax.axvline(threshold, color="red", lw=1, label=f"copy threshold {threshold:.4f}")
    ax.set_xlabel(f"{what} similarity to the nearest training image")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_pairs(synthetic_pixels: np.ndarray, train_pixels: np.ndarray, rows: list[dict], path: Path) -> Path:
    """Synthetic images (left) beside their nearest training images (right), most similar first."""
    count = max(1, len(rows))
    fig, axes = plt.subplots(count, 2, figsize=(3.6, 2.1 * count), squeeze=False)
    fig.subplots_adjust(hspace=0.45)
    for ax_row, row in zip(axes, rows):
        train_image = train_pixels[row["train_index"]]
        if row.get("flipped"):
            train_image = train_image[..., ::-1]
        flag = " COPY" if row.get("flagged") else ""
        _show(ax_row[0], synthetic_pixels[row["synthetic_index"]], f"synthetic {row['synthetic_id']}{flag}")
        _show(ax_row[1], train_image, f"train {row['train_id']}{' (flipped)' if row.get('flipped') else ''}\n"
                                      f"r={row['similarity']:.4f}")
    for ax in axes[len(rows):].ravel():
        ax.axis("off")
    return _save(fig, path)
