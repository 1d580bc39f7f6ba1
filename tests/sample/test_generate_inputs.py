"""generate.py input checks: SampleConfig (device, seed range, DICOM modality, class lists) and class choice."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from synthmed.sample.generate import SampleConfig, _class_indices

BASE = {"model_dir": "-", "out_dir": "-", "n_per_class": 2}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("device", "banana", "device 'banana' is not a device"),
        ("seed_start", 2**63, "less than 9223372036854775808"),
        ("seed_start", 2**63 - 1, "passes 2"),
        ("modality", "mr", "should match pattern"),
        ("modality", "ABCDEFGHIJKLMNOPQ", "should match pattern"),
        ("classes", [""], "classes is empty"),
        ("classes", [], "classes is empty"),
    ],
)
def test_bad_values_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SampleConfig(**BASE, **{field: value})


def test_good_values_pass() -> None:
    config = SampleConfig(**BASE, device="cuda:1", modality="CR", seed_start=2**63 - 2, classes=["a"])
    assert config.modality == "CR" and config.seed_start == 2**63 - 2


def test_a_class_named_twice_is_refused() -> None:
    assert _class_indices(["b", "0"], ["a", "b"]) == [1, 0]
    with pytest.raises(ValueError, match="'Covid' is named twice"):
        _class_indices(["Covid", "Covid"], ["Covid", "Normal"])
    with pytest.raises(ValueError, match="named twice"):
        _class_indices(["Covid", "0"], ["Covid", "Normal"])
