"""Memorisation: each synthetic image's nearest training image, and a copy threshold calibrated on held-out real images.

Pixel similarity comes from the copy search (synthmed.evaluate.copy_search): the best normalised
correlation over flips, rotations, zooms and shifts of the training images, with grey-level curves and
slight blur fitted, so that a copy that was flipped, rotated, cropped, shifted, re-exposed, blurred,
noised or re-encoded still matches. Feature
similarity is the cosine of extractor features. Both are batched tensor products.

The copy threshold of each similarity is set where ordinary held-out real images stop: the
`calibration_quantile` of held-out real images' nearest-train similarity, moved `margin` of the
way towards 1. Held-out images that are themselves near-duplicates of a training image (synthmed's
one definition, mirrored copies included: synthmed.data.quality) are leakage in the real data, not
ordinary images: they are left out of the calibration, counted and reported. A synthetic image is
flagged when its pixel similarity passes the threshold; the feature similarity is reported beside it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from synthmed.data.quality import NEAR_DUPLICATE_CORRELATION, near_duplicates_of
from synthmed.evaluate.copy_search import CopySearchConfig, build_copy_index, search_copies

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemorisationConfig:
    """Settings of the copy search and of the copy threshold (recorded in metrics.json)."""

    search: CopySearchConfig = field(default_factory=CopySearchConfig)
    calibration_quantile: float = 0.99
    margin: float = 0.25
    top_pairs: int = 8
    max_calibration_images: int = 1000

    def __post_init__(self) -> None:
        if not 0.5 <= self.calibration_quantile <= 1 or not 0 <= self.margin < 1:
            raise ValueError(f"calibration_quantile must be in [0.5, 1] and margin in [0, 1); got {self}.")

    def record(self) -> dict:
        """Every setting, as plain JSON values."""
        return asdict(self)


def nearest_by_features(
    queries: np.ndarray, train: np.ndarray, *, chunk_rows: int = 2048, exclude_self: bool = False
) -> dict[str, np.ndarray]:
    """For each query feature vector: the training feature with the highest cosine similarity."""
    q = F.normalize(torch.as_tensor(np.asarray(queries), dtype=torch.float32), dim=1)
    t = F.normalize(torch.as_tensor(np.asarray(train), dtype=torch.float32), dim=1).T.contiguous()
    values, index = [], []
    with torch.inference_mode():
        for start in range(0, len(q), chunk_rows):
            sims = q[start : start + chunk_rows] @ t
            if exclude_self:
                rows = torch.arange(len(sims))
                sims[rows, rows + start] = -2.0
            v, i = sims.max(dim=1)
            values.append(v)
            index.append(i)
    if not values:
        return {"similarity": np.zeros(0), "train_index": np.zeros(0, dtype=int)}
    return {"similarity": torch.cat(values).numpy().astype(float), "train_index": torch.cat(index).numpy()}


def calibrate_threshold(heldout_similarity: np.ndarray, *, quantile: float, margin: float) -> float:
    """The copy threshold: the held-out quantile moved `margin` of the way towards 1 (perfect copy)."""
    q = float(np.quantile(heldout_similarity, quantile))
    return q + margin * (1.0 - q)


MIN_CALIBRATION_IMAGES = 20


def suspected_leaks(similarity: np.ndarray, *, fence: float = 3.0) -> np.ndarray:
    """Calibration images whose closeness to a training image is a far outlier among them (Tukey's far-out fence).

    Closeness is -log(1 - similarity), so the scale opens up near 1; an image beyond the upper quartile plus
    `fence` inter-quartile ranges is far closer to some training image than ordinary held-out images are.
    """
    if len(similarity) < MIN_CALIBRATION_IMAGES:
        return np.zeros(len(similarity), dtype=bool)
    closeness = -np.log(np.clip(1.0 - np.asarray(similarity, dtype=float), 1e-9, None))
    q25, q75 = np.percentile(closeness, [25, 75])
    return closeness > q75 + fence * (q75 - q25)


def find_copies(
    *,
    train_pixels: np.ndarray,
    heldout_pixels: np.ndarray | None,
    synthetic_pixels: np.ndarray,
    train_features: np.ndarray | None,
    heldout_features: np.ndarray | None,
    synthetic_features: np.ndarray | None,
    config: MemorisationConfig,
    rng: np.random.Generator,
) -> dict:
    """Nearest training image of every synthetic image, calibrated thresholds, leakage, and the copy flags.

    Without held-out real images, the thresholds are calibrated on training images against the
    other training images (leave-one-out), and the result says so.
    """
    if len(train_pixels) < 2:
        raise ValueError(f"memorisation needs at least 2 real training images; got {len(train_pixels)}.")
    index = build_copy_index(train_pixels, config=config.search)
    synth_pix = search_copies(synthetic_pixels, index, config=config.search)
    use_heldout = heldout_pixels is not None and len(heldout_pixels) >= 2
    leakage: dict = {
        "definition": f"thumbnail correlation >= {NEAR_DUPLICATE_CORRELATION}, mirrored copies included "
        f"(the dataset card's near-duplicate rule)",
        "n_heldout": 0,
        "n_leaked": 0,
        "heldout_index": [],
        "train_index": [],
    }
    if heldout_pixels is not None and use_heldout:
        best, partner = near_duplicates_of(heldout_pixels, train_pixels)
        leaked = best >= NEAR_DUPLICATE_CORRELATION
        leakage |= {
            "n_heldout": int(len(heldout_pixels)),
            "n_leaked": int(leaked.sum()),
            "heldout_index": np.flatnonzero(leaked).tolist(),
            "train_index": partner[leaked].tolist(),
        }
        pool = np.flatnonzero(~leaked)
        use_heldout = len(pool) >= 2
    if heldout_pixels is not None and use_heldout:
        calib = np.sort(rng.choice(pool, min(len(pool), config.max_calibration_images), replace=False))
        calib_pix = search_copies(heldout_pixels[calib], index, config=config.search)
    else:
        calib = np.sort(
            rng.choice(len(train_pixels), min(len(train_pixels), config.max_calibration_images), replace=False)
        )
        calib_pix = search_copies(train_pixels[calib], index, config=config.search, exclude_train_index=calib)
    # Held-out images far closer to a training image than the rest are (another slice of one patient, a rotated
    # copy: leaks the near-duplicate rule cannot see) would set the threshold on their own; they are reported.
    suspect = suspected_leaks(calib_pix["similarity"])
    leakage["n_suspected"] = int(suspect.sum())
    leakage["suspected"] = [
        {
            "index": int(calib[i]),
            "train_index": int(calib_pix["train_index"][i]),
            "similarity": round(float(calib_pix["similarity"][i]), 4),
        }
        for i in np.flatnonzero(suspect)
    ]
    kept = calib_pix["similarity"][~suspect]
    result: dict = {
        "calibration": (
            "held-out real vs train, leaked and suspected held-out images excluded"
            if use_heldout
            else "train vs other train images (no usable held-out real)"
        ),
        "heldout_used": bool(use_heldout),
        "n_calibration": int(len(kept)),
        "leakage": leakage,
        "too_few_calibration": bool(len(kept) < MIN_CALIBRATION_IMAGES),
        "pixel": {
            "nearest": synth_pix,
            "calibration_similarity": kept,
            "threshold": calibrate_threshold(kept, quantile=config.calibration_quantile, margin=config.margin),
        },
    }
    result["flagged"] = synth_pix["similarity"] >= result["pixel"]["threshold"]
    if train_features is not None and synthetic_features is not None:
        synth_feat = nearest_by_features(synthetic_features, train_features)
        if use_heldout and heldout_features is not None:
            calib_feat = nearest_by_features(heldout_features[calib], train_features)["similarity"]
        else:
            calib_feat = nearest_by_features(train_features, train_features, exclude_self=True)["similarity"][calib]
        result["feature"] = {
            "nearest": synth_feat,
            "calibration_similarity": calib_feat,
            "threshold": calibrate_threshold(calib_feat, quantile=config.calibration_quantile, margin=config.margin),
        }
    return result


def memorisation_verdict(
    *, share_flagged: float, n_flagged: int, n_synthetic: int, leakage: dict | None = None, rests_on: dict | None = None
) -> str:
    """One sentence on whether the generator copies its training images, with leakage and what it rests on."""
    if rests_on and rests_on["n_calibration"] < MIN_CALIBRATION_IMAGES:
        text = (
            f"Too few real images ({rests_on['n_calibration']}) to calibrate a copy threshold (at least "
            f"{MIN_CALIBRATION_IMAGES} needed): {n_flagged} of {n_synthetic} synthetic images pass the provisional "
            f"threshold, which says little. Evaluate against a dataset with a larger val or test split."
        )
    elif n_flagged == 0:
        text = (
            f"None of the {n_synthetic} synthetic images is a near-copy of a training image, even flipped, "
            f"rotated, zoomed or shifted (closer than any ordinary held-out real image gets)."
        )
    else:
        text = (
            f"{n_flagged} of {n_synthetic} synthetic images ({share_flagged:.1%}) are near-copies of training "
            f"images (closer than ordinary held-out real images get): review the pairs shown before sharing them."
        )
    if leakage and leakage.get("n_leaked"):
        text += (
            f" The real data leaks: {leakage['n_leaked']} of {leakage['n_heldout']} held-out images are "
            f"near-duplicates of training images (mirrored copies included); they were left out of the "
            f"calibration, and the dataset's split should be fixed."
        )
    if leakage and leakage.get("n_suspected"):
        text += (
            f" {leakage['n_suspected']} more held-out image{'s are' if leakage['n_suspected'] != 1 else ' is'} far "
            f"closer to a training image than the others "
            f"(likely the same patient or a transformed copy: see memorisation.leakage.suspected); they were "
            f"left out of the calibration too."
        )
    if rests_on:
        calibrated_on = (
            "held-out calibration images"
            if rests_on.get("heldout_used", True)
            else "training images searched against the other training images (no held-out split)"
        )
        text += (
            f" Rests on: {rests_on['n_calibration']} {calibrated_on} and {rests_on['n_real_train']} "
            f"training images at {rests_on['image_size_px']} px (searched at {rests_on['search_size_px']} px)."
        )
    return text
