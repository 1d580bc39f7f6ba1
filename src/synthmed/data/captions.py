"""Captions for text-conditioned training: a manifest `caption` column, or a template over labels and metadata."""

from __future__ import annotations

import math
import string

import pandas as pd

DEFAULT_TEMPLATE = "{modality}, {label}"


def template_fields(template: str) -> list[str]:
    """The `{field}` names used by a str.format template."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise ValueError(
            f"caption template {template!r} is not a valid format string ({exc}); write fields "
            f"as {{label}}, {{view}}, {{sex}}, {{age_years}}."
        ) from None


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return "unknown"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def make_captions(
    frame: pd.DataFrame, *, template: str = DEFAULT_TEMPLATE, modality: str = "", use_caption_column: bool = True
) -> list[str]:
    """One caption per manifest row.

    A non-empty `caption` cell wins (when `use_caption_column`); other rows get `template` filled
    from the row's columns plus `modality` (empty or NaN values read 'unknown'). A template field
    the manifest lacks is an error naming the available columns.
    """
    fields = template_fields(template)
    available = set(frame.columns) | {"modality"}
    missing = [f for f in fields if f not in available]
    if missing:
        raise ValueError(
            f"caption template {template!r} uses {missing}, which the manifest lacks; it has "
            f"{sorted(available)}. Change --caption-template."
        )
    has_column = use_caption_column and "caption" in frame.columns
    captions = []
    for row in frame.to_dict("records"):
        given = row.get("caption") if has_column else None
        if isinstance(given, str) and given.strip():
            captions.append(given.strip())
            continue
        values = {f: _text(modality if f == "modality" and "modality" not in row else row.get(f)) for f in fields}
        captions.append(template.format(**values))
    return captions
