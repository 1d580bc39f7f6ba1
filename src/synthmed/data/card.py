"""Write the dataset card: card.json for machines, card.md for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from synthmed.data.manifest import DatasetInfo
from synthmed.files import atomic_write_json, atomic_write_text

LIST_LIMIT = 20  # rows of each list shown in card.md (card.json has them all)


def write_card(
    folder: Path,
    *,
    info: DatasetInfo,
    frame: pd.DataFrame,
    findings: dict,
    errors: pd.DataFrame,
    config: Any,
    notes: list[str],
    duration_s: float,
) -> dict:
    """Write card.json and card.md into `folder`; returns the card as a dict."""
    warnings = list(findings["shortcut_warnings"])
    exact, near, leak = findings["exact_duplicates"], findings["near_duplicates"], findings["patient_leakage"]
    if exact["crossing_splits"]:
        warnings.append(f"{exact['crossing_splits']} group(s) of byte-identical files cross splits (leakage).")
    if near["crossing_splits"]:
        warnings.append(f"{near['crossing_splits']} near-duplicate pair(s) cross splits (possible leakage).")
    if leak["patients"]:
        warnings.append(f"{leak['patients']} patient(s) have images in more than one of the source's own splits.")
    if len(errors):
        warnings.append(f"{len(errors)} file(s) could not be read (errors.csv).")
    card = {
        "name": info.name,
        "modality": info.modality,
        "channels": info.channels,
        "image_size_px": info.image_size_px,
        "classes": info.classes,
        "n_images": int(len(frame)),
        "n_patients": int(frame["patient_id"].nunique()),
        "patient_ids_known": bool(frame["patient_known"].any()),
        "balance": findings["balance"],
        "notes": notes,
        "warnings": warnings,
        "exact_duplicates": exact,
        "near_duplicates": near,
        "patient_leakage": leak,
        "original_formats": _counts(frame, "orig_format"),
        "original_modes": _counts(frame, "orig_mode"),
        "original_sizes": _counts(frame, "orig_size", top=8),
        "errors": {"count": int(len(errors)), "list": errors.to_dict(orient="records")},
        "config": config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config),
        "duration_s": round(duration_s, 2),
        "source": info.source,
        "synthmed_version": info.synthmed_version,
    }
    atomic_write_json(folder / "card.json", card)
    atomic_write_text(folder / "card.md", render_card_md(card))
    return card


def _counts(frame: pd.DataFrame, column: str, top: int | None = None) -> dict[str, dict[str, int]]:
    """{class: {value: count}} (the `top` most common values per class)."""
    out = {}
    for label, group in frame.groupby("label"):
        counts = group[column].astype(str).value_counts()
        out[str(label)] = {str(k): int(v) for k, v in (counts.head(top) if top else counts).items()}
    return out


def render_card_md(card: dict) -> str:
    """The card as Markdown."""
    classes = card["classes"]
    lines = [
        f"# Dataset card: {card['name']}",
        "",
        f"{card['n_images']} images, {card['n_patients']} patient groups, {len(classes)} classes, "
        f"{card['channels']} channel(s), {card['image_size_px']} px; modality: {card['modality']}.",
        f"Source: `{card['source']}`; prepared by synthmed {card['synthmed_version']} in {card['duration_s']} s.",
        "",
    ]
    lines += ["## Warnings", ""] + ([f"- {w}" for w in card["warnings"]] or ["- none"]) + [""]
    lines += [
        "## Class balance",
        "",
        "| split | " + " | ".join(classes) + " | total |",
        "|---|" + "---|" * (len(classes) + 1),
    ]
    for split, counts in card["balance"].items():
        row = [counts.get(c, 0) for c in classes]
        lines.append(f"| {split} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    lines += ["", "## How it was prepared", ""] + [f"- {n}" for n in card["notes"]] + [""]
    exact, near, leak = card["exact_duplicates"], card["near_duplicates"], card["patient_leakage"]
    lines += [
        "## Duplicates and leakage",
        "",
        f"- byte-identical groups: {exact['groups']} ({exact['extra_copies']} extra copies), "
        f"{exact['crossing_splits']} crossing splits",
        f"- near-duplicate pairs (correlation >= {near['threshold_correlation']} of "
        f"{near['thumbnail_px']}x{near['thumbnail_px']} thumbnails, mirrored copies included): {near['pairs']}, "
        f"{near['crossing_splits']} crossing splits",
        f"- patients in more than one of the source's splits: {leak['patients']}",
        "",
    ]
    shown = [g for g in exact["list"] if g["crosses_splits"]] + [g for g in exact["list"] if not g["crosses_splits"]]
    for group in shown[:LIST_LIMIT]:
        lines.append(f"  - identical: {', '.join(group['sources'])} (splits {', '.join(group['splits'])})")
    shown = [p for p in near["list"] if p["crosses_splits"]] + [p for p in near["list"] if not p["crosses_splits"]]
    for pair in shown[:LIST_LIMIT]:
        lines.append(
            f"  - near ({pair['correlation']}): {', '.join(pair['sources'])} (splits {', '.join(pair['splits'])})"
        )
    lines += [
        "",
        "## Original formats, modes and sizes per class",
        "",
        "| class | formats | modes | sizes (top) |",
        "|---|---|---|---|",
    ]
    for label in classes:
        cells = [_inline(card[key].get(label, {})) for key in ("original_formats", "original_modes", "original_sizes")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"## Unreadable files ({card['errors']['count']})", ""]
    for error in card["errors"]["list"][:LIST_LIMIT]:
        lines.append(f"- `{error['source_path']}`: {error['reason']}")
    if card["errors"]["count"] > LIST_LIMIT:
        lines.append(f"- ... {card['errors']['count'] - LIST_LIMIT} more in errors.csv")
    if not card["errors"]["count"]:
        lines.append("- none")
    return "\n".join(lines) + "\n"


def _inline(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"
