"""Fidelity per feature panel: a kernel distance (MMD) of synthetic to real images as a ratio to the real-vs-real floor.

For each panel (low-level intensity and texture; the domain encoder's semantic features),
features are rank-transformed to normal scores on the real training images, then the
squared maximum mean discrepancy with a Gaussian kernel (bandwidth: the median distance between real
training images) is measured between a pool of real training images and

- held-out real images (the floor: what a perfect generator would score), and
- the synthetic images, subsampled to the same count (the biased MMD estimate grows as 1/n, so
  both sides are compared at equal n; the mean over several draws).

The ratio synthetic / floor is near 1 for a generator as good as real data and grows with any
difference the panel can see; its interval is a bootstrap over synthetic images. Whether a ratio
above 1 is more than chance is decided by a permutation test: held-out and synthetic images are
exchanged at random, which is what they would be if they came from one distribution. A verdict
needs both: a ratio beyond GOOD_RATIO (the margin that counts as a real difference) and a
permutation p-value below ALPHA; a large ratio that chance explains is "inconclusive".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.preprocessing import QuantileTransformer

GOOD_RATIO = 3.0
FAIR_RATIO = 9.0
ALPHA = 0.01


@dataclass(frozen=True)
class PanelDistanceConfig:
    """Settings of the panel distances (recorded in metrics.json)."""

    max_reference: int = 2000
    draws: int = 10
    bootstrap_samples: int = 50
    permutations: int = 500
    min_images: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_reference < 10 or self.draws < 1 or self.bootstrap_samples < 0 or self.min_images < 2:
            raise ValueError(f"PanelDistanceConfig out of range: {self}.")


class Standardiser:
    """Per-feature rank transform to standard-normal scores, fitted on real training features (robust to outliers).

    A value beyond the training range maps to the extreme score (about +-5.2), so a degraded set still lands
    far away, but one unusual image cannot dominate the kernel distance.
    """

    def __init__(self, reference: np.ndarray, seed: int = 0):
        reference = np.asarray(reference, dtype=np.float64)
        self.transform = QuantileTransformer(
            n_quantiles=max(2, min(1000, len(reference))), output_distribution="normal", random_state=seed
        ).fit(reference)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        if len(features) == 0:
            return features.astype(np.float32)
        return self.transform.transform(features).astype(np.float32)


def median_bandwidth(x: np.ndarray, rng: np.random.Generator, max_rows: int = 1000) -> float:
    """Median Euclidean distance between distinct rows (on at most `max_rows` rows)."""
    rows = x[rng.choice(len(x), max_rows, replace=False)] if len(x) > max_rows else x
    t = torch.as_tensor(rows)
    dist = torch.cdist(t, t)
    upper = dist[torch.triu(torch.ones_like(dist, dtype=torch.bool), diagonal=1)]
    value = float(upper.median()) if upper.numel() else 1.0
    return value if value > 1e-9 else 1.0


def _kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> torch.Tensor:
    dist2 = torch.cdist(torch.as_tensor(a), torch.as_tensor(b)).double() ** 2
    return torch.exp(-dist2 / (2 * bandwidth**2))


def _mmd2(k_rr_mean: float, k_ss: torch.Tensor, k_rs: torch.Tensor, idx: np.ndarray | None = None) -> float:
    """Biased MMD^2 from kernel blocks; `idx` picks (with repetition) the rows/columns of the compared set."""
    if idx is not None:
        t = torch.as_tensor(idx)
        k_ss = k_ss[t][:, t]
        k_rs = k_rs[:, t]
    return float(k_rr_mean + k_ss.mean() - 2 * k_rs.mean())


class _Reference:
    """The standardised real-train pool with its kernel bandwidth and self-similarity."""

    def __init__(self, pool: np.ndarray, rng: np.random.Generator):
        self.pool = pool
        self.bandwidth = median_bandwidth(pool, rng)
        self.k_rr_mean = float(_kernel(pool, pool, self.bandwidth).mean())

    def distance(self, other: np.ndarray, rng: np.random.Generator, bootstrap: int) -> tuple[float, np.ndarray]:
        k_ss = _kernel(other, other, self.bandwidth)
        k_rs = _kernel(self.pool, other, self.bandwidth)
        value = _mmd2(self.k_rr_mean, k_ss, k_rs)
        boot = np.array(
            [_mmd2(self.k_rr_mean, k_ss, k_rs, rng.integers(0, len(other), len(other))) for _ in range(bootstrap)]
        )
        return value, boot

    def permutation_null(
        self, heldout: np.ndarray, synthetic: np.ndarray, permutations: int, rng: np.random.Generator
    ) -> tuple[float, np.ndarray]:
        """MMD^2(ref, synthetic) - MMD^2(ref, held-out), observed and with the two sets' images exchanged at random."""
        pool = np.concatenate([heldout, synthetic])
        k_pp = _kernel(pool, pool, self.bandwidth)
        to_ref = _kernel(self.pool, pool, self.bandwidth).mean(dim=0)  # [2n]
        n, total = len(heldout), len(pool)
        labels = np.zeros((permutations + 1, total))
        labels[0, n:] = 1.0  # the observed split
        for i in range(1, permutations + 1):
            labels[i, rng.permutation(total)[: len(synthetic)]] = 1.0
        member_s = torch.as_tensor(labels.T)  # [2n, P+1], 1 = "synthetic"
        member_h = 1.0 - member_s
        within_s = (member_s * (k_pp @ member_s)).sum(0) / len(synthetic) ** 2
        within_h = (member_h * (k_pp @ member_h)).sum(0) / n**2
        cross = (to_ref @ member_s) / len(synthetic) - (to_ref @ member_h) / n
        stat = (within_s - within_h - 2 * cross).numpy()
        return float(stat[0]), stat[1:]


def _ci(values: np.ndarray) -> list[float] | None:
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))] if finite.size else None


def compare_panel(
    train: np.ndarray,
    heldout: np.ndarray,
    synthetic: np.ndarray,
    *,
    config: PanelDistanceConfig,
    rng: np.random.Generator,
) -> dict:
    """MMD^2 of held-out real (the floor) and of synthetic images to the real training images, at equal n.

    The synthetic images are subsampled to n = min(held-out, synthetic) (mean over `draws` subsets; the held-out
    set too when larger). The permutation null (`_perm`, summed over classes for the overall test, removed before
    writing) exchanges held-out and synthetic images of the last draw.
    """
    n = min(len(heldout), len(synthetic))
    out: dict = {"n_heldout": int(len(heldout)), "n_synthetic": int(len(synthetic)), "n_compared": int(n)}
    if n < config.min_images or len(train) < 2:
        return out | {"note": f"too few images to compare (need {config.min_images} per set; got {n})"}
    rows = rng.choice(len(train), config.max_reference, replace=False) if len(train) > config.max_reference else None
    reference = _Reference(train if rows is None else train[np.sort(rows)], rng)
    floors, synths = [], []
    for _ in range(config.draws if max(len(heldout), len(synthetic)) > n else 1):
        held = heldout[rng.choice(len(heldout), n, replace=False)] if len(heldout) > n else heldout
        syn = synthetic[rng.choice(len(synthetic), n, replace=False)] if len(synthetic) > n else synthetic
        floors.append(reference.distance(held, rng, 0)[0])
        synths.append(reference.distance(syn, rng, 0)[0])
    sb = reference.distance(syn, rng, config.bootstrap_samples)[1]
    observed, null = reference.permutation_null(held, syn, config.permutations, rng)
    floor, synth = float(np.mean(floors)), float(np.mean(synths))
    out |= {
        "n_reference": int(len(reference.pool)),
        "real_floor_mmd2": {"value": floor},
        "synthetic_mmd2": {"value": synth, "ci95": _ci(sb)},
        "permutation_p": _p_value(observed, null),
        "_perm": (observed, null),
    }
    if floor > 0:
        out["ratio_to_floor"] = {"value": synth / floor, "ci95": _ci(sb / floor)}
    return out


def _p_value(observed: float, null: np.ndarray) -> float | None:
    """One-sided permutation p-value (with the observed arrangement counted), or None without permutations."""
    return float((1 + np.sum(null >= observed)) / (1 + len(null))) if len(null) else None


ALLOWANCE_NOTE = (
    f"good: ratio up to {GOOD_RATIO:g}; else fair up to {FAIR_RATIO:g} and poor beyond, when a "
    f"permutation test (held-out and synthetic images exchanged) gives p < {ALPHA:g}; else inconclusive"
)


def panel_status(block: dict) -> str:
    """good, fair, poor or inconclusive (a ratio beyond GOOD_RATIO that chance explains); info without a ratio."""
    if block.get("missing") or block.get("classes_missing"):
        return "poor"
    ratio = block.get("ratio_to_floor")
    if ratio is None:
        return "info"
    if ratio["value"] <= GOOD_RATIO:
        return "good"
    p_value = block.get("permutation_p")
    if p_value is not None and p_value >= ALPHA:
        return "inconclusive"
    return "fair" if ratio["value"] <= FAIR_RATIO else "poor"


def compute_panel_distances(
    *,
    panels: dict[str, dict[str, np.ndarray]],
    train_labels: np.ndarray,
    heldout_labels: np.ndarray,
    synthetic_labels: np.ndarray,
    classes: list[str],
    config: PanelDistanceConfig,
) -> dict:
    """Per panel: per-class ratios to the floor, and the overall ratio of their sums (class-balanced).

    `panels[name]` holds `train`, `heldout` and `synthetic` feature arrays (rows aligned with the labels).
    Each class is compared with its own real training images, so a class mix that differs between the
    sets does not count as a fidelity difference; a class with real held-out images but no synthetic
    image is reported `missing` (and the overall ratio is then not given).
    """
    rng = np.random.default_rng(config.seed)
    result: dict = {
        "config": asdict(config),
        "thresholds": {"good_at_most": GOOD_RATIO, "fair_at_most": FAIR_RATIO, "alpha": ALPHA, "rule": ALLOWANCE_NOTE},
        "panels": {},
    }
    for name, sets in panels.items():
        scaler = Standardiser(sets["train"], config.seed)
        train, held, synth = scaler(sets["train"]), scaler(sets["heldout"]), scaler(sets["synthetic"])
        per_class = {}
        for idx, cls in enumerate(classes):
            mask_t, mask_h, mask_s = train_labels == idx, heldout_labels == idx, synthetic_labels == idx
            if mask_h.sum() and not mask_s.sum():
                per_class[cls] = {
                    "missing": True,
                    "n_heldout": int(mask_h.sum()),
                    "n_synthetic": 0,
                    "note": "no synthetic image of this class",
                }
            elif mask_t.sum() >= 2:
                per_class[cls] = compare_panel(train[mask_t], held[mask_h], synth[mask_s], config=config, rng=rng)
            else:
                per_class[cls] = {"note": "fewer than 2 real training images of this class"}
        overall = _overall(per_class)
        for block in per_class.values():
            block.pop("_perm", None)
        result["panels"][name] = {"overall": overall, "per_class": per_class, "dims": int(train.shape[1])}
    return result


def _overall(per_class: dict[str, dict]) -> dict:
    """Sums over classes of the synthetic and floor MMD^2, their ratio, its interval and the permutation p-value."""
    compared = [b for b in per_class.values() if "synthetic_mmd2" in b]
    missing = [c for c, b in per_class.items() if b.get("missing")]
    out: dict = {
        "classes_compared": len(compared),
        "classes_missing": missing,
        "n_compared": int(sum(b["n_compared"] for b in compared)),
    }
    if not compared:
        return out | {"note": "no class has enough images in both sets to compare"}
    synth = sum(b["synthetic_mmd2"]["value"] for b in compared)
    floor = sum(b["real_floor_mmd2"]["value"] for b in compared)
    out["synthetic_mmd2"], out["real_floor_mmd2"] = {"value": synth}, {"value": floor}
    out["permutation_p"] = _p_value(sum(b["_perm"][0] for b in compared), sum(b["_perm"][1] for b in compared))
    if missing:
        return out | {"note": f"no synthetic image of {', '.join(missing)}: overall ratio not given"}
    if floor > 0:
        out["ratio_to_floor"] = {"value": synth / floor}
    return out


def worst_panel(result: dict) -> tuple[str | None, float | None]:
    """The panel whose overall ratio to the floor is largest (the aspect that differs most)."""
    ratios = {
        name: p["overall"]["ratio_to_floor"]["value"]
        for name, p in result["panels"].items()
        if "ratio_to_floor" in p["overall"]
    }
    if not ratios:
        return None, None
    name = max(ratios, key=lambda key: ratios[key])
    return name, ratios[name]


STATUS_ORDER = {"info": 0, "good": 1, "inconclusive": 2, "fair": 3, "poor": 4}


def panel_summary_status(result: dict) -> str:
    """The worst overall status over panels (poor > fair > inconclusive > good); a missing class is poor."""
    statuses = [panel_status(panel["overall"]) for panel in result["panels"].values()]
    return max(statuses, key=lambda status: STATUS_ORDER[status], default="info")


def fidelity_panels(
    *,
    train_pixels: np.ndarray,
    heldout_pixels: np.ndarray,
    synthetic_pixels: np.ndarray,
    semantic: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Panel features of the three image sets: the low-level panels, plus `semantic` (train/heldout/synthetic)."""
    from synthmed.evaluate.lowlevel import panel_features

    sets = {"train": train_pixels, "heldout": heldout_pixels, "synthetic": synthetic_pixels}
    computed = {key: panel_features(pixels) for key, pixels in sets.items()}
    panels = {name: {key: computed[key][name] for key in sets} for name in computed["train"]}
    if semantic is not None:
        panels["semantic"] = dict(semantic)
    return panels
