"""Captions from a manifest column or a template over labels and metadata."""

import pandas as pd
import pytest

from synthmed.data.captions import make_captions


def test_caption_column_wins_and_template_fills_the_rest():
    frame = pd.DataFrame(
        {
            "label": ["effusion", "normal"],
            "view": ["PA", None],
            "sex": ["F", "M"],
            "age_years": [45.0, float("nan")],
            "caption": ["a hand-written caption", ""],
        }
    )
    captions = make_captions(
        frame, template="{modality}, {label}, {view}, {sex}, age {age_years}", modality="chest x-ray"
    )
    assert captions == ["a hand-written caption", "chest x-ray, normal, unknown, M, age unknown"]
    assert (
        make_captions(frame, template="{label}, {view}, age {age_years}", use_caption_column=False)[0]
        == "effusion, PA, age 45"
    )


def test_template_field_missing_from_manifest_is_named():
    with pytest.raises(ValueError, match=r"\['view'\].*--caption-template"):
        make_captions(pd.DataFrame({"label": ["a"]}), template="{label}, {view}")
    with pytest.raises(ValueError, match="not a valid format string"):
        make_captions(pd.DataFrame({"label": ["a"]}), template="{label")
