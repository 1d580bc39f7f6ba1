"""Known-answer tests of FID, KID and precision/recall/density/coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from synthmed.evaluate.fidelity import (
    FidelityConfig,
    compare_sets,
    compute_fidelity,
    frechet_distance,
    kernel_inception_distance,
    prdc_indicators,
)


def _gaussian(n: int, dim: int, *, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_identical_sets_give_zero_fid_and_kid():
    x = _gaussian(400, 16)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    shifted, _ = kernel_inception_distance(x, x + 1.0, subset_size=200, subsets=20, rng=rng)
    identical, _ = kernel_inception_distance(x, x.copy(), subset_size=200, subsets=20, rng=rng)
    same_law, _ = kernel_inception_distance(x, _gaussian(400, 16, seed=9), subset_size=200, subsets=20, rng=rng)
    assert shifted > 5.0
    # Unbiased MMD^2 is ~0 (it can dip just below 0) when both sets come from one distribution.
    assert abs(identical) < 0.01 * shifted and abs(same_law) < 0.01 * shifted


def test_fid_grows_with_mean_shift():
    real = _gaussian(1000, 8, seed=1)
    fids = [frechet_distance(real, _gaussian(1000, 8, shift=s, seed=2)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids)
    # A shift of s in every one of 8 dimensions adds 8 s^2 to the FID.
    assert fids[3] - fids[0] == pytest.approx(8 * 4.0, rel=0.1)


def test_fid_matches_closed_form_and_scipy_sqrtm():
    rng = np.random.default_rng(3)
    dim = 6
    a = rng.normal(size=(dim, dim))
    cov1, cov2 = a @ a.T / dim + np.eye(dim), np.diag(rng.uniform(0.5, 2.0, dim))
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    x = rng.multivariate_normal(mu1, cov1, size=20000)
    y = rng.multivariate_normal(mu2, cov2, size=20000)
    closed = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * linalg.sqrtm(cov1 @ cov2).real))
    assert frechet_distance(x, y) == pytest.approx(closed, rel=0.05)
    # The same estimate through scipy's sqrtm on the sample statistics (the classic pytorch-fid formula).
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    direct = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(x, y) == pytest.approx(direct, rel=1e-6)


def test_kid_matches_direct_unbiased_mmd():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 5)) + 0.7
    kernel = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3  # noqa: E731
    m = 30
    expected = (
        (kernel(x, x).sum() - np.trace(kernel(x, x))) / (m * (m - 1))
        + (kernel(y, y).sum() - np.trace(kernel(y, y))) / (m * (m - 1))
        - 2 * kernel(x, y).mean()
    )
    kid, std = kernel_inception_distance(x, y, subset_size=30, subsets=3, rng=rng)
    assert kid == pytest.approx(expected, rel=1e-5)  # every subset is the full set
    assert std == pytest.approx(0.0, abs=1e-9)
    assert kid > 0.05


def test_prdc_perfect_on_identical_and_low_recall_on_collapse():
    real = _gaussian(300, 8, seed=5)
    same = prdc_indicators(real, real.copy(), k=5)
    assert same["precision"].mean() == 1.0 and same["recall"].mean() == 1.0 and same["coverage"].mean() == 1.0
    collapsed = real[:1] + np.random.default_rng(6).normal(scale=0.01, size=(300, 8))
    terms = prdc_indicators(real, collapsed, k=5)
    assert terms["recall"].mean() < 0.1
    assert terms["coverage"].mean() < 0.1


def test_compute_fidelity_per_class_beside_floor():
    rng = np.random.default_rng(7)
    classes = ["a", "b"]
    labels = lambda n: np.arange(n) % 2  # noqa: E731
    train = rng.normal(size=(200, 4)) + labels(200)[:, None] * 3
    held = rng.normal(size=(100, 4)) + labels(100)[:, None] * 3
    synth = rng.normal(size=(100, 4)) + labels(100)[:, None] * 3 + 1.5
    result = compute_fidelity(
        train=train,
        train_labels=labels(200),
        heldout=held,
        heldout_labels=labels(100),
        synthetic=synth,
        synthetic_labels=labels(100),
        classes=classes,
        config=FidelityConfig(bootstrap_samples=10, kid_subsets=10),
    )
    overall = result["overall"]
    assert overall["synthetic"]["fid"]["value"] > 5 * overall["real_floor"]["fid"]["value"]
    lo, hi = overall["synthetic"]["fid"]["ci95"]
    assert lo <= overall["synthetic"]["fid"]["value"] * 1.2 and hi >= lo
    assert set(result["per_class"]) == {"a", "b"}
    assert result["per_class"]["a"]["synthetic"]["n_compared"] == 50


def test_too_few_images_gives_a_note_not_a_crash():
    out = compare_sets(np.zeros((1, 3)), np.ones((5, 3)), config=FidelityConfig(), rng=np.random.default_rng(0))
    assert "note" in out and "fid" not in out
