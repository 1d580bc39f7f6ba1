"""Blinding audit: sets that differ only by file origin are refused, matched sets pass, overrides are recorded."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from study.origin_sets import origin_pair
from synthmed.cli import main
from synthmed.study.blinding import BlindingAuditFailed, StudySpec, build_study
from synthmed.study.encoding import EncodingPlan, encode, load


def create(tmp_path, real_kind: str, synthetic_kind: str, **spec):  # noqa: ANN001, ANN201
    real, synthetic = origin_pair(tmp_path / "sources", real_kind, synthetic_kind)
    return build_study(
        StudySpec(cases=40, seed=0, **spec), real_dir=real, synthetic_dir=synthetic, study_dir=tmp_path / "study"
    )


@pytest.mark.parametrize(
    "real_kind, synthetic_kind, giveaways",
    [
        (
            "png8_64",
            "png16_64_stretched",
            {
                "min_intensity",
                "max_intensity",
                "p01_intensity",
                "p99_intensity",
                "std_intensity",
                "mean_intensity",
                "empty_bins",
                "distinct_levels",
            },
        ),
        ("png8_64", "png8_32", {"sharpness", "high_freq_power", "png_bytes_per_px", "std_intensity"}),
        ("jpeg_64", "png8_64", {"jpeg_blockiness", "high_freq_power", "sharpness", "png_bytes_per_px"}),
    ],
    ids=["bit-depth", "size", "format"],
)
def test_origin_only_differences_are_refused_with_the_giveaway_and_the_fix(
    tmp_path, real_kind, synthetic_kind, giveaways
):
    with pytest.raises(BlindingAuditFailed) as failure:
        create(tmp_path, real_kind, synthetic_kind)
    message = str(failure.value)
    assert "blinding audit failed" in message and "--match" in message and "--allow-unblinded" in message
    assert "\n" not in message
    assert not (tmp_path / "study").exists(), "a refused study must leave nothing behind"
    created = create(tmp_path, real_kind, synthetic_kind, allow_unblinded=True)
    audit = created.blinding_audit
    assert not audit.passed and audit.overridden and audit.accuracy >= 0.75 and audit.p_value < 0.01
    assert audit.giveaway in giveaways, audit.summary


def test_matched_set_passes(tmp_path):
    audit = create(tmp_path, "png8_64", "png8_64").blinding_audit
    assert audit.passed and not audit.overridden and audit.p_value > 0.05 and audit.accuracy < 0.7


def test_sixteen_bit_copy_serves_the_same_pixels_and_passes(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 200, (40, 40)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a8.png")
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "a16.png")
    plan = EncodingPlan(size_px=40, mode="L")
    served = [
        np.asarray(Image.open(io.BytesIO(encode(load(str(tmp_path / name)), plan)))) for name in ("a8.png", "a16.png")
    ]
    np.testing.assert_array_equal(served[0], served[1])
    np.testing.assert_array_equal(served[0], pixels)  # no min-max stretch: 8-bit pixels are served unchanged
    assert create(tmp_path, "png8_64", "png16_64").blinding_audit.passed


def test_match_removes_the_jpeg_giveaway(tmp_path):
    created = create(tmp_path, "jpeg_64", "png8_64", match=True)
    assert created.blinding_audit.passed and created.image_size_px == 32


def test_grey_jpeg_tints_are_removed_and_one_colour_image_does_not_turn_the_study_rgb(tmp_path):
    grey = np.random.default_rng(1).integers(0, 255, (32, 32)).astype(np.uint8)
    tinted = np.stack([grey, np.clip(grey.astype(int) + 6, 0, 255), grey], axis=2).astype(np.uint8)
    Image.fromarray(tinted).save(tmp_path / "tinted.jpg", quality=95)
    assert load(str(tmp_path / "tinted.jpg")).ndim == 2
    colour = np.zeros((32, 32, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "red.png")
    from synthmed.study.encoding import plan_encoding

    assert plan_encoding([32] * 5, [False] * 4 + [True], size_px=None, match=False).mode == "L"
    assert plan_encoding([32] * 5, [True] * 3 + [False] * 2, size_px=None, match=False).mode == "RGB"
    with pytest.raises(ValueError, match="at most half"):
        plan_encoding([64, 80], [False, False], size_px=48, match=True)


def test_cli_refuses_with_exit_2_and_results_state_an_override(tmp_path, capsys):
    real, synthetic = origin_pair(tmp_path / "sources", "jpeg_64", "png8_64")
    argv = [
        "study",
        "create",
        "--real",
        str(real),
        "--synthetic",
        str(synthetic),
        "--cases",
        "40",
        "--reader",
        "ann",
        "--reader",
        "ben",
    ]
    assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
    error = capsys.readouterr().err
    lines = [line for line in error.replace("\r", "\n").splitlines() if "error" in line]  # (tqdm bars aside)
    assert len(lines) == 1 and "blinding audit failed" in lines[0] and "JPEG blockiness" in lines[0]
    assert main([*argv, "--out", str(tmp_path / "s"), "--allow-unblinded"]) == 0
    assert "blinding audit OVERRIDDEN" in capsys.readouterr().out
    from synthmed.study.db import make_engine, make_sessionmaker
    from synthmed.study.results import study_results

    engine = make_engine(f"sqlite:///{tmp_path / 's' / 'study.db'}")
    with make_sessionmaker(engine)() as session:
        result = study_results(session=session)
    engine.dispose()
    assert result["blinding_audit"]["overridden"] and json.dumps(result)
    assert "overrode" in result["verdict"]


@pytest.mark.parametrize("factor", [257, 256])
def test_both_sixteen_bit_conventions_serve_the_eight_bit_pixels(tmp_path, factor):
    """x * 257 and x << 8 (the usual conversion) of 8-bit data must serve exactly the 8-bit pixels."""
    eight = np.random.default_rng(3).integers(0, 256, (16, 16)).astype(np.uint16)
    eight[0, 0], eight[0, 1] = 0, 255
    Image.fromarray(eight.astype(np.uint8)).save(tmp_path / "narrow.png")
    Image.fromarray(eight * factor).save(tmp_path / "wide.png")
    np.testing.assert_array_equal(load(str(tmp_path / "wide.png")), load(str(tmp_path / "narrow.png")))
