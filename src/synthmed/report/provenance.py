"""Where the compared images came from: the dataset card's warnings and the generator's provenance."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd

from synthmed.files import portable_name
from synthmed.report.grids import REAL_KEYS, SYNTHETIC_KEYS, find_input_path

log = logging.getLogger(__name__)

CARD_NAME = "card.json"
MANIFEST_NAME = "manifest.csv"
GENERATOR_COLUMNS = {
    "checkpoint": "checkpoint",
    "checkpoint_sha256": "checkpoint SHA-256",
    "model": "model",
    "provider": "provider",
    "sampler": "sampler",
    "steps": "sampling steps",
    "guidance_scale": "guidance scale",
}
MAX_VALUES = 5  # distinct values shown per provenance field


def _input_file(
    inputs: dict, keys: tuple[str, ...], name: str, *, base: Path, what: str, shown: str
) -> tuple[Path | None, dict | None]:
    """(folder / name, None), or (None, {"note"}) when the folder named in metrics.json is not on this machine."""
    folder = find_input_path(inputs, keys, base=base)
    if folder is None:
        return None, {
            "note": f"The {what} folder named in metrics.json is not on this machine, so {shown} cannot be shown."
        }
    return folder / name, None


def dataset_card(inputs: dict, *, base: Path) -> dict:
    """{"path", "name", "warnings": [...]} from the real dataset's card.json, or {"note": why not}."""
    path, missing = _input_file(
        inputs,
        REAL_KEYS,
        CARD_NAME,
        base=base,
        what="real dataset",
        shown="its dataset card (and any shortcut warnings)",
    )
    if path is None:
        return missing or {}
    if not path.is_file():
        return {
            "path": portable_name(path),
            "note": f"{portable_name(path)} does not exist (the dataset was not prepared with synthmed "
            f"prepare, which writes the card); no shortcut or leakage check is shown.",
        }
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return {"path": portable_name(path), "note": f"{portable_name(path)} could not be read ({exc})."}
    warnings = card.get("warnings") if isinstance(card, dict) else None
    return {
        "path": portable_name(path),
        "name": card.get("name") if isinstance(card, dict) else None,
        "warnings": [str(w) for w in warnings] if isinstance(warnings, list) else [],
    }


def _training_steps(models: pd.Series) -> list[str]:
    """'step 700000' from manifest 'model' values such as 'diffusers-unet step 700000'."""
    found = {m.group(1) for value in models.dropna().astype(str) if (m := re.search(r"\bstep (\d+)\b", value))}
    return sorted(found, key=int)


def generator(inputs: dict, *, base: Path) -> dict:
    """Provenance of the synthetic set from its manifest.csv: {"path", "n_images", "fields": {label: text}}."""
    path, missing = _input_file(
        inputs, SYNTHETIC_KEYS, MANIFEST_NAME, base=base, what="synthetic image", shown="the generator's provenance"
    )
    if path is None:
        return missing or {}
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return {"path": portable_name(path), "note": f"{portable_name(path)} could not be read ({exc})."}
    fields = {}
    for column, label in GENERATOR_COLUMNS.items():
        if column not in frame:
            continue
        counts = frame[column][frame[column].str.strip() != ""].value_counts()
        if counts.empty:
            continue
        shown = [
            value if len(counts) == 1 else f"{value} ({count:,} image{'s' if count != 1 else ''})"
            for value, count in counts.head(MAX_VALUES).items()
        ]
        more = f"; and {len(counts) - MAX_VALUES} more" if len(counts) > MAX_VALUES else ""
        fields[label] = "; ".join(shown) + more
    if "model" in frame:
        steps = _training_steps(frame["model"])
        if steps:
            fields["training steps"] = ", ".join(steps)
    out = {"path": portable_name(path), "n_images": len(frame), "fields": fields}
    if not fields:
        out["note"] = (
            "The synthetic set's manifest records no generator provenance (checkpoint, sampler, steps); "
            "images not made by synthmed sample usually lack it."
        )
    return out
