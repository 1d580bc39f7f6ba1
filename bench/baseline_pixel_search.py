"""The previous copy detector, kept as the benchmark baseline: correlation over flips and shifts only (vectorised).

Moved here from synthmed.evaluate.memorisation when the copy search (synthmed.evaluate.copy_search) replaced
it; bench/copy_detection.py measures both on the same planted copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synthmed.evaluate.copy_search import grey_signatures


@dataclass(frozen=True)
class BaselineConfig:
    """The previous defaults: coarse search at 32 px (+-2 px), fine at 64 px (+-4 px), flips, 8 candidates."""

    compare_size_px: int = 32
    max_shift_px: int = 2
    blur_sigma_px: float = 1.0
    fine_size_px: int = 64
    fine_max_shift_px: int = 4
    fine_blur_sigma_px: float = 1.0
    candidates: int = 8
    include_flips: bool = True
    chunk_rows: int = 512


def pixel_signatures(pixels_uint8: np.ndarray, *, size_px: int, blur_sigma_px: float) -> torch.Tensor:
    """Grey images `[N, S, S]` at the comparison size, antialiased and blurred (float32)."""
    return grey_signatures(pixels_uint8, size_px=size_px, blur_sigma_px=blur_sigma_px)[:, 0]


def _normalise(flat: torch.Tensor) -> torch.Tensor:
    flat = flat - flat.mean(dim=-1, keepdim=True)
    return flat / flat.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def _crop(images: torch.Tensor, dy: int, dx: int, margin: int) -> torch.Tensor:
    size = images.shape[-1]
    return _normalise(
        images[:, margin + dy : size - margin + dy, margin + dx : size - margin + dx].reshape(len(images), -1)
    )


@dataclass
class PixelIndex:
    """Training images prepared for the two-stage search: coarse (small, blurred) and fine (larger) crops."""

    coarse: torch.Tensor  # [D, n_train * (1 + flips)] centre crops, columns normalised (zero mean, unit norm)
    fine: torch.Tensor  # [n_train * (1 + flips), D'] centre crops, rows normalised (zero mean, unit norm)
    n_train: int
    fine_size_px: int


def build_pixel_index(train_pixels: np.ndarray, *, config: BaselineConfig) -> PixelIndex:
    """Signatures of the training images (and of their horizontal flips) at both comparison sizes."""
    fine_size = max(config.compare_size_px, min(config.fine_size_px, int(train_pixels.shape[-1])))
    coarse = pixel_signatures(train_pixels, size_px=config.compare_size_px, blur_sigma_px=config.blur_sigma_px)
    fine = pixel_signatures(train_pixels, size_px=fine_size, blur_sigma_px=config.fine_blur_sigma_px)
    fine_margin = _fine_margin(config, fine_size)
    coarse_bank, fine_bank = [_crop(coarse, 0, 0, config.max_shift_px)], [_crop(fine, 0, 0, fine_margin)]
    if config.include_flips:
        coarse_bank.append(_crop(coarse.flip(-1), 0, 0, config.max_shift_px))
        fine_bank.append(_crop(fine.flip(-1), 0, 0, fine_margin))
    return PixelIndex(torch.cat(coarse_bank).T.contiguous(), torch.cat(fine_bank), len(train_pixels), fine_size)


def _fine_margin(config: BaselineConfig, fine_size: int) -> int:
    return max(1, int(round(config.fine_max_shift_px * fine_size / config.fine_size_px)))


def _window_norms(images: torch.Tensor, window: int) -> torch.Tensor:
    """Centred L2 norm of every `window`-square crop: `[N, shifts_y, shifts_x]` (box sums, no crop copies)."""
    x = images[:, None].double()
    count = window * window
    sums = F.avg_pool2d(x, window, stride=1) * count
    squares = F.avg_pool2d(x * x, window, stride=1) * count
    return (squares - sums * sums / count).clamp(min=1e-12).sqrt()[:, 0].float()


def nearest_by_pixels(
    query_pixels: np.ndarray, index: PixelIndex, *, config: BaselineConfig, exclude_self: bool = False
) -> dict[str, np.ndarray]:
    """For each query image: the most correlated training image over shifts (and flips).

    Two stages, both batched products: a coarse search over all training images at
    `compare_size_px` keeps the `candidates` best per query (max over integer shifts); a fine
    search at `fine_size_px` re-scores only those over `fine_max_shift_px` shifts (one grouped
    convolution). Training crops are zero-mean and unit-norm, so a query crop's correlation is its
    dot product divided by its centred norm. Returns `similarity`, `train_index`, `flipped`,
    `shift_dy`, `shift_dx` (pixels at the fine size). `exclude_self` (queries are the training
    images themselves, in order) skips each one's own rows.
    """
    m, n_train, size = config.max_shift_px, index.n_train, config.compare_size_px
    fine_m, fine_size = _fine_margin(config, index.fine_size_px), index.fine_size_px
    coarse_q = pixel_signatures(query_pixels, size_px=size, blur_sigma_px=config.blur_sigma_px)
    fine_q = pixel_signatures(query_pixels, size_px=fine_size, blur_sigma_px=config.fine_blur_sigma_px)
    k = min(config.candidates, index.coarse.shape[1])
    win, fine_win = size - 2 * m, fine_size - 2 * fine_m
    out = {key: [] for key in ("similarity", "column", "dy", "dx")}
    with torch.inference_mode():
        for start in range(0, len(coarse_q), config.chunk_rows):
            chunk = coarse_q[start : start + config.chunk_rows]
            rows = torch.arange(len(chunk))
            norms = _window_norms(chunk, win)
            # Coarse: running max over shifts of correlations with every training image.
            best = None
            for dy in range(2 * m + 1):
                for dx in range(2 * m + 1):
                    crop = chunk[:, dy : dy + win, dx : dx + win].reshape(len(chunk), -1)
                    sims = (crop @ index.coarse) / norms[:, dy, dx, None]
                    best = sims if best is None else torch.maximum(best, sims)
            if exclude_self:
                best[rows, rows + start] = -2.0
                if config.include_flips:
                    best[rows, rows + start + n_train] = -2.0
            columns = best.topk(k, dim=1).indices  # [B, k]
            # Fine: correlate each query with its candidates at every shift in one grouped convolution.
            fine_chunk = fine_q[start : start + config.chunk_rows]
            kernels = index.fine[columns].reshape(len(chunk) * k, 1, fine_win, fine_win)
            dots = F.conv2d(fine_chunk[None], kernels, groups=len(chunk))[0]  # [B*k, 2fm+1, 2fm+1]
            sims = dots.reshape(len(chunk), k, -1) / _window_norms(fine_chunk, fine_win).reshape(len(chunk), 1, -1)
            flat = sims.reshape(len(chunk), -1).max(dim=1)
            pick, shift = flat.indices // sims.shape[-1], flat.indices % sims.shape[-1]
            out["similarity"].append(flat.values.clamp(-1, 1))
            out["column"].append(columns[rows, pick])
            out["dy"].append(shift // (2 * fine_m + 1) - fine_m)
            out["dx"].append(shift % (2 * fine_m + 1) - fine_m)
    if not out["similarity"]:
        return {
            "similarity": np.zeros(0),
            "train_index": np.zeros(0, int),
            "flipped": np.zeros(0, bool),
            "shift_dy": np.zeros(0, int),
            "shift_dx": np.zeros(0, int),
        }
    col = torch.cat(out["column"]).numpy()
    return {
        "similarity": torch.cat(out["similarity"]).numpy().astype(float),
        "train_index": col % n_train,
        "flipped": col >= n_train,
        "shift_dy": torch.cat(out["dy"]).numpy(),
        "shift_dx": torch.cat(out["dx"]).numpy(),
    }
