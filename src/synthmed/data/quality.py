"""Data-quality findings for the dataset card: duplicates, leakage across splits, balance, shortcuts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthmed.data.splits import patients_in_several_splits

THUMB_PX = 16
NEAR_DUPLICATE_CORRELATION = 0.99
SHORTCUT_DISTANCE = 0.3  # total-variation distance between one class and the others
BLOCK_ROWS = 1024


def thumbnails(pixels: list[np.ndarray], *, channels_first: bool = False) -> np.ndarray:
    """[N, THUMB_PX**2] zero-mean unit-norm grey thumbnails (block means) of square uint8 images.

    Images are HxW or HxWxC (or CxHxW with `channels_first`, as in ImageArrays.pixels).
    """
    rows = []
    for image in pixels:
        channel_axis = 0 if channels_first else -1
        grey = image.astype(np.float32) if image.ndim == 2 else image.astype(np.float32).mean(axis=channel_axis)
        side = grey.shape[0] - grey.shape[0] % THUMB_PX
        if side >= THUMB_PX:
            block = side // THUMB_PX
            thumb = grey[:side, :side].reshape(THUMB_PX, block, THUMB_PX, block).mean(axis=(1, 3))
        else:
            idx = np.linspace(0, grey.shape[0] - 1, THUMB_PX).round().astype(int)
            thumb = grey[np.ix_(idx, idx)]
        rows.append(thumb.reshape(-1))
    matrix = np.stack(rows) if rows else np.zeros((0, THUMB_PX * THUMB_PX), np.float32)
    matrix = matrix - matrix.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 1e-6, norms, 1.0)


def exact_duplicate_groups(frame: pd.DataFrame) -> list[list[int]]:
    """Row groups whose source files (or npz pixel arrays) have the same SHA-256."""
    groups = frame.groupby("source_sha256").indices
    return [sorted(map(int, rows)) for rows in groups.values() if len(rows) > 1]


def mirrored(thumbs: np.ndarray) -> np.ndarray:
    """The thumbnails of the left-right mirrored images."""
    return thumbs.reshape(-1, THUMB_PX, THUMB_PX)[:, :, ::-1].reshape(len(thumbs), -1)


def _correlations(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Thumbnail correlation of each row with each column image, the column also mirrored (the larger of the two)."""
    return np.maximum(rows @ columns.T, rows @ mirrored(columns).T)


def near_duplicate_pairs(
    thumbs: np.ndarray,
    *,
    threshold: float = NEAR_DUPLICATE_CORRELATION,
    exclude: set[tuple[int, int]] | None = None,
    flat_rows: np.ndarray | None = None,
) -> list[tuple[int, int, float]]:
    """Pairs (i < j) whose thumbnails correlate at or above `threshold`, directly or mirrored (vectorised).

    This is synthmed's one near-duplicate definition: `prepare` (the dataset card) and `evaluate`
    (held-out images excluded from the copy calibration) both use it. Flat images (all one value)
    have no structure to compare and are skipped.
    """
    exclude = exclude or set()
    flat = flat_rows if flat_rows is not None else np.linalg.norm(thumbs, axis=1) < 0.5
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, len(thumbs), BLOCK_ROWS):
        block = _correlations(thumbs[start : start + BLOCK_ROWS], thumbs)
        rows, cols = np.nonzero(block >= threshold)
        for r, c in zip(rows, cols):
            i, j = start + int(r), int(c)
            if i < j and not flat[i] and not flat[j] and (i, j) not in exclude:
                pairs.append((i, j, float(block[r, c])))
    return pairs


def near_duplicates_of(
    query_pixels: np.ndarray, reference_pixels: np.ndarray, *, threshold: float = NEAR_DUPLICATE_CORRELATION
) -> tuple[np.ndarray, np.ndarray]:
    """For each query image (uint8 [N, C, H, W]): its best thumbnail correlation with any reference image
    (mirrored or not) and that image's index; a near-duplicate where the correlation reaches `threshold`."""
    query = thumbnails(list(query_pixels), channels_first=True)
    reference = thumbnails(list(reference_pixels), channels_first=True)
    best, index = np.full(len(query), -1.0), np.zeros(len(query), dtype=int)
    flat = np.linalg.norm(query, axis=1) < 0.5
    for start in range(0, len(query), BLOCK_ROWS):
        block = _correlations(query[start : start + BLOCK_ROWS], reference)
        if block.shape[1]:
            index[start : start + len(block)] = block.argmax(axis=1)
            best[start : start + len(block)] = block.max(axis=1)
    best[flat] = -1.0
    return best, index


def balance(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{split: {class: count}} for the splits and classes present."""
    table = frame.groupby(["split", "label"]).size()
    return {
        str(split): {str(label): int(n) for label, n in table[split].items()}
        for split in table.index.levels[0]
        if split in table.index.get_level_values(0)
    }


SHORTCUT_ATTRIBUTES = {
    "orig_format": "file format",
    "orig_mode": "colour mode",
    "size_class": "original size",
    "aspect": "aspect ratio",
    "colour": "colour content",
}


def size_class(orig_size: str) -> str:
    """Bucket an original size 'WxH[xD]' by its longer side (exact sizes are too many to compare)."""
    try:
        width, height = (int(v) for v in str(orig_size).split("x")[:2])
    except ValueError:
        return "unknown"
    longest = max(width, height)
    for limit in (128, 256, 512, 1024, 2048):
        if longest < limit:
            return f"< {limit} px"
    return ">= 2048 px"


def aspect(orig_size: str) -> str:
    try:
        width, height = (int(v) for v in str(orig_size).split("x")[:2])
    except ValueError:
        return "unknown"
    ratio = width / max(height, 1)
    return "square" if 0.95 <= ratio <= 1.05 else ("landscape" if ratio > 1 else "portrait")


def shortcut_warnings(frame: pd.DataFrame) -> list[str]:
    """One warning per source attribute whose distribution differs between classes.

    Attributes: file format, colour mode, original size (bucketed), aspect ratio, colour content.
    For each class, the total-variation distance between its distribution and the other classes'
    is computed; at SHORTCUT_DISTANCE or more the attribute is reported, naming the classes, as a
    classifier (or an evaluation of generated images) can learn the source instead of the disease.
    """
    labels = sorted(frame["label"].unique())
    if len(labels) < 2:
        return []
    derived = frame.assign(size_class=frame["orig_size"].map(size_class), aspect=frame["orig_size"].map(aspect))
    if "grey" in frame.columns:
        derived["colour"] = np.where(frame["grey"].astype(bool), "grey", "colour")
    warnings = []
    for attribute, title in SHORTCUT_ATTRIBUTES.items():
        if attribute not in derived.columns:
            continue
        values = derived[attribute].astype(str)
        found = []
        for label in labels:
            mine = values[derived["label"] == label].value_counts(normalize=True)
            rest = values[derived["label"] != label].value_counts(normalize=True)
            distance = 0.5 * mine.sub(rest, fill_value=0.0).abs().sum()
            if distance >= SHORTCUT_DISTANCE:
                found.append((distance, label, mine, rest))
        if found:
            found.sort(key=lambda item: -item[0])
            distance, label, mine, rest = found[0]
            others = "".join(f"; also '{lab}' ({dist:.2f})" for dist, lab, _, _ in found[1:])
            warnings.append(
                f"{title} differs between classes: '{label}' has {_describe(mine)} vs the others' "
                f"{_describe(rest)} (distance {distance:.2f}){others}. A model can learn this "
                f"instead of the anatomy."
            )
    return warnings


def _describe(shares: pd.Series, top: int = 3) -> str:
    parts = [f"{share:.0%} {value}" for value, share in shares.head(top).items()]
    if len(shares) > top:
        parts.append(f"{len(shares) - top} more values")
    return ", ".join(parts)


def find_near_duplicates(frame: pd.DataFrame, pixels: list[np.ndarray]) -> list[tuple[int, int, float]]:
    """Near-duplicate row pairs that are not already byte-identical (`frame` aligned with `pixels`)."""
    exact_pairs = {(a, b) for group in exact_duplicate_groups(frame) for a in group for b in group if a < b}
    return near_duplicate_pairs(thumbnails(pixels), exclude=exact_pairs)


def quality_findings(frame: pd.DataFrame, near: list[tuple[int, int, float]]) -> dict:
    """Everything the card reports about the prepared rows, given the near-duplicate pairs."""
    exact = exact_duplicate_groups(frame)
    splits = frame["split"].to_numpy()
    ids = frame["image_id"].to_numpy()
    sources = frame["source_path"].to_numpy()

    def cross(rows: list[int]) -> bool:
        return len({splits[r] for r in rows}) > 1

    exact_groups: list[dict[str, Any]] = [
        {
            "image_ids": [ids[r] for r in g],
            "sources": [sources[r] for r in g],
            "splits": sorted({splits[r] for r in g}),
            "crosses_splits": cross(g),
        }
        for g in exact
    ]
    near_pairs = [
        {
            "image_ids": [ids[i], ids[j]],
            "sources": [sources[i], sources[j]],
            "correlation": round(c, 4),
            "splits": sorted({splits[i], splits[j]}),
            "crosses_splits": cross([i, j]),
        }
        for i, j, c in near
    ]
    patients = patients_in_several_splits(frame) if "patient_id" in frame.columns else {}
    return {
        "exact_duplicates": {
            "groups": len(exact_groups),
            "images": sum(len(g["image_ids"]) for g in exact_groups),
            "extra_copies": sum(len(g["image_ids"]) - 1 for g in exact_groups),
            "crossing_splits": sum(g["crosses_splits"] for g in exact_groups),
            "list": exact_groups,
        },
        "near_duplicates": {
            "pairs": len(near_pairs),
            "crossing_splits": sum(p["crosses_splits"] for p in near_pairs),
            "threshold_correlation": NEAR_DUPLICATE_CORRELATION,
            "thumbnail_px": THUMB_PX,
            "mirrored_included": True,
            "list": near_pairs,
        },
        "patient_leakage": {"patients": len(patients), "list": patients},
        "balance": balance(frame),
        "shortcut_warnings": shortcut_warnings(frame),
    }
