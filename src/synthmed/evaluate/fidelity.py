"""Distribution metrics on features: FID, KID, precision/recall/density/coverage, per class, with bootstrap CIs.

- FID (Heusel et al. 2017): Frechet distance between Gaussians fitted to the two feature sets.
- KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel, mean over subsets.
- Precision / recall / density / coverage (Naeem et al. 2020, "Reliable fidelity and diversity
  metrics"): k-NN balls in feature space, batched `torch.cdist`, never Python loops over images.

Every comparison of synthetic vs real training images sits beside the real-vs-real floor (real
training vs held-out real images): the value a perfect generator would reach with that many images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class FidelityConfig:
    """Settings of the fidelity metrics (recorded in metrics.json)."""

    nearest_k: int = 5
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    bootstrap_samples: int = 50
    seed: int = 0
    chunk_rows: int = 2048

    def __post_init__(self) -> None:
        if self.nearest_k < 1 or self.kid_subsets < 1 or self.bootstrap_samples < 0 or self.kid_subset_size < 2:
            raise ValueError(f"FidelityConfig out of range: {self}.")


def _stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), via the symmetric form sqrt(S1) S2 sqrt(S1)."""
    eigval, eigvec = linalg.eigh(sigma1)
    sqrt_s1 = (eigvec * np.sqrt(np.clip(eigval, 0, None))) @ eigvec.T
    middle = sqrt_s1 @ sigma2 @ sqrt_s1
    tr_covmean = np.sqrt(np.clip(linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean, 0.0))


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two feature sets `[N, D]` (each needs at least 2 rows)."""
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID needs at least 2 images per set; got {len(real)} and {len(fake)}.")
    return frechet_distance_from_stats(*_stats(real), *_stats(fake))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel (x.y / d + 1)^3: float32 products, float64 result."""
    k = np.asarray(x @ y.T, dtype=np.float64) / x.shape[1] + 1.0
    return k * k * k


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    subset_size: int = 1000,
    subsets: int = 100,
    rng: np.random.Generator,
    max_pool: int = 2000,
) -> tuple[float, float]:
    """KID: mean and std over `subsets` random subsets of the unbiased MMD^2 (cubic polynomial kernel).

    The kernel matrices are computed once on a random pool of at most `max_pool` rows per set;
    the sums over all subsets are then matrix products with 0/1 membership matrices.
    """
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set; got {len(real)} and {len(fake)}.")
    x = np.asarray(real, dtype=np.float32)
    y = np.asarray(fake, dtype=np.float32)
    x = x[rng.choice(len(x), max_pool, replace=False)] if len(x) > max_pool else x
    y = y[rng.choice(len(y), max_pool, replace=False)] if len(y) > max_pool else y
    k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    np.fill_diagonal(k_xx, 0.0)
    np.fill_diagonal(k_yy, 0.0)
    member_x, member_y = np.zeros((len(x), subsets)), np.zeros((len(y), subsets))
    for s in range(subsets):
        member_x[rng.choice(len(x), m, replace=False), s] = 1.0
        member_y[rng.choice(len(y), m, replace=False), s] = 1.0
    sum_xx = (member_x * (k_xx @ member_x)).sum(axis=0)
    sum_yy = (member_y * (k_yy @ member_y)).sum(axis=0)
    sum_xy = (member_x * (k_xy @ member_y)).sum(axis=0)
    values = (sum_xx + sum_yy) / (m * (m - 1)) - 2 * sum_xy / (m * m)
    return float(values.mean()), float(values.std())


def knn_radii(features: torch.Tensor, k: int, *, chunk_rows: int = 2048) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the Naeem et al. k-NN ball radius)."""
    k = min(k, len(features) - 1)
    radii = []
    for start in range(0, len(features), chunk_rows):
        dist = torch.cdist(features[start : start + chunk_rows], features)
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def prdc_indicators(real: np.ndarray, fake: np.ndarray, *, k: int = 5, chunk_rows: int = 2048) -> dict[str, np.ndarray]:
    """Per-image terms of precision/density (one per fake image) and recall/coverage (one per real image)."""
    if len(real) <= k or len(fake) <= k:
        raise ValueError(
            f"precision/recall with k={k} needs more than {k} images per set; got {len(real)} and {len(fake)}."
        )
    r = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float32)
    real_radii = knn_radii(r, k, chunk_rows=chunk_rows)
    fake_radii = knn_radii(f, k, chunk_rows=chunk_rows)
    fake_hits = torch.zeros(len(f))
    recall, coverage = [], []
    for start in range(0, len(r), chunk_rows):
        dist = torch.cdist(r[start : start + chunk_rows], f)  # [real chunk, fake]
        inside_real_ball = dist <= real_radii[start : start + chunk_rows, None]
        fake_hits += inside_real_ball.sum(dim=0)
        recall.append((dist <= fake_radii[None, :]).any(dim=1))
        coverage.append(dist.min(dim=1).values <= real_radii[start : start + chunk_rows])
    return {
        "precision": (fake_hits > 0).numpy().astype(float),
        "density": (fake_hits / k).numpy().astype(float),
        "recall": torch.cat(recall).numpy().astype(float),
        "coverage": torch.cat(coverage).numpy().astype(float),
    }


def _ci(samples: list[float] | np.ndarray) -> list[float] | None:
    samples = np.asarray(samples, dtype=float)
    if samples.size == 0:
        return None
    return [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]


def compare_sets(real: np.ndarray, fake: np.ndarray, *, config: FidelityConfig, rng: np.random.Generator) -> dict:
    """FID, KID and PRDC of `fake` against `real`, each with a 95% bootstrap interval and the counts."""
    out: dict = {"n_real": int(len(real)), "n_compared": int(len(fake))}
    if len(real) < 2 or len(fake) < 2:
        return out | {"note": "too few images for distribution metrics (need at least 2 per set)"}
    fid_boot = []
    for _ in range(config.bootstrap_samples):
        fid_boot.append(
            frechet_distance(real[rng.integers(0, len(real), len(real))], fake[rng.integers(0, len(fake), len(fake))])
        )
    out["fid"] = {"value": frechet_distance(real, fake), "ci95": _ci(fid_boot)}
    kid_mean, kid_std = kernel_inception_distance(
        real, fake, subset_size=config.kid_subset_size, subsets=config.kid_subsets, rng=rng
    )
    out["kid"] = {
        "value": kid_mean,
        "std": kid_std,
        "ci95": [kid_mean - 1.96 * kid_std, kid_mean + 1.96 * kid_std],
        "subset_size": int(min(config.kid_subset_size, len(real), len(fake))),
    }
    if len(real) <= config.nearest_k or len(fake) <= config.nearest_k:
        return out | {"note": f"too few images for precision/recall with k={config.nearest_k}"}
    terms = prdc_indicators(real, fake, k=config.nearest_k, chunk_rows=config.chunk_rows)
    for name, values in terms.items():
        boot = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(config.bootstrap_samples)]
        out[name] = {"value": float(values.mean()), "ci95": _ci(boot)}
    return out


def _fid_at_n(real: np.ndarray, fake: np.ndarray, n: int, rng: np.random.Generator) -> dict | None:
    if n < 2 or len(fake) <= n:
        return None
    return {"value": frechet_distance(real, fake[rng.choice(len(fake), n, replace=False)]), "n": int(n)}


def compute_fidelity(
    *,
    train: np.ndarray,
    train_labels: np.ndarray,
    heldout: np.ndarray,
    heldout_labels: np.ndarray,
    synthetic: np.ndarray,
    synthetic_labels: np.ndarray,
    classes: list[str],
    config: FidelityConfig,
) -> dict:
    """Synthetic vs real-train and held-out-real vs real-train (the floor), overall and per class.

    BLAS runs single-threaded here: the matrices are small (features x features) and multi-threaded
    OpenBLAS was 16x slower on a shared 2-core machine.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _compute_fidelity(
            train=train,
            train_labels=train_labels,
            heldout=heldout,
            heldout_labels=heldout_labels,
            synthetic=synthetic,
            synthetic_labels=synthetic_labels,
            classes=classes,
            config=config,
        )


def _compute_fidelity(
    *, train, train_labels, heldout, heldout_labels, synthetic, synthetic_labels, classes, config: FidelityConfig
) -> dict:
    rng = np.random.default_rng(config.seed)

    def block(mask_train: np.ndarray, mask_held: np.ndarray, mask_synth: np.ndarray) -> dict:
        real, held, synth = train[mask_train], heldout[mask_held], synthetic[mask_synth]
        result = {
            "synthetic": compare_sets(real, synth, config=config, rng=rng),
            "real_floor": compare_sets(real, held, config=config, rng=rng),
        }
        matched = _fid_at_n(real, synth, len(held), rng)
        if matched:  # FID is biased by sample size: also give synthetic FID at the floor's image count
            result["synthetic"]["fid_at_floor_n"] = matched
        # The ratio compares equal image counts when it can (synthetic FID at the floor's n).
        fid_s = result["synthetic"].get("fid_at_floor_n") or result["synthetic"].get("fid")
        fid_f = result["real_floor"].get("fid")
        if fid_s and fid_f and fid_f["value"] > 0:
            result["fid_ratio_to_floor"] = fid_s["value"] / fid_f["value"]
        return result

    everything = (np.ones(len(train), bool), np.ones(len(heldout), bool), np.ones(len(synthetic), bool))
    per_class = {}
    for idx, name in enumerate(classes):
        per_class[name] = block(train_labels == idx, heldout_labels == idx, synthetic_labels == idx)
    return {"overall": block(*everything), "per_class": per_class, "config": config.__dict__}
