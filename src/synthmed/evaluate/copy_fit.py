"""Similarity of a query to warped candidates, grey-level curves and slight blur fitted (for the copy search).

Images are band-passed (difference of Gaussians); a query is projected on the span of each candidate, the
candidate's square (a gamma curve, contrast and brightness are near-quadratic in grey level) and the candidate
blurred (`blur_fit_px`): an exact copy re-exposed or blurred scores near 1. Correlations are taken at every shift in
one grouped convolution, and their peaks interpolated between shifts. Added noise is discounted: the query's band
energy that its own estimated white noise explains (`noise_fraction`) is taken out of its norm (`denoised`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from synthmed.evaluate.copy_search import CopySearchConfig


def blur(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of `[N, 1, H, W]` with reflected borders."""
    if sigma_px <= 0:
        return images
    radius = max(1, int(np.ceil(2.5 * sigma_px)))
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma_px**2))
    taps = taps / taps.sum()
    x = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), taps.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), taps.view(1, 1, -1, 1))


def normalise(flat: torch.Tensor) -> torch.Tensor:
    flat = flat - flat.mean(dim=-1, keepdim=True)
    return flat / flat.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def band(images: torch.Tensor, config: CopySearchConfig, *, blur_px: float | None = None) -> torch.Tensor:
    """The fine band-pass of warped candidates (filtering after the warp keeps the band of a zoomed copy)."""
    low = blur(images, config.fine_blur_px if blur_px is None else blur_px)
    return low - blur(images, config.fine_highpass_px) if config.fine_highpass_px > 0 else low


def banded(warped: torch.Tensor, config: CopySearchConfig, *, blur_px: float | None = None) -> list[torch.Tensor]:
    """Band-passed warped images, then (with `intensity_fit`) their squares and (with `blur_fit_px`) the images
    blurred further: the directions a query may take from an exact copy (for `shift_corr` and `copy_refine.refine`)."""
    out = [band(warped, config, blur_px=blur_px)]
    if config.intensity_fit:
        out.append(band(warped.square(), config, blur_px=blur_px))
    if config.blur_fit_px > 0:
        out.append(band(blur(warped, config.blur_fit_px), config, blur_px=blur_px))
    return out


def shift_corr(queries: torch.Tensor, norms: torch.Tensor, bands: list[torch.Tensor], shift: int) -> torch.Tensor:
    """Correlation of each query `[B, 1, S, S]` with its `M` warped images (`[B * M, 1, S, S]`, query-major) at every
    shift up to `shift` px: `[B, M, positions]` (one grouped convolution).

    With more `bands` (see `banded`) the query is projected on the space they span: a gamma curve, contrast and
    brightness (a quadratic in grey level) or a slight blur then cost next to nothing.
    """
    b, size = len(queries), queries.shape[-1]
    win = size - 2 * shift
    bases = bases_of([x[:, 0, shift:-shift, shift:-shift] for x in bands])
    kernels = torch.stack(bases, dim=1).view(-1, 1, win, win)
    dots = F.conv2d(queries.reshape(1, b, size, size), kernels, groups=b)[0]
    dots = dots.reshape(b, len(bands[0]) // b, len(bases), -1)
    return dots.square().sum(dim=2).clamp(min=1e-12).sqrt() / norms[:, None, :]


def bases_of(crops: list[torch.Tensor]) -> list[torch.Tensor]:
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


def peaks(corr: torch.Tensor, side: int) -> tuple[torch.Tensor, ...]:
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


def window_norms(images: torch.Tensor, window: int) -> torch.Tensor:
    """Centred L2 norm of every `window`-square crop of `[N, 1, H, W]`: `[N, positions]`."""
    x = images.double()
    count = window * window
    sums = F.avg_pool2d(x, window, stride=1) * count
    squares = F.avg_pool2d(x * x, window, stride=1) * count
    return (squares - sums * sums / count).clamp(min=1e-12).sqrt().flatten(1).float()


def fine_margin_px(config: CopySearchConfig) -> int:
    """Pixels at each side of a fine image that the largest searched shift may move out of view: the fine
    window (the part of the query every match is scored on) leaves them out."""
    return max(1, int(round(config.max_shift_frac * config.fine_size_px)))


def window_energy(fine_images: torch.Tensor, config: CopySearchConfig) -> torch.Tensor:
    """Centred energy (sum of squares less the mean's) of each fine image's window `[N]` (see `fine_margin_px`)."""
    m = fine_margin_px(config)
    window = fine_images[:, 0, m:-m, m:-m].reshape(len(fine_images), -1)
    return (window - window.mean(dim=1, keepdim=True)).square().sum(dim=1)


def noise_sigma_grey(pixels_uint8: np.ndarray) -> np.ndarray:
    """Standard deviation of white noise in each image `[N, C, H, W]` (grey levels, 0-255), Immerkaer's estimator.

    The 3x3 mask [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] cancels planes and smooth ramps and keeps noise (J. Immerkaer,
    "Fast noise variance estimation", CVIU 1996); smooth medical images read about 1 grey level, noisy copies more.
    """
    x = torch.from_numpy(np.asarray(pixels_uint8)).float().mean(dim=1, keepdim=True)
    if min(x.shape[-2:]) < 3:
        return np.zeros(len(x))
    mask = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]).view(1, 1, 3, 3)
    h, w = x.shape[-2:]
    total = torch.cat([F.conv2d(c, mask).abs().sum(dim=(1, 2, 3)) for c in x.split(2048)]) if len(x) else x.new_zeros(0)
    return (np.sqrt(np.pi / 2) * total / (6 * (h - 2) * (w - 2))).numpy()


def band_energy_of_unit_noise(native_px: int, config: CopySearchConfig, *, samples: int = 64) -> float:
    """Expected centred energy, in a query's fine window, of white noise of 1 grey level added at `native_px`.

    The query pipeline (resize to the fine size, band-pass, centre window) is linear, so noise of sigma s adds
    s**2 times this. Measured on `samples` noise images from a fixed generator (deterministic).
    """
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn((samples, 1, native_px, native_px), generator=generator) / 255.0
    if native_px != config.fine_size_px:
        size = (config.fine_size_px, config.fine_size_px)
        noise = F.interpolate(noise, size=size, mode="bilinear", align_corners=False, antialias=True)
    return float(window_energy(band(noise, config), config).mean())


def noise_fraction(query_pixels: np.ndarray, fine_queries: torch.Tensor, config: CopySearchConfig) -> torch.Tensor:
    """Share of each band-passed query's window energy that its estimated white noise explains, at most
    `config.max_noise_fraction` (an image that is mostly noise is not treated as a noisy copy of anything)."""
    energy = window_energy(fine_queries, config).double()
    unit = band_energy_of_unit_noise(int(np.shape(query_pixels)[-1]), config)
    expected = torch.from_numpy(noise_sigma_grey(query_pixels)).double().square() * unit
    return (expected / energy.clamp(min=1e-12)).clamp(0.0, config.max_noise_fraction).float()


def denoised(similarity: torch.Tensor, fraction: torch.Tensor, *, noise_fit_share: float) -> torch.Tensor:
    """Similarity with the query's noise energy taken out: `sqrt((sim**2 - share * f) / (1 - f))`, in [0, 1].

    A query = image + noise of energy share f. Of the noise, the search fits about `noise_fit_share` (it picks the
    best of many candidates, shifts and grey-level fits; pure-noise queries measure it) and leaves the rest in the
    residual. A copy then scores 1, and an unrelated image, in expectation, the similarity of its noise-free
    version: its structural mismatch is not noise and stays."""
    fitted = similarity.square() - noise_fit_share * fraction
    return (fitted.clamp(min=0) / (1.0 - fraction).clamp(min=1e-6)).sqrt().clamp(max=1.0)


def warp(
    images: torch.Tensor,
    *,
    angle_deg: torch.Tensor,
    zoom: torch.Tensor,
    flip: torch.Tensor,
    shift_px: torch.Tensor | None = None,
    border: str = "reflection",
) -> torch.Tensor:
    """Rotate (degrees), zoom (> 1 crops in), shift (`[N, 2]` dy, dx in pixels) and flip `[N, C, H, W]` images.

    One parameter per image (tensors of length N); borders are filled by reflection (`border="zeros"`: black).
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
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=border, align_corners=False)
