"""Class-name slugs: file-name safe, unchanged for plain names, never shared by two different names."""

from __future__ import annotations

import re

import numpy as np

from synthmed.sample.writer import SyntheticSetWriter, slug


def test_plain_names_keep_their_form_and_others_get_a_stable_hash() -> None:
    assert slug("NORMAL") == "NORMAL" and slug("grade-2_a.b") == "grade-2_a.b"
    assert re.fullmatch(r"n_c_d-[0-9a-f]{6}", slug("Ünïcødé 肺"))
    assert slug("Ünïcødé 肺") == slug("Ünïcødé 肺")  # stable
    for name in ("肺", "..", ".hidden", "", "a/b", "Covid 19"):
        assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", slug(name)), name


def test_different_names_never_share_a_slug() -> None:
    names = ["肺", "心", "Covid 19", "Covid_19", "Covid/19", "a b", "a_b", "", "class"]
    assert len({slug(n) for n in names}) == len(names)


def test_two_cjk_classes_with_the_same_seeds_write_apart(tmp_path) -> None:
    grey = np.zeros((8, 8), dtype=np.uint8)
    with SyntheticSetWriter(tmp_path / "set") as writer:
        lung = writer.add(grey, label="肺", label_idx=0, seed=0)
        heart = writer.add(grey, label="心", label_idx=1, seed=0)
    assert lung["path"] != heart["path"] and lung["image_id"] != heart["image_id"]
