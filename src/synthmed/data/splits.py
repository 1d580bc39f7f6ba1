"""Assign train/val/test by patient: keep the user's splits, carve what is missing, never cut a patient."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def split_by_patient(
    frame: pd.DataFrame,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    given_split_column: str = "given_split",
    group_column: str = "patient_id",
) -> pd.Series:
    """Return a `split` Series for `frame` (columns `group_column`, `label`, optional `given_split`).

    `group_column` is the unit that is never cut: the patient id, or (as `prepare` does) the patient
    merged with every other patient sharing a byte-identical file (see `split_groups`).

    - Rows with a given `train`/`val`/`test` split keep it.
    - If no `val` is given, `val_fraction` of the train patients (or of all unsplit patients) become val.
    - Rows without a given split (`all`, or none) are split into train/val/test by patient.
    Patients are shuffled with `seed` and assigned per class of their first image (stratified), filling
    each split up to its share of images, so class balance is kept and a patient never spans two
    carved splits. A patient that the user's own splits already put in two splits stays where it is
    (the dataset card reports it as leakage).
    """
    rng = np.random.default_rng(seed)
    frame = frame.assign(patient_id=frame[group_column])
    given = frame[given_split_column] if given_split_column in frame.columns else pd.Series([None] * len(frame))
    given = given.where(given.isin(["train", "val", "test"]), None).reset_index(drop=True)
    split = given.copy()
    frame = frame.reset_index(drop=True)
    has_val = (given == "val").any()
    unsplit = given.isna()
    if unsplit.any():
        fractions = {"test": test_fraction, "val": 0.0 if has_val else val_fraction}
        split[unsplit] = _carve(frame[unsplit], fractions, rng)
    if not has_val and val_fraction > 0:
        elsewhere = set(frame.loc[given.isin(["test"]), "patient_id"])
        train_given = (given == "train") & ~frame["patient_id"].isin(elsewhere)
        if train_given.any():
            # Patients that also sit in another given split stay in train (their leakage is reported).
            split[train_given] = _carve(frame[train_given], {"val": val_fraction}, rng, rest="train")
    return split


def _carve(
    frame: pd.DataFrame, fractions: dict[str, float], rng: np.random.Generator, *, rest: str = "train"
) -> list[str]:
    """Split rows by patient into `fractions` (of images) and `rest`, stratified by each patient's first label.

    Patients are shuffled, then each goes to the split furthest below its target image count (ties go
    to `rest`), so big patients or duplicate groups never empty the training split.
    """
    assignment: dict[str, str] = {}
    patients = frame.groupby("patient_id", sort=True).agg(label=("label", "first"), n=("label", "size"))
    wanted = {name: fraction for name, fraction in fractions.items() if fraction > 0}
    for _, group in patients.groupby("label", sort=True):
        order = group.index.to_numpy()[rng.permutation(len(group))]
        total = float(group["n"].sum())
        targets = {rest: (1.0 - sum(wanted.values())) * total, **{n: f * total for n, f in wanted.items()}}
        filled = dict.fromkeys(targets, 0.0)
        for patient in order:
            name = max(targets, key=lambda s: targets[s] - filled[s])  # first key (rest) wins ties
            assignment[patient] = name
            filled[name] += float(group.loc[patient, "n"])
    return [assignment[p] for p in frame["patient_id"]]


def split_groups(patient_ids: pd.Series, hashes: pd.Series, linked_rows: Sequence[tuple[int, int]] = ()) -> pd.Series:
    """Union of patients linked by byte-identical files (same hash) or by `linked_rows` pairs
    (positions, e.g. near-duplicates): one id per group that must stay in one split."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    patients = patient_ids.astype(str).tolist()
    for patient, digest in zip(patients, hashes.astype(str)):
        parent[find("p:" + patient)] = find("h:" + digest)
    for a, b in linked_rows:
        parent[find("p:" + patients[a])] = find("p:" + patients[b])
    return pd.Series([find("p:" + p) for p in patient_ids.astype(str)], index=patient_ids.index)


def patients_in_several_splits(frame: pd.DataFrame) -> dict[str, list[str]]:
    """{patient_id: [splits]} for every patient whose images sit in more than one split."""
    spread = frame.groupby("patient_id")["split"].unique()
    return {str(pid): sorted(map(str, splits)) for pid, splits in spread.items() if len(splits) > 1}
