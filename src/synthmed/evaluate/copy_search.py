"""Nearest training image of each query image over flips, rotations, zooms and shifts: the copy search.

People flip, rotate, crop, shift, re-expose, blur, add noise to and re-encode images; a generator that
memorised a training image can reproduce it in any of those ways. The stages are batched tensor products:

1. Candidates: every training image is warped over a grid of flips, rotations and zooms at a small
   size (`coarse_size_px`, blurred; training images of at most `small_image_max_px` use `SMALL_IMAGE_COARSE`,
   a smaller band-passed size); per query, each training image competes once per flip state (its best
   rotation and zoom at the best small shift), so that the mirror of a near-symmetric image cannot take the
   place of the image itself, and the `screen_candidates` best (image, flip) pairs are kept.
2. Screen and verification at `fine_size_px` on band-passed images (difference of Gaussians, applied
   after the warp so that a zoomed candidate keeps the query's band): each screened candidate at its
   coarse variant is correlated with the query at every shift up to `max_shift_frac` of the image (one
   grouped convolution); the best `candidates` are re-warped over a finer local grid of angles and
   zooms. Peaks are interpolated between shifts (a copy shifted by a fraction of a pixel is not
   outscored by another image that happens to sit on the grid).
3. Refinement (synthmed.evaluate.copy_refine): the best `refine_candidates` matches' angle, zoom and shift are
   made continuous by a few gradient steps (all at once); the similarity is the best found, and the transform is
   returned.

The similarity (synthmed.evaluate.copy_fit) is the norm of the query's projection on the span of each warped
candidate, its square and itself blurred, all band-passed: grey-level curves and slight blur are fitted. The
query's own white noise (estimated from the query alone) is discounted from its norm (copy_fit.denoised), so that a
copy with added noise is not mistaken for a different image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthmed.evaluate.copy_fit import (
    banded,
    blur,
    denoised,
    fine_margin_px,
    noise_fraction,
    normalise,
    peaks,
    shift_corr,
    warp,
    window_norms,
)
from synthmed.evaluate.copy_refine import refine


@dataclass(frozen=True)
class CopySearchConfig:
    """Settings of the copy search (recorded in metrics.json)."""

    coarse_size_px: int = 24
    coarse_blur_px: float = 1.0
    coarse_highpass_px: float = 0.0
    coarse_margin_px: int = 3
    coarse_shifts_px: tuple[int, ...] = (-3, -2, -1, 0, 1, 2, 3)
    angles_deg: tuple[float, ...] = (-8.0, -4.0, 0.0, 4.0, 8.0)
    zooms: tuple[float, ...] = (1.0, 1.08, 1.17)
    include_flips: bool = True
    candidates: int = 16
    screen_candidates: int = 100
    screen_blur_px: float = 1.0
    fine_size_px: int = 32
    fine_blur_px: float = 1.0
    fine_highpass_px: float = 3.0
    fine_angle_steps_deg: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)
    fine_zoom_steps: tuple[float, ...] = (0.96, 1.0, 1.04)
    max_shift_frac: float = 0.125
    refine_steps: int = 30
    refine_candidates: int = 2
    refine_lr: float = 0.1
    refine_zoom_lr: float = 0.004
    intensity_fit: bool = True
    blur_fit_px: float = 1.0
    chunk_rows: int = 64
    small_image_max_px: int = 32  # training images this small use SMALL_IMAGE_COARSE (0: never)
    max_noise_fraction: float = 0.5  # query band energy at most this share discounted as white noise (0: off)
    noise_fit_share: float = 0.3  # of a query's noise, the share the search fits (pure noise: mean 0.14-0.20, max 0.3)

    def __post_init__(self) -> None:
        if (
            self.coarse_size_px < 2 * self.coarse_margin_px + 4
            or not 0 <= self.max_shift_frac < 0.4
            or max(map(abs, self.coarse_shifts_px)) > self.coarse_margin_px
            or not 0 <= self.max_noise_fraction < 1
            or not 0 <= self.noise_fit_share < 1
        ):
            raise ValueError(f"CopySearchConfig out of range: {self}.")
        if self.candidates < 1 or not self.angles_deg or not self.zooms:
            raise ValueError(f"CopySearchConfig needs at least one candidate, angle and zoom: {self}.")


# The coarse stage for training images of at most `small_image_max_px` (PneumoniaMNIST's 32 px): half size with a
# band-pass. At 24 px without band-pass, held-out 32 px images reach closer unrelated candidates, which raises the
# calibrated threshold above noisy copies (PneumoniaMNIST, 20 per family: noise recall 45% against 65%).
SMALL_IMAGE_COARSE: dict[str, Any] = {
    "coarse_size_px": 16,
    "coarse_highpass_px": 2.0,
    "coarse_margin_px": 2,
    "coarse_shifts_px": (-2, -1, 0, 1, 2),
}


def coarse_for(config: CopySearchConfig, image_px: int) -> CopySearchConfig:
    """`config` with the coarse stage for training images of side `image_px` (see `SMALL_IMAGE_COARSE`)."""
    return replace(config, **SMALL_IMAGE_COARSE) if image_px <= config.small_image_max_px else config


def grey_signatures(
    pixels_uint8: np.ndarray, *, size_px: int, blur_sigma_px: float, highpass_sigma_px: float = 0.0
) -> torch.Tensor:
    """Grey images `[N, 1, S, S]` in [0, 1] at `size_px` (antialiased), blurred with `blur_sigma_px`.

    With `highpass_sigma_px`, the image blurred that much more is subtracted (a band-pass, difference of
    Gaussians): what all images of a modality share (the overall layout) drops out and the structure
    particular to one image stays.
    """
    x = torch.from_numpy(np.asarray(pixels_uint8)).float().mean(dim=1, keepdim=True) / 255.0
    out = []
    for start in range(0, len(x), 2048):
        chunk = x[start : start + 2048]
        if chunk.shape[-1] != size_px or chunk.shape[-2] != size_px:
            chunk = F.interpolate(chunk, size=(size_px, size_px), mode="bilinear", align_corners=False, antialias=True)
        low = blur(chunk, blur_sigma_px)
        out.append(low - blur(chunk, highpass_sigma_px) if highpass_sigma_px > 0 else low)
    return torch.cat(out) if out else torch.zeros((0, 1, size_px, size_px))


def _variants(config: CopySearchConfig) -> list[tuple[bool, float, float]]:
    flips = (False, True) if config.include_flips else (False,)
    return [(f, a, z) for f in flips for a in config.angles_deg for z in config.zooms]


@dataclass
class CopyIndex:
    """Training images prepared for the search: warped coarse variants and fine images."""

    coarse: torch.Tensor  # [D, V * n_train] normalised centre crops of every variant, variant-major
    fine: torch.Tensor  # [n_train, 1, S, S] fine grey images, unfiltered (warped first, then band-passed)
    variants: list[tuple[bool, float, float]]
    n_train: int
    image_px: int  # side of the training images (picks the coarse stage, `coarse_for`)


def build_copy_index(train_pixels: np.ndarray, *, config: CopySearchConfig) -> CopyIndex:
    """Coarse warped variants (flips x angles x zooms) and fine images of the training set."""
    image_px = int(np.shape(train_pixels)[-1])
    config = coarse_for(config, image_px)
    coarse = grey_signatures(
        train_pixels,
        size_px=config.coarse_size_px,
        blur_sigma_px=config.coarse_blur_px,
        highpass_sigma_px=config.coarse_highpass_px,
    )
    fine = grey_signatures(train_pixels, size_px=config.fine_size_px, blur_sigma_px=0.0)
    m, n = config.coarse_margin_px, len(train_pixels)
    bank = []
    for flip, angle, zoom in _variants(config):
        moved = warp(
            coarse, angle_deg=torch.full((n,), angle), zoom=torch.full((n,), zoom), flip=torch.full((n,), flip)
        )
        bank.append(normalise(moved[:, 0, m:-m, m:-m].reshape(n, -1)))
    return CopyIndex(torch.cat(bank).T.contiguous(), fine, _variants(config), n, image_px)


def _warp_variants(index: CopyIndex, cand: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Fine images of candidates `[B, K]` warped by their coarse variants `[B, K]`: `[B * K, 1, S, S]`."""
    pick = var.reshape(-1)
    table = torch.tensor(index.variants, dtype=torch.float64)
    return warp(index.fine[cand.reshape(-1)], angle_deg=table[pick, 1], zoom=table[pick, 2], flip=table[pick, 0].bool())


def search_copies(
    query_pixels: np.ndarray,
    index: CopyIndex,
    *,
    config: CopySearchConfig,
    exclude_train_index: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """For each query image: the best-matching training image, its correlation and the transform found.

    Returns `similarity` (noise discounted), `train_index`, `flipped`, `angle_deg`, `zoom`, `shift_dy`, `shift_dx`
    (pixels at the fine size) and `noise_fraction` (the query's band energy discounted as its own white noise).
    `exclude_train_index` (one training index per query, e.g. the query itself when the queries are training
    images) is never returned for that query.
    """
    config = coarse_for(config, index.image_px)
    m = config.coarse_margin_px
    coarse_q = grey_signatures(
        query_pixels,
        size_px=config.coarse_size_px,
        blur_sigma_px=config.coarse_blur_px,
        highpass_sigma_px=config.coarse_highpass_px,
    )
    fine_q = grey_signatures(
        query_pixels,
        size_px=config.fine_size_px,
        blur_sigma_px=config.fine_blur_px,
        highpass_sigma_px=config.fine_highpass_px,
    )
    fine_loose = grey_signatures(
        query_pixels,
        size_px=config.fine_size_px,
        blur_sigma_px=config.screen_blur_px,
        highpass_sigma_px=config.fine_highpass_px,
    )
    shift = fine_margin_px(config)
    win = config.fine_size_px - 2 * shift
    n_var, n_train = len(index.variants), index.n_train
    n_flips = 2 if config.include_flips else 1
    pool = n_flips * (n_train - (exclude_train_index is not None))  # the excluded image is never a candidate
    k, screened = min(config.candidates, pool), min(max(config.candidates, config.screen_candidates), pool)
    local = [(da, dz) for da in config.fine_angle_steps_deg for dz in config.fine_zoom_steps]
    keys = ("similarity", "train_index", "flipped", "angle_deg", "zoom", "shift_dy", "shift_dx")
    out: dict[str, list] = {key: [] for key in keys}
    with torch.inference_mode():
        for start in range(0, len(coarse_q), config.chunk_rows):
            chunk = coarse_q[start : start + config.chunk_rows, 0]
            b, size = len(chunk), chunk.shape[-1]
            # Each training image competes once per flip state: a near-symmetric image's mirror must not take the
            # place of the image itself (the fine stage searches only around the variant kept here).
            best_sim = torch.full((b, n_flips * n_train), -3.0)
            best_var = torch.zeros((b, n_flips * n_train), dtype=torch.long)
            for sy in config.coarse_shifts_px:
                for sx in config.coarse_shifts_px:
                    crop = chunk[:, m + sy : size - m + sy, m + sx : size - m + sx]
                    sims = (normalise(crop.reshape(b, -1)) @ index.coarse).view(b, n_flips, n_var // n_flips, n_train)
                    value, variant = sims.max(dim=2)  # [B, flips, n_train]
                    variant = variant + (n_var // n_flips) * torch.arange(n_flips)[:, None]
                    better = value.reshape(b, -1) > best_sim
                    best_sim = torch.where(better, value.reshape(b, -1), best_sim)
                    best_var = torch.where(better, variant.reshape(b, -1), best_var)
            if exclude_train_index is not None:
                own = torch.as_tensor(exclude_train_index[start : start + b])
                for flip_state in range(n_flips):
                    best_sim[torch.arange(b), own + flip_state * n_train] = -2.0
            slots = best_sim.topk(screened, dim=1).indices  # [B, K] (flip state, training image) slots
            cand, var = slots % n_train, best_var.gather(1, slots)  # [B, K]
            queries = fine_q[start : start + b]
            norms = window_norms(queries, win)  # [B, positions]
            if cand.shape[1] > k:
                # Screen: each coarse candidate at its coarse variant only, over shifts; the best k go on.
                # (blurred with `screen_blur_px`; above the fine blur, a candidate between pixels ranks more fairly).
                loose = fine_loose[start : start + b]
                screen_config = replace(config, blur_fit_px=0.0)  # the blur fit only matters among close matches
                warped = banded(_warp_variants(index, cand, var), screen_config, blur_px=config.screen_blur_px)
                screen = shift_corr(loose, window_norms(loose, win), warped, shift)
                keep = peaks(screen, 2 * shift + 1)[0].topk(k, dim=1).indices
                cand, var = cand.gather(1, keep), var.gather(1, keep)
            flips = torch.tensor([v[0] for v in index.variants])[var].reshape(-1)
            angles = torch.tensor([v[1] for v in index.variants])[var].reshape(-1)
            zooms = torch.tensor([v[2] for v in index.variants])[var].reshape(-1)
            # Fine: every candidate re-warped over the local grid, correlated with its query at every shift.
            base = index.fine[cand.reshape(-1)]  # [B*k, 1, S, S]
            bands = banded(
                torch.cat([warp(base, angle_deg=angles + da, zoom=zooms * dz, flip=flips) for da, dz in local]), config
            )
            bands = [x.view(len(local), b, k, *x.shape[1:]).transpose(0, 1).reshape(-1, *x.shape[1:]) for x in bands]
            corr = shift_corr(queries, norms, bands, shift)  # [B, local * k, positions]
            # The best `refine_candidates` candidates (each at its best local variant and shift) go on to refinement.
            peak, dy, dx = (t.view(b, len(local), k) for t in peaks(corr, 2 * shift + 1))
            # The best `refine_candidates` candidates (each at its best local variant and shift) go on to refinement.
            per_cand = peak.max(dim=1)  # over the local grid: [B, k]
            li = per_cand.indices  # [B, k]
            steps = torch.tensor(local, dtype=torch.float64)[li.reshape(-1)].float()
            top = per_cand.values.topk(min(config.refine_candidates, k), dim=1)
            chosen = (top.indices + torch.arange(b)[:, None] * k).reshape(-1)
            out["similarity"].append(top.values.reshape(-1))
            matches = {
                "train_index": cand.reshape(-1),
                "flipped": flips,
                "angle_deg": angles + steps[:, 0],
                "zoom": zooms * steps[:, 1],
                "shift_dy": dy.gather(1, li[:, None]).reshape(-1),
                "shift_dx": dx.gather(1, li[:, None]).reshape(-1),
            }
            for key, values in matches.items():
                out[key].append(values[chosen])
    found = {key: torch.cat(values) for key, values in out.items()}
    r = len(found["similarity"]) // len(fine_q)
    if config.refine_steps:
        found = refine(found, index=index, fine_q=fine_q.repeat_interleave(r, dim=0), config=config)
    best = found["similarity"].view(-1, r).argmax(dim=1) + torch.arange(len(fine_q)) * r
    fraction = torch.zeros(len(fine_q))
    if config.max_noise_fraction > 0 and len(fine_q):
        fraction = noise_fraction(query_pixels, fine_q, config)
    return {key: values[best].numpy() for key, values in found.items()} | {
        "similarity": denoised(found["similarity"][best], fraction, noise_fit_share=config.noise_fit_share)
        .numpy()
        .astype(float),
        "noise_fraction": fraction.numpy(),
    }
