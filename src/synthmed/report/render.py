"""Turn any JSON value from metrics.json into display nodes (text, tables, nested groups) for the template."""

from __future__ import annotations

import math
from typing import Any

STATUSES = ("good", "fair", "poor", "info")
STATUS_LABELS = {"good": "Good", "fair": "Caution", "poor": "Poor", "info": "For information"}
SKIP_KEYS = frozenset({"verdict", "status", "figures"})
MAX_TEXT_CHARS = 400
MAX_TABLE_COLUMNS = 14


def format_scalar(value: Any) -> str:
    """A short human-readable form of a JSON scalar (3 significant digits for floats)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.2e}"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    text = str(value)
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"


def humanise_key(key: str) -> str:
    """'tstr_over_trtr' -> 'tstr over trtr' (keys stay recognisable, just easier to read)."""
    return str(key).replace("_", " ")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _estimate(value: Any) -> tuple[Any, tuple[Any, Any] | None] | None:
    """(point, (low, high)) when `value` is a point estimate with an interval, else None."""
    if not isinstance(value, dict):
        return None
    point_key = next((k for k in ("value", "mean", "estimate") if k in value), None)
    if point_key is None or not _is_scalar(value[point_key]) or isinstance(value[point_key], str):
        return None
    interval = None
    for key in ("ci95", "ci", "ci_95"):
        if isinstance(value.get(key), (list, tuple)) and len(value[key]) == 2:
            interval = tuple(value[key])
    if "ci_low" in value and "ci_high" in value:
        interval = (value["ci_low"], value["ci_high"])
    return value[point_key], interval


def _estimate_node(value: dict, estimate: tuple[Any, tuple[Any, Any] | None]) -> dict:
    point, interval = estimate
    text = format_scalar(point)
    if interval is not None and None not in interval:
        text += f" [{format_scalar(interval[0])}, {format_scalar(interval[1])}]"
    used = {"value", "mean", "estimate", "ci95", "ci", "ci_95", "ci_low", "ci_high"}
    extras = []
    for key, extra in value.items():
        if key in used:
            continue
        if _is_scalar(extra):
            extras.append(f"{humanise_key(key)} {format_scalar(extra)}")
        elif isinstance(extra, list) and all(_is_scalar(v) for v in extra) and len(extra) <= 12:
            extras.append(f"{humanise_key(key)}: {', '.join(format_scalar(v) for v in extra)}")
    return {"kind": "text", "text": text, "muted": " · ".join(extras)}


def _is_leaf(value: Any) -> bool:
    if _is_scalar(value) or _estimate(value) is not None:
        return True
    if isinstance(value, list):
        return len(value) <= 30 and all(_is_scalar(v) for v in value)
    return False


def _is_matrix(value: Any) -> bool:
    return (
        isinstance(value, list)
        and 0 < len(value) <= 30
        and all(isinstance(row, list) and len(row) <= 30 and all(_is_scalar(v) for v in row) for row in value)
    )


def to_node(value: Any, *, depth: int = 0) -> dict:
    """A display node: kind 'text' | 'table' | 'group' | 'list' (rendered by the template's macro)."""
    if _is_scalar(value):
        return {"kind": "text", "text": format_scalar(value), "muted": ""}
    if (estimate := _estimate(value)) is not None:
        return _estimate_node(value, estimate)
    if isinstance(value, list):
        return _list_node(value, depth=depth)
    if isinstance(value, dict):
        return _dict_node(value, depth=depth)
    return {"kind": "text", "text": format_scalar(str(value)), "muted": ""}


def _list_node(value: list, *, depth: int) -> dict:
    if _is_leaf(value):
        return {"kind": "text", "text": ", ".join(format_scalar(v) for v in value) or "(none)", "muted": ""}
    if _is_matrix(value):
        return {
            "kind": "table",
            "columns": [],
            "row_header": False,
            "rows": [{"key": "", "cells": [to_node(v) for v in row]} for row in value],
        }
    if all(isinstance(v, dict) for v in value):
        columns = _columns(value)
        if columns is not None and len(value) <= 200:
            return {
                "kind": "table",
                "columns": [humanise_key(c) for c in columns],
                "row_header": False,
                "rows": [
                    {"key": "", "cells": [to_node(row.get(c), depth=depth + 1) for c in columns]} for row in value
                ],
            }
    return {"kind": "list", "items": [to_node(v, depth=depth + 1) for v in value[:200]]}


def _columns(rows: list[dict]) -> list[str] | None:
    """Union of keys (first-seen order) when every value under them is a leaf; else None."""
    columns: list[str] = []
    for row in rows:
        for key, cell in row.items():
            if key in SKIP_KEYS:
                continue
            if not _is_leaf(cell):
                return None
            if key not in columns:
                columns.append(key)
    return columns if 0 < len(columns) <= MAX_TABLE_COLUMNS else None


def _dict_node(value: dict, *, depth: int) -> dict:
    items = {k: v for k, v in value.items() if k not in SKIP_KEYS}
    if items and all(isinstance(v, dict) and v and _estimate(v) is None for v in items.values()):
        columns = _columns(list(items.values()))
        if columns is not None and len(items) > 1:
            return {
                "kind": "table",
                "columns": [humanise_key(c) for c in columns],
                "row_header": True,
                "rows": [
                    {"key": humanise_key(k), "cells": [to_node(v.get(c)) for c in columns]} for k, v in items.items()
                ],
            }
    leaves = [(k, v) for k, v in items.items() if _is_leaf(v)]
    nested = [(k, v) for k, v in items.items() if not _is_leaf(v)]
    node: dict = {"kind": "group", "leaves": None, "table": None, "children": []}
    if leaves:
        node["leaves"] = {
            "kind": "table",
            "columns": [],
            "row_header": True,
            "rows": [{"key": humanise_key(k), "cells": [to_node(v)]} for k, v in leaves],
        }
    flat = [(k, v) for k, v in nested if isinstance(v, dict) and _columns([v]) is not None]
    columns = _columns([v for _, v in flat]) if len(flat) > 1 else None
    if columns is not None:  # sibling flat dicts (e.g. synthetic vs real floor) side by side in one table
        node["table"] = {
            "kind": "table",
            "columns": [humanise_key(c) for c in columns],
            "row_header": True,
            "rows": [{"key": humanise_key(k), "cells": [to_node(v.get(c)) for c in columns]} for k, v in flat],
        }
        nested = [(k, v) for k, v in nested if (k, v) not in flat]
    for key, child in nested:
        node["children"].append(
            {"key": humanise_key(key), "node": to_node(child, depth=depth + 1), "open": depth < 1 and key != "config"}
        )
    return node


def collect_figures(value: Any) -> list[dict]:
    """Every {"title", "path"} entry under any "figures" key, at any depth, in document order."""
    found: list[dict] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "figures" and isinstance(child, list):
                found += [f for f in child if isinstance(f, dict) and isinstance(f.get("path"), str)]
            else:
                found += collect_figures(child)
    elif isinstance(value, list):
        for child in value:
            found += collect_figures(child)
    return found
