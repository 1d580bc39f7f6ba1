"""Blinding audit: can low-level, non-anatomical features of the served files tell synthetic from real?

Features of each served image (decoded as the browser decodes it): intensity range and spread, histogram
quantisation (distinct levels, empty bins), sharpness (Laplacian / std), noise spectrum (share of
spectral power in the outer frequency bands), JPEG blockiness (edge steps on the 8-px grid against
elsewhere), compressibility (bytes per pixel at PNG level 9) and colourfulness. A standardised logistic
regression is cross-validated (stratified folds) and compared with label permutations
(scikit-learn `permutation_test_score`). Above chance (p < alpha and accuracy >= min_accuracy), the
sides are separable by how the files were made rather than by what they show.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, permutation_test_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = {
    "min_intensity": "darkest pixel",
    "max_intensity": "brightest pixel",
    "mean_intensity": "mean intensity",
    "std_intensity": "intensity spread",
    "p01_intensity": "1st percentile",
    "p99_intensity": "99th percentile",
    "distinct_levels": "number of distinct grey levels",
    "empty_bins": "share of empty histogram bins in range",
    "sharpness": "sharpness (Laplacian / std)",
    "high_freq_power": "noise spectrum (outer-band power)",
    "jpeg_blockiness": "JPEG blockiness (8-px grid steps)",
    "png_bytes_per_px": "compressibility",
    "colourfulness": "colourfulness",
}
"""Feature name -> how the refusal message names it."""


def _features(png: bytes) -> dict[str, float]:
    with Image.open(io.BytesIO(png)) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
        grey = np.asarray(img.convert("L"), dtype=np.float64)
    levels = np.unique(grey.astype(np.uint8))
    span = int(levels[-1] - levels[0]) + 1
    std = float(grey.std()) or 1.0
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean()))) ** 2
    fy, fx = np.meshgrid(np.linspace(-1, 1, grey.shape[0]), np.linspace(-1, 1, grey.shape[1]), indexing="ij")
    outer = np.hypot(fy, fx) > 0.5
    steps_x = np.abs(np.diff(grey, axis=1))
    on_grid = steps_x[:, 7::8].mean() if steps_x.shape[1] > 8 else 0.0
    off_grid = np.delete(steps_x, np.s_[7::8], axis=1).mean() if steps_x.shape[1] > 8 else 1.0
    buffer = io.BytesIO()
    Image.fromarray(grey.astype(np.uint8)).save(buffer, format="PNG", compress_level=9)
    return {
        "min_intensity": float(grey.min()),
        "max_intensity": float(grey.max()),
        "mean_intensity": float(grey.mean()),
        "std_intensity": float(grey.std()),
        "p01_intensity": float(np.percentile(grey, 1)),
        "p99_intensity": float(np.percentile(grey, 99)),
        "distinct_levels": float(len(levels)),
        "empty_bins": 1.0 - len(levels) / span,
        "sharpness": float(ndimage.laplace(grey).std() / std),
        "high_freq_power": float(spectrum[outer].sum() / max(spectrum.sum(), 1e-12)),
        "jpeg_blockiness": float(on_grid / max(off_grid, 1e-6)),
        "png_bytes_per_px": len(buffer.getvalue()) / grey.size,
        "colourfulness": float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean()),
    }


@dataclass
class AuditResult:
    """What the audit found; `passed` is False when the files alone separate the sides."""

    accuracy: float
    p_value: float
    n_real: int
    n_synthetic: int
    passed: bool
    giveaway: str | None
    giveaway_auc: float
    feature_auc: dict[str, float] = field(default_factory=dict)
    overridden: bool = False
    summary: str = ""

    def to_dict(self) -> dict:
        """JSON-ready copy (stored with the study, shown in the results)."""
        return asdict(self)


def audit(
    pngs: list[bytes],
    is_synthetic: list[bool],
    *,
    alpha: float = 0.01,
    min_accuracy: float = 0.6,
    permutations: int = 200,
    seed: int = 0,
) -> AuditResult:
    """Cross-validated classifier + permutation test on the served files' low-level features."""
    y = np.asarray(is_synthetic, dtype=bool)
    n_syn, n_real = int(y.sum()), int((~y).sum())
    if min(n_syn, n_real) < 3:
        return AuditResult(
            accuracy=float("nan"),
            p_value=1.0,
            n_real=n_real,
            n_synthetic=n_syn,
            passed=True,
            giveaway=None,
            giveaway_auc=0.5,
            summary=f"NOT RUN, too few images to judge ({n_real} real and {n_syn} synthetic; needs 3 of each): "
            f"nothing shows the sides are indistinguishable",
        )
    rows = [_features(png) for png in pngs]
    names = list(FEATURES)
    x = np.array([[row[name] for name in names] for row in rows])
    aucs = {name: float(roc_auc_score(y, x[:, k])) if np.ptp(x[:, k]) > 0 else 0.5 for k, name in enumerate(names)}
    folds = StratifiedKFold(n_splits=min(5, n_syn, n_real), shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    accuracy, _, p_value = permutation_test_score(
        model, x, y, cv=folds, n_permutations=permutations, random_state=seed, scoring="accuracy"
    )
    giveaway = max(aucs, key=lambda name: abs(aucs[name] - 0.5))
    passed = not (p_value < alpha and accuracy >= min_accuracy)
    direction = "higher" if aucs[giveaway] > 0.5 else "lower"
    summary = (
        f"classifier on file features: cross-validated accuracy {accuracy:.0%} (chance 50%), permutation "
        f"p = {p_value:.3g}, {n_real} real / {n_syn} synthetic; strongest single feature: "
        f"{FEATURES[giveaway]} ({direction} on the synthetic side, AUC {aucs[giveaway]:.2f})"
    )
    return AuditResult(
        accuracy=round(float(accuracy), 4),
        p_value=round(float(p_value), 4),
        n_real=n_real,
        n_synthetic=n_syn,
        passed=passed,
        giveaway=None if passed else giveaway,
        giveaway_auc=round(aucs[giveaway], 4),
        feature_auc={k: round(v, 4) for k, v in aucs.items()},
        summary=summary,
    )


def refusal(result: AuditResult) -> str:
    """The one-line error `study create` exits with when the audit fails."""
    return (
        f"blinding audit failed: the served files give the sides away ({result.summary}). Fix: pass --match "
        "(`match = true` in an experiment's [study.NAME]: both sides resampled from one common size and "
        "intensity-normalised the same way), or, if it is on already, generate synthetic images closer to the real "
        "ones (a longer-trained model, the real images' size and bit depth); --allow-unblinded (`allow_unblinded "
        "= true`) creates the study anyway and its results will say so."
    )
