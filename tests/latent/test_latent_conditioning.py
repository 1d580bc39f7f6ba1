"""Metadata conditioning: spec from the manifest, encoding with unknowns, null conditions for guidance."""

import numpy as np
import pandas as pd
import pytest
import torch

from synthmed.latent.conditioning import ConditionEmbedding, encode_metadata, metadata_spec_from_frame


def make_frame():
    return pd.DataFrame(
        {"label": ["a", "b", "a"], "age_years": [30.0, np.nan, 50.0], "sex": ["F", "M", None], "view": ["", "", None]}
    )


def test_spec_uses_only_columns_with_values():
    spec = metadata_spec_from_frame(make_frame())
    assert spec.age and spec.age_mean == 40.0 and spec.sex_values == ["F", "M"] and spec.view_values == []
    assert spec.fields == ["age_years", "sex"]
    assert metadata_spec_from_frame(make_frame(), use=("sex",)).fields == ["sex"]
    assert metadata_spec_from_frame(pd.DataFrame({"label": ["a"]})).fields == []
    with pytest.raises(ValueError, match="supports"):
        metadata_spec_from_frame(make_frame(), use=("weight",))


def test_encoding_marks_unknowns_and_unseen_values():
    spec = metadata_spec_from_frame(make_frame())
    encoded = encode_metadata(make_frame(), spec)
    assert encoded["age"][:, 1].tolist() == [1.0, 0.0, 1.0] and encoded["age"][0, 0] < 0 < encoded["age"][2, 0]
    assert encoded["sex"].tolist() == [1, 2, 0] and "view" not in encoded
    other = encode_metadata(pd.DataFrame({"label": ["a"], "sex": ["X"]}), spec)
    assert other["sex"].tolist() == [0] and other["age"][0, 1] == 0.0


def test_embedding_depends_on_metadata_and_drop_gives_the_null_condition():
    spec = metadata_spec_from_frame(make_frame())
    torch.manual_seed(0)
    emb = ConditionEmbedding(num_classes=2, dim=8, spec=spec)
    labels = torch.tensor([0, 0])
    meta = {"age": torch.tensor([[-1.0, 1.0], [1.0, 1.0]]), "sex": torch.tensor([1, 2])}
    out = emb(labels, meta)
    assert not torch.allclose(out[0], out[1])
    dropped = emb(labels, meta, drop=torch.tensor([True, True]))
    assert torch.allclose(dropped[0], dropped[1])
    assert torch.allclose(
        dropped[0], emb(torch.tensor([2]), {"age": torch.zeros(1, 2), "sex": torch.zeros(1, dtype=torch.long)})[0]
    )
