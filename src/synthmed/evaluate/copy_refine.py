"""Refinement of the copy search's best matches: gradient steps make each one's angle, zoom and shift continuous.

The grid search (synthmed.evaluate.copy_search) finds each query's best training images on a grid of flips,
rotations, zooms and shifts; `refine` maximises the similarity (`aligned_similarity`) over the transform of each
match, with the uncovered border reflected or black, whichever fits the query better.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from synthmed.evaluate.copy_fit import banded, bases_of, fine_margin_px, normalise, warp

if TYPE_CHECKING:
    from synthmed.evaluate.copy_search import CopyIndex, CopySearchConfig


def aligned_similarity(
    candidates: torch.Tensor,
    queries: torch.Tensor,
    *,
    angle_deg: torch.Tensor,
    zoom: torch.Tensor,
    flip: torch.Tensor,
    shift_px: torch.Tensor,
    config: CopySearchConfig,
    border: str = "reflection",
) -> torch.Tensor:
    """Similarity of each fine candidate `[N, 1, S, S]` (unfiltered), warped by its transform, with its band-passed
    query `[N, 1, S, S]`: the norm of the query's centre crop projected on the span of the warped candidate's bands
    (`banded`). Differentiable in the transform (for `refine`). `border`: how the warp fills what it uncovers."""
    margin = fine_margin_px(config)  # queries are fine images (fine_size_px)
    query = normalise(queries[:, 0, margin:-margin, margin:-margin].reshape(len(queries), -1))
    bands = banded(
        warp(candidates, angle_deg=angle_deg, zoom=zoom, flip=flip, shift_px=shift_px, border=border), config
    )
    bases = bases_of([x[:, 0, margin:-margin, margin:-margin] for x in bands])
    total = sum(((basis * query).sum(dim=1).square() for basis in bases), torch.zeros(len(query), dtype=query.dtype))
    return total.clamp(min=1e-12).sqrt()


def refine(
    found: dict[str, torch.Tensor], *, index: CopyIndex, fine_q: torch.Tensor, config: CopySearchConfig
) -> dict[str, torch.Tensor]:
    """Gradient steps on each match's angle, zoom and shift to maximise its correlation with its query (a row each)."""
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
        # Borders uncovered by the warp: reflected (a crop of the scene) or black, whichever fits the query better.
        corr = torch.maximum(
            *(
                aligned_similarity(
                    candidate,
                    fine_q,
                    angle_deg=angle,
                    zoom=torch.exp(log_zoom),
                    flip=flip,
                    shift_px=shift,
                    config=config,
                    border=border,
                )
                for border in ("reflection", "zeros")
            )
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
