"""Patient splits: shares, stratification, kept user splits, duplicate groups."""

import numpy as np
import pandas as pd

from synthmed.data.splits import patients_in_several_splits, split_by_patient, split_groups


def _frame(n_patients=60, per_patient=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        {"patient_id": f"p{p}", "label": "a" if p % 3 else "b"}
        for p in range(n_patients)
        for _ in range(rng.integers(1, per_patient + 1))
    ]
    return pd.DataFrame(rows)


def test_shares_by_patient_and_class():
    frame = _frame()
    split = split_by_patient(frame, val_fraction=0.2, test_fraction=0.2, seed=1)
    frame["split"] = split.to_numpy()
    assert not patients_in_several_splits(frame)
    for label, group in frame.groupby("label"):
        shares = group["split"].value_counts(normalize=True)
        assert 0.1 <= shares["test"] <= 0.32 and 0.1 <= shares["val"] <= 0.32, (label, shares)


def test_seed_changes_the_split_but_is_reproducible():
    frame = _frame()
    a = split_by_patient(frame, val_fraction=0.2, test_fraction=0.2, seed=1)
    b = split_by_patient(frame, val_fraction=0.2, test_fraction=0.2, seed=1)
    c = split_by_patient(frame, val_fraction=0.2, test_fraction=0.2, seed=2)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_given_splits_kept_and_val_only_from_train():
    frame = _frame()
    frame["given_split"] = np.where(frame["patient_id"].str[1:].astype(int) < 45, "train", "test")
    split = split_by_patient(frame, val_fraction=0.25, test_fraction=0.2, seed=0)
    assert (split[frame["given_split"] == "test"] == "test").all()
    assert set(split[frame["given_split"] == "train"]) == {"train", "val"}


def test_leaky_user_patient_stays_in_train_and_is_reported():
    frame = pd.DataFrame(
        {
            "patient_id": ["x", "x", "y", "z", "w"],
            "label": ["a"] * 5,
            "given_split": ["train", "test", "train", "train", "train"],
        }
    )
    split = split_by_patient(frame, val_fraction=0.4, test_fraction=0.0, seed=0)
    assert split[0] == "train" and split[1] == "test"
    assert patients_in_several_splits(frame.assign(split=split.to_numpy())) == {"x": ["test", "train"]}


def test_split_groups_join_patients_sharing_a_file():
    groups = split_groups(pd.Series(["a", "b", "c", "d"]), pd.Series(["h1", "h2", "h1", "h3"]))
    assert groups[0] == groups[2] and len(set(groups)) == 3


def test_a_big_patient_never_empties_train():
    frame = pd.DataFrame({"patient_id": ["big"] * 70 + ["small"] * 10, "label": ["a"] * 80})
    for seed in range(5):
        split = split_by_patient(frame, val_fraction=0.1, test_fraction=0.1, seed=seed)
        assert (split == "train").sum() >= 70
