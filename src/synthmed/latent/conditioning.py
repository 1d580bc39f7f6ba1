"""Conditioning beyond the class: age, sex and view from the manifest, embedded and added to the timestep embedding."""

from __future__ import annotations

import math

import pandas as pd
import torch
from pydantic import BaseModel, Field

METADATA_FIELDS = ("age_years", "sex", "view")


class MetadataSpec(BaseModel):
    """Which metadata the model is conditioned on, with the value lists / normalisation seen in training."""

    age: bool = False
    age_mean: float = 0.0
    age_std: float = 1.0
    sex_values: list[str] = Field(default_factory=list)  # empty = not conditioned on sex
    view_values: list[str] = Field(default_factory=list)  # empty = not conditioned on view

    @property
    def fields(self) -> list[str]:
        return [f for f, on in zip(METADATA_FIELDS, (self.age, bool(self.sex_values), bool(self.view_values))) if on]


def _clean(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def metadata_spec_from_frame(frame: pd.DataFrame, *, use: tuple[str, ...] = METADATA_FIELDS) -> MetadataSpec:
    """Condition on each of `use` that the manifest has with at least one known value."""
    spec = MetadataSpec()
    unknown = [f for f in use if f not in METADATA_FIELDS]
    if unknown:
        raise ValueError(f"cannot condition on {unknown}; metadata conditioning supports {list(METADATA_FIELDS)}.")
    if "age_years" in use and "age_years" in frame.columns:
        ages = pd.to_numeric(frame["age_years"], errors="coerce").dropna()
        if len(ages):
            spec.age, spec.age_mean, spec.age_std = True, float(ages.mean()), float(max(ages.std(ddof=0), 1.0))
    for field, attr in (("sex", "sex_values"), ("view", "view_values")):
        if field in use and field in frame.columns:
            values = sorted({v for v in map(_clean, frame[field]) if v is not None})
            setattr(spec, attr, values)
    return spec


def encode_metadata(frame: pd.DataFrame, spec: MetadataSpec) -> dict[str, torch.Tensor]:
    """Per-row tensors: age [N, 2] (normalised age, known flag), sex [N] / view [N] indices (0 = unknown)."""
    n = len(frame)
    out: dict[str, torch.Tensor] = {}
    if spec.age:
        ages = (
            pd.to_numeric(frame["age_years"], errors="coerce")
            if "age_years" in frame.columns
            else pd.Series([float("nan")] * n)
        )
        known = ages.notna().to_numpy()
        norm = ((ages.fillna(spec.age_mean) - spec.age_mean) / spec.age_std).to_numpy()
        out["age"] = torch.tensor([[a, float(k)] for a, k in zip(norm, known)], dtype=torch.float32).reshape(n, 2)
    for field, values in (("sex", spec.sex_values), ("view", spec.view_values)):
        if values:
            column = frame[field] if field in frame.columns else pd.Series([None] * n)
            out[field] = torch.tensor(
                [values.index(v) + 1 if v in values else 0 for v in map(_clean, column)], dtype=torch.long
            )
    return out


class ConditionEmbedding(torch.nn.Module):
    """Sum of class, age, sex and view embeddings (width `dim`); class `num_classes` is the null class.

    `drop` (bool [B]) replaces every condition of those rows by its null value, for
    classifier-free guidance training and the unconditional sampling branch.
    """

    def __init__(self, *, num_classes: int, dim: int, spec: MetadataSpec):
        super().__init__()
        self.num_classes = num_classes
        self.spec = spec
        self.classes = torch.nn.Embedding(num_classes + 1, dim)
        self.age = (
            torch.nn.Sequential(torch.nn.Linear(2, dim), torch.nn.SiLU(), torch.nn.Linear(dim, dim))
            if spec.age
            else None
        )
        self.sex = torch.nn.Embedding(len(spec.sex_values) + 1, dim) if spec.sex_values else None
        self.view = torch.nn.Embedding(len(spec.view_values) + 1, dim) if spec.view_values else None

    def forward(
        self, labels: torch.Tensor, metadata: dict[str, torch.Tensor] | None = None, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        metadata = metadata or {}
        if drop is not None:
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        emb = self.classes(labels)
        for name, module in (("age", self.age), ("sex", self.sex), ("view", self.view)):
            if module is None:
                continue
            value = metadata.get(name)
            if value is None:  # unknown for every row
                value = torch.zeros((len(labels), 2)) if name == "age" else torch.zeros(len(labels), dtype=torch.long)
            value = value.to(labels.device)
            if drop is not None:
                value = (
                    torch.where(drop[:, None], torch.zeros_like(value), value)
                    if name == "age"
                    else torch.where(drop, torch.zeros_like(value), value)
                )
            emb = emb + module(value.to(emb.dtype) if name == "age" else value)
        return emb
