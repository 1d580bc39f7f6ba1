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


STATUS_COLOURS = {"good": "#2e7d32", "inconclusive": "#9e9e9e", "fair": "#f9a825", "poor": "#c62828", "info": "#9e9e9e"}


def plot_panel_ratios(panels: dict, statuses: dict[str, str], good_ratio: float, path: Path) -> Path:
    """Bars of each panel's overall distance as a multiple of the real-vs-real floor (log scale), coloured by status."""
    names = [n for n, p in panels.items() if "ratio_to_floor" in p["overall"]]
    ratios = [panels[n]["overall"]["ratio_to_floor"]["value"] for n in names]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.bar(names, ratios, color=[STATUS_COLOURS.get(statuses.get(n, "info"), "#9e9e9e") for n in names])
    ax.axhline(good_ratio, color="black", lw=0.8, label=f"good up to {good_ratio:g}x")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="held-out real (floor)")
    ax.set_yscale("log")
    ax.set_ylabel("distance / real-vs-real floor")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def plot_feature_pca(
    real: np.ndarray, synthetic: np.ndarray, path: Path, *, max_points: int = 1000, rng: np.random.Generator
) -> Path:
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
    bins = np.linspace(0, 1, 41).tolist()
    for key, data in values.items():
        if len(data):
            ax.hist(data, bins=bins, alpha=0.5, density=True, label=f"{key} (mean {np.mean(data):.2f})")
    ax.set_xlabel("MS-SSIM of random same-class pairs (higher = more alike)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_similarity_histogram(
    synthetic: np.ndarray, calibration: np.ndarray, threshold: float, path: Path, *, what: str
) -> Path:
    """Nearest-training-image similarity of synthetic and held-out real images, with the copy threshold."""
    fig, ax = plt.subplots(figsize=(5, 3))
    low = float(min(np.min(synthetic, initial=1), np.min(calibration, initial=1)))
    bins = np.linspace(low, 1.0, 50).tolist()
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
        moved = f", {row['angle_deg']:+.0f} deg, zoom {row['zoom']:.2f}" if "angle_deg" in row else ""
        _show(
            ax_row[1],
            train_image,
            f"train {row['train_id']}{' (flipped)' if row.get('flipped') else ''}\nr={row['similarity']:.4f}{moved}",
        )
    for ax in axes[len(rows) :].ravel():
        ax.axis("off")
    return _save(fig, path)
