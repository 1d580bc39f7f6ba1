"""`--set KEY=VALUE` overrides: parse the value, type it by the schema field it sets, and assign it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tomllib
from pydantic import BaseModel, TypeAdapter, ValidationError


def parse_set(assignment: str) -> tuple[list[str], Any]:
    """'train.max_steps=10' -> (['train', 'max_steps'], 10); values are TOML values, else plain strings."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.max_steps=100")
    if "\n" in assignment or "\r" in assignment:
        raise ValueError(f"--set {assignment!r}: one setting per --set, on one line (the value holds a line break)")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return [part.strip() for part in key.split(".")], value


def _assign(raw: dict[str, Any], path: list[str], value: Any) -> None:
    table = raw
    for part in path[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ValueError(f"--set {'.'.join(path)}: {part} is not a table in the experiment file.")
    table[path[-1]] = value


def _stage_classes() -> dict[tuple[str, ...], type[BaseModel]]:
    """The settings class behind each open table of the file (its keys are that class's fields)."""
    from synthmed.data.prepare import PrepareConfig
    from synthmed.evaluate.run import EvalConfig
    from synthmed.evaluate.tstr import TSTRConfig
    from synthmed.models.config import DiffusionModelConfig
    from synthmed.sample.generate import SampleConfig
    from synthmed.train.config import TrainConfig

    return {
        ("data", "prepare"): PrepareConfig,
        ("train",): TrainConfig,
        ("train", "model"): DiffusionModelConfig,
        ("sample",): SampleConfig,
        ("evaluate",): EvalConfig,
        ("evaluate", "tstr_overrides"): TSTRConfig,
    }


def field_annotation(path: Sequence[str], *, schema: type[BaseModel]) -> Any:
    """The type `schema` (the file's model) or a stage's config gives the key at `path` (['train', 'preset']),
    or None for a key neither knows ([profile.NAME] tables are read as the base tables)."""
    from synthmed.study.blinding import StudySpec

    path = list(path[2:] if len(path) > 2 and path[0] == "profile" else path)
    *tables, key = path
    owner: type[BaseModel] | None = StudySpec if len(tables) == 2 and tables[0] == "study" else schema
    if owner is schema:
        for table in tables:
            field = owner.model_fields.get(table) if owner else None
            annotation = field.annotation if field else None
            owner = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if owner is None or key not in owner.model_fields:
            owner = _stage_classes().get(tuple(tables))
    field = owner.model_fields.get(key) if owner else None
    return field.annotation if field else None


def typed_value(path: Sequence[str], value: Any, text: str, *, schema: type[BaseModel]) -> Any:
    """A --set value as the schema field wants it: the TOML value, or the plain `text` where only a string
    fits (`train.preset=32` -> "32"; `data.prepare.channels=1` -> "1")."""
    annotation = field_annotation(path, schema=schema)
    if annotation is None or isinstance(value, str):
        return value
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    for candidate in (value, text):
        try:
            adapter.validate_python(candidate, strict=isinstance(candidate, str))
        except ValidationError:
            continue
        return candidate
    return value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], *, schema: type[BaseModel]) -> None:
    """Apply each 'key.sub=value' to the file's tables `raw` (in place), typed by `schema`'s fields."""
    for assignment in overrides:
        key, value = parse_set(assignment)
        _assign(raw, key, typed_value(key, value, assignment.partition("=")[2].strip(), schema=schema))
