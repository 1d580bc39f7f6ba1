"""Nearest training image of each query image over flips, rotations, zooms and shifts: the copy search.

People flip, rotate, crop, shift, re-expose, blur, add noise to and re-encode images; a generator that
memorised a training image can reproduce it in any of those ways. The stages are batched tensor products:

1. Candidates: every training image is warped over a grid of flips, rotations and zooms at a small
   size (`coarse_size_px`, band-passed so that the layout all images of a modality share drops out);
   the `screen_candidates` training images with the best normalised correlation (max over variants and
   small shifts) are kept per query.
2. Screen and verification at `fine_size_px` on band-passed images (difference of Gaussians, applied
   after the warp so that a zoomed candidate keeps the query's band): each screened candidate at its
   coarse variant is correlated with the query at every shift up to `max_shift_frac` of the image (one
   grouped convolution); the best `candidates` are re-warped over a finer local grid of angles and
   zooms. Peaks are interpolated between shifts (a copy shifted by a fraction of a pixel is not
   outscored by another image that happens to sit on the grid).
3. Refinement: the best `refine_candidates` matches' angle, zoom and shift are made continuous by a few
   gradient steps (all at once); the similarity is the best found, and the transform is returned.

The similarity is the norm of the query's projection on the space each warped candidate spans with its
square (`intensity_fit`: a gamma curve, contrast and brightness are near-quadratic in grey level) and
with itself blurred (`blur_fit_px`: a slight blur), all band-passed: an exact copy re-exposed or
blurred scores near 1; noise and JPEG are damped by the blur applied to both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CopySearchConfig:
    """Settings of the copy search (recorded in metrics.json)."""

    coarse_size_px: int = 16
    coarse_blur_px: float = 1.0
    coarse_highpass_px: float = 2.0
    coarse_margin_px: int = 2
    coarse_shifts_px: tuple[int, ...] = (-2, -1, 0, 1, 2)
    angles_deg: tuple[float, ...] = (-8.0, -4.0, 0.0, 4.0, 8.0)
    zooms: tuple[float, ...] = (1.0, 1.08, 1.17)
    include_flips: bool = True
    candidates: int = 16
    screen_candidates: int = 100
    screen_blur_px: float = 1.0
    fine_size_px: int = 32
    fine_blur_px: float = 1.0
    fine_highpass_px: float = 3.0
    fine_angle_steps_deg: tuple[float, ...] = (-2.0, 0.0, 2.0)
    fine_zoom_steps: tuple[float, ...] = (0.96, 1.0, 1.04)
    max_shift_frac: float = 0.125
    refine_steps: int = 30
    refine_candidates: int = 2
    refine_lr: float = 0.1
    refine_zoom_lr: float = 0.004
    intensity_fit: bool = True
    blur_fit_px: float = 1.0
    chunk_rows: int = 64

    def __post_init__(self) -> None:
        if (
            self.coarse_size_px < 2 * self.coarse_margin_px + 4
            or not 0 <= self.max_shift_frac < 0.4
            or max(map(abs, self.coarse_shifts_px)) > self.coarse_margin_px
        ):
            raise ValueError(f"CopySearchConfig out of range: {self}.")
        if self.candidates < 1 or not self.angles_deg or not self.zooms:
            raise ValueError(f"CopySearchConfig needs at least one candidate, angle and zoom: {self}.")


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


def blur(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of `[N, 1, H, W]` with reflected borders."""
    if sigma_px <= 0:
        return images
    radius = max(1, int(np.ceil(2.5 * sigma_px)))
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma_px**2))
    taps = taps / taps.sum()
    x = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), taps.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), taps.view(1, 1, -1, 1))


def warp(
    images: torch.Tensor,
    *,
    angle_deg: torch.Tensor,
    zoom: torch.Tensor,
    flip: torch.Tensor,
    shift_px: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rotate (degrees), zoom (> 1 crops in), shift (`[N, 2]` dy, dx in pixels) and flip `[N, C, H, W]` images.

    One parameter per image (tensors of length N); borders are filled by reflection.
    """
    n, _, h, w = images.shape
    x = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    theta = torch.deg2rad(angle_deg.double())
    cos, sin = torch.cos(theta) / zoom.double(), torch.sin(theta) / zoom.double()
    matrix = torch.zeros((n, 2, 3), dtype=torch.float64)
    matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1] = cos, -sin, sin, cos
    if shift_px is not None:
        matrix[:, 0, 2] = -2.0 * shift_px[:, 1].double() / w
        matrix[:, 1, 2] = -2.0 * shift_px[:, 0].double() / h
    grid = F.affine_grid(matrix.float(), [n, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _normalise(flat: torch.Tensor) -> torch.Tensor:
    flat = flat - flat.mean(dim=-1, keepdim=True)
    return flat / flat.norm(dim=-1, keepdim=True).clamp(min=1e-6)


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


def build_copy_index(train_pixels: np.ndarray, *, config: CopySearchConfig) -> CopyIndex:
    """Coarse warped variants (flips x angles x zooms) and fine images of the training set."""
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
        bank.append(_normalise(moved[:, 0, m:-m, m:-m].reshape(n, -1)))
    return CopyIndex(torch.cat(bank).T.contiguous(), fine, _variants(config), n)


def _band(images: torch.Tensor, config: CopySearchConfig, *, blur_px: float | None = None) -> torch.Tensor:
    """The fine band-pass of warped candidates (filtering after the warp keeps the band of a zoomed copy)."""
    low = blur(images, config.fine_blur_px if blur_px is None else blur_px)
    return low - blur(images, config.fine_highpass_px) if config.fine_highpass_px > 0 else low


def _warp_variants(index: CopyIndex, cand: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Fine images of candidates `[B, K]` warped by their coarse variants `[B, K]`: `[B * K, 1, S, S]`."""
    pick = var.reshape(-1)
    table = torch.tensor(index.variants, dtype=torch.float64)
    return warp(index.fine[cand.reshape(-1)], angle_deg=table[pick, 1], zoom=table[pick, 2], flip=table[pick, 0].bool())


def _banded(warped: torch.Tensor, config: CopySearchConfig, *, blur_px: float | None = None) -> list[torch.Tensor]:
    """Band-passed warped images, then (with `intensity_fit`) their squares and (with `blur_fit_px`) the images
    blurred further: the directions a query may take from an exact copy (for `_shift_corr` and `_refine`)."""
    out = [_band(warped, config, blur_px=blur_px)]
    if config.intensity_fit:
        out.append(_band(warped.square(), config, blur_px=blur_px))
    if config.blur_fit_px > 0:
        out.append(_band(blur(warped, config.blur_fit_px), config, blur_px=blur_px))
    return out


def _shift_corr(queries: torch.Tensor, norms: torch.Tensor, bands: list[torch.Tensor], shift: int) -> torch.Tensor:
    """Correlation of each query `[B, 1, S, S]` with its `M` warped images (`[B * M, 1, S, S]`, query-major) at every
    shift up to `shift` px: `[B, M, positions]` (one grouped convolution).

    With more `bands` (see `_banded`) the query is projected on the space they span: a gamma curve, contrast and
    brightness (a quadratic in grey level) or a slight blur then cost next to nothing.
    """
    b, size = len(queries), queries.shape[-1]
    win = size - 2 * shift
    bases = _bases([x[:, 0, shift:-shift, shift:-shift] for x in bands])
    kernels = torch.stack(bases, dim=1).view(-1, 1, win, win)
    dots = F.conv2d(queries.reshape(1, b, size, size), kernels, groups=b)[0]
    dots = dots.reshape(b, len(bands[0]) // b, len(bases), -1)
    return dots.square().sum(dim=2).clamp(min=1e-12).sqrt() / norms[:, None, :]


def _bases(crops: list[torch.Tensor]) -> list[torch.Tensor]:
    """Orthonormal zero-mean bases `[M, D]` of the span of each image's crops `[M, H, W]` (Gram-Schmidt, in order)."""
    out: list[torch.Tensor] = []
    for crop in crops:
        x = crop.reshape(len(crop), -1)
        x = x - x.mean(dim=-1, keepdim=True)
        for basis in out:
            x = x - (x * basis).sum(dim=-1, keepdim=True) * basis
        norm = x.norm(dim=-1, keepdim=True)
        out.append(torch.where(norm > 1e-6, x / norm.clamp(min=1e-6), torch.zeros_like(x)))
    return out


def _peaks(corr: torch.Tensor, side: int) -> tuple[torch.Tensor, ...]:
    """Peak of each correlation surface `[B, M, side * side]`, interpolated between shifts (a parabola per axis).

    Returns the peak value `[B, M]` and its position (dy, dx, fractional, from the centre): a copy shifted by a
    fraction of a pixel is not outscored by a neighbour that happens to sit on the grid.
    """
    value, at = corr.max(dim=-1)
    y, x = at // side, at % side
    padded = F.pad(corr.reshape(-1, 1, side, side), (1, 1, 1, 1), mode="replicate").view(*corr.shape[:2], -1)

    def around(dy: int, dx: int) -> torch.Tensor:
        return padded.gather(-1, ((y + 1 + dy) * (side + 2) + x + 1 + dx).unsqueeze(-1)).squeeze(-1)

    offsets, gains = [], []
    for minus, plus in ((around(-1, 0), around(1, 0)), (around(0, -1), around(0, 1))):
        curve = (minus + plus - 2 * value).clamp(max=-1e-6)
        offsets.append(((minus - plus) / (2 * curve)).clamp(-0.5, 0.5))
        gains.append(torch.minimum((-((plus - minus) ** 2) / (8 * curve)).clamp(min=0), 0.5 * (1 - value).clamp(min=0)))
    centre = (side - 1) // 2
    return (value + gains[0] + gains[1]).clamp(max=1.0), y - centre + offsets[0], x - centre + offsets[1]


def _window_norms(images: torch.Tensor, window: int) -> torch.Tensor:
    """Centred L2 norm of every `window`-square crop of `[N, 1, H, W]`: `[N, positions]`."""
    x = images.double()
    count = window * window
    sums = F.avg_pool2d(x, window, stride=1) * count
    squares = F.avg_pool2d(x * x, window, stride=1) * count
    return (squares - sums * sums / count).clamp(min=1e-12).sqrt().flatten(1).float()


def search_copies(
    query_pixels: np.ndarray,
    index: CopyIndex,
    *,
    config: CopySearchConfig,
    exclude_train_index: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """For each query image: the best-matching training image, its correlation and the transform found.

    Returns `similarity`, `train_index`, `flipped`, `angle_deg`, `zoom`, `shift_dy`, `shift_dx` (pixels at
    the fine size). `exclude_train_index` (one training index per query, e.g. the query itself when the queries
    are training images) is never returned for that query.
    """
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
    shift = max(1, int(round(config.max_shift_frac * config.fine_size_px)))
    win = config.fine_size_px - 2 * shift
    n_var, n_train = len(index.variants), index.n_train
    pool = n_train - (exclude_train_index is not None)  # the excluded training image is never a candidate
    k, screened = min(config.candidates, pool), min(max(config.candidates, config.screen_candidates), pool)
    local = [(da, dz) for da in config.fine_angle_steps_deg for dz in config.fine_zoom_steps]
    keys = ("similarity", "train_index", "flipped", "angle_deg", "zoom", "shift_dy", "shift_dx")
    out: dict[str, list] = {key: [] for key in keys}
    with torch.inference_mode():
        for start in range(0, len(coarse_q), config.chunk_rows):
            chunk = coarse_q[start : start + config.chunk_rows, 0]
            b, size = len(chunk), chunk.shape[-1]
            best_sim = torch.full((b, n_train), -3.0)
            best_var = torch.zeros((b, n_train), dtype=torch.long)
            for sy in config.coarse_shifts_px:
                for sx in config.coarse_shifts_px:
                    crop = chunk[:, m + sy : size - m + sy, m + sx : size - m + sx]
                    sims = (_normalise(crop.reshape(b, -1)) @ index.coarse).view(b, n_var, n_train)
                    value, variant = sims.max(dim=1)  # [B, n_train]
                    better = value > best_sim
                    best_sim = torch.where(better, value, best_sim)
                    best_var = torch.where(better, variant, best_var)
            if exclude_train_index is not None:
                best_sim[torch.arange(b), torch.as_tensor(exclude_train_index[start : start + b])] = -2.0
            cand = best_sim.topk(screened, dim=1).indices  # [B, K]
            var = best_var.gather(1, cand)  # [B, K]
            queries = fine_q[start : start + b]
            norms = _window_norms(queries, win)  # [B, positions]
            if cand.shape[1] > k:
                # Screen: each coarse candidate at its coarse variant only, over shifts; the best k go on.
                # (blurred with `screen_blur_px`; above the fine blur, a candidate between pixels ranks more fairly).
                loose = fine_loose[start : start + b]
                screen_config = replace(config, blur_fit_px=0.0)  # the blur fit only matters among close matches
                warped = _banded(_warp_variants(index, cand, var), screen_config, blur_px=config.screen_blur_px)
                screen = _shift_corr(loose, _window_norms(loose, win), warped, shift)
                keep = _peaks(screen, 2 * shift + 1)[0].topk(k, dim=1).indices
                cand, var = cand.gather(1, keep), var.gather(1, keep)
            flips = torch.tensor([v[0] for v in index.variants])[var].reshape(-1)
            angles = torch.tensor([v[1] for v in index.variants])[var].reshape(-1)
            zooms = torch.tensor([v[2] for v in index.variants])[var].reshape(-1)
            # Fine: every candidate re-warped over the local grid, correlated with its query at every shift.
            base = index.fine[cand.reshape(-1)]  # [B*k, 1, S, S]
            bands = _banded(
                torch.cat([warp(base, angle_deg=angles + da, zoom=zooms * dz, flip=flips) for da, dz in local]), config
            )
            bands = [x.view(len(local), b, k, *x.shape[1:]).transpose(0, 1).reshape(-1, *x.shape[1:]) for x in bands]
            corr = _shift_corr(queries, norms, bands, shift)  # [B, local * k, positions]
            # The best `refine_candidates` candidates (each at its best local variant and shift) go on to refinement.
            peak, dy, dx = (t.view(b, len(local), k) for t in _peaks(corr, 2 * shift + 1))
            r = min(config.refine_candidates, k)
            per_cand = peak.max(dim=1)  # over the local grid: [B, k]
            top = per_cand.values.topk(r, dim=1)
            ci = top.indices  # [B, r]
            li = per_cand.indices.gather(1, ci)  # [B, r]
            chosen = (ci + torch.arange(b)[:, None] * k).reshape(-1)
            out["similarity"].append(top.values.reshape(-1))
            out["train_index"].append(cand.gather(1, ci).reshape(-1))
            out["flipped"].append(flips[chosen])
            out["angle_deg"].append(angles[chosen] + torch.tensor([local[i][0] for i in li.reshape(-1).tolist()]))
            out["zoom"].append(zooms[chosen] * torch.tensor([local[i][1] for i in li.reshape(-1).tolist()]))
            for key, offset in (("shift_dy", dy), ("shift_dx", dx)):
                per_candidate = offset.permute(0, 2, 1).gather(1, ci[..., None].expand(-1, -1, len(local)))
                out[key].append(per_candidate.gather(2, li[..., None]).reshape(-1))
    found = {key: torch.cat(values) for key, values in out.items()}
    r = len(found["similarity"]) // len(fine_q)
    if config.refine_steps:
        found = _refine(found, index=index, fine_q=fine_q.repeat_interleave(r, dim=0), config=config)
    best = found["similarity"].view(-1, r).argmax(dim=1) + torch.arange(len(fine_q)) * r
    return {key: values[best].numpy() for key, values in found.items()} | {
        "similarity": found["similarity"][best].numpy().astype(float)
    }


def _refine(
    found: dict[str, torch.Tensor], *, index: CopyIndex, fine_q: torch.Tensor, config: CopySearchConfig
) -> dict[str, torch.Tensor]:
    """Gradient steps on each match's angle, zoom and shift to maximise its correlation with its query (a row each)."""
    size = fine_q.shape[-1]
    margin = max(1, int(round(config.max_shift_frac * size)))
    query = _normalise(fine_q[:, 0, margin:-margin, margin:-margin].reshape(len(fine_q), -1))
    candidate = index.fine[found["train_index"].long()]
    # The grid search correlated a candidate crop placed at (dy, dx) in the query: as a warp of the candidate,
    # that is a shift by (dy, dx).
    angle = found["angle_deg"].double().clone().requires_grad_(True)
    log_zoom = torch.log(found["zoom"].double()).clone().requires_grad_(True)
    shift = torch.stack([found["shift_dy"], found["shift_dx"]], dim=1).double().clone().requires_grad_(True)
    flip = found["flipped"].bool()
    groups: list[dict[str, Any]] = [{"params": [angle, shift]}, {"params": [log_zoom], "lr": config.refine_zoom_lr}]
    optimiser = torch.optim.Adam(groups, lr=config.refine_lr)
    best = torch.full_like(found["similarity"], -2.0).float()  # the grid's interpolated peak is not a correlation
    best_params: tuple[torch.Tensor, ...] = (
        found["angle_deg"].clone().float(),
        found["zoom"].clone().float(),
        found["shift_dy"].clone().float(),
        found["shift_dx"].clone().float(),
    )
    for _ in range(config.refine_steps + 1):
        bands = _banded(warp(candidate, angle_deg=angle, zoom=torch.exp(log_zoom), flip=flip, shift_px=shift), config)
        bases = _bases([x[:, 0, margin:-margin, margin:-margin] for x in bands])
        corr = (
            sum(((basis * query).sum(dim=1).square() for basis in bases), torch.zeros(len(query)))
            .clamp(min=1e-12)
            .sqrt()
        )
        with torch.no_grad():
            better = corr.detach().float() > best
            best = torch.where(better, corr.detach().float(), best)
            params = (
                angle.detach().float(),
                torch.exp(log_zoom.detach()).float(),
                shift[:, 0].detach().float(),
                shift[:, 1].detach().float(),
            )
            best_params = tuple(torch.where(better, new, old) for new, old in zip(params, best_params))
        optimiser.zero_grad()
        (-corr.sum()).backward()
        optimiser.step()
    angle, zoom, shift_dy, shift_dx = best_params
    return found | {
        "similarity": best.clamp(-1, 1),
        "angle_deg": angle,
        "zoom": zoom,
        "shift_dy": shift_dy,
        "shift_dx": shift_dx,
    }
