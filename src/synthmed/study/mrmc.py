"""Multi-reader multi-case ROC analysis: Obuchowski-Rockette with Hillis degrees of freedom (random readers and cases).

Figure of merit: the empirical (trapezoidal, Wilcoxon) ROC AUC of each treatment x reader. The error
covariances Var, Cov1 (same reader, other treatment), Cov2 (other reader, same treatment) and Cov3 (other
reader, other treatment) are jackknife estimates over cases, as in Hillis's OR-DBM MRMC, RJafroc and MRMCaov.
References: Obuchowski & Rockette (1995); Hillis (2007) Stat Med 26:596 (ddf_H); Hillis et al. (2008).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class Covariances:
    """Obuchowski-Rockette error variance and covariances of the reader AUCs (jackknife over cases)."""

    var: float
    cov1: float
    cov2: float
    cov3: float


@dataclass(frozen=True)
class SingleTreatment:
    """One treatment's reader-averaged AUC with its random-reader, random-case interval (Hillis 2007)."""

    auc: float
    reader_aucs: tuple[float, ...]
    ms_r: float
    cov2: float
    var: float
    stderr: float
    df: float
    ci95_low: float
    ci95_high: float


def _placements(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """psi[i, j] = 1 if positive i outranks negative j, 0.5 on a tie, else 0 (scores of one reader)."""
    positive, negative = scores[truth], scores[~truth]
    return (positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :])


def reader_aucs(ratings: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Empirical AUC of every treatment x reader; `ratings` is (treatments, readers, cases), truth (cases,) bool."""
    return np.array([[roc_auc_score(truth, r) for r in per_treatment] for per_treatment in ratings])


def jackknife_aucs(ratings: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(treatments, readers, cases): the AUC with each case left out in turn."""
    truth = np.asarray(truth, dtype=bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    out = np.empty(ratings.shape, dtype=np.float64)
    pos_index, neg_index = np.flatnonzero(truth), np.flatnonzero(~truth)
    for t in range(ratings.shape[0]):
        for r in range(ratings.shape[1]):
            psi = _placements(np.asarray(ratings[t, r], dtype=np.float64), truth)
            total = psi.sum()
            out[t, r, pos_index] = (total - psi.sum(axis=1)) / ((n_pos - 1) * n_neg)
            out[t, r, neg_index] = (total - psi.sum(axis=0)) / (n_pos * (n_neg - 1))
    return out


def covariances(ratings: np.ndarray, truth: np.ndarray) -> Covariances:
    """Jackknife Var, Cov1, Cov2, Cov3 averaged over the treatment/reader pairs each one covers."""
    jack = jackknife_aucs(ratings, truth)
    n_t, n_r, n_c = jack.shape
    centred = (jack - jack.mean(axis=2, keepdims=True)).reshape(n_t * n_r, n_c)
    cov = centred @ centred.T * (n_c - 1) / n_c
    treatment = np.repeat(np.arange(n_t), n_r)
    reader = np.tile(np.arange(n_r), n_t)
    same_t, same_r = treatment[:, None] == treatment[None, :], reader[:, None] == reader[None, :]

    def mean_where(mask: np.ndarray) -> float:
        return float(cov[mask].mean()) if mask.any() else float("nan")

    return Covariances(
        var=mean_where(same_t & same_r),
        cov1=mean_where(~same_t & same_r),
        cov2=mean_where(same_t & ~same_r),
        cov3=mean_where(~same_t & ~same_r),
    )


def single_treatment(ratings: np.ndarray, truth: np.ndarray, *, alpha: float = 0.05) -> SingleTreatment:
    """Reader-averaged AUC of one treatment, `ratings` (readers, cases): SE = sqrt(MS(R)/r + max(Cov2, 0)),
    df_H = (MS(R) + r max(Cov2, 0))^2 / (MS(R)^2 / (r - 1)) (Hillis 2007, "ddf_H_single")."""
    ratings = np.asarray(ratings, dtype=np.float64)[None]
    n_readers = ratings.shape[1]
    if n_readers < 2:
        raise ValueError("a random-reader analysis needs at least 2 readers.")
    aucs = reader_aucs(ratings, truth)[0]
    parts = covariances(ratings, truth)
    ms_r = float(aucs.var(ddof=1))
    cov2 = max(parts.cov2, 0.0)
    stderr = float(np.sqrt(ms_r / n_readers + cov2))
    df = (ms_r + n_readers * cov2) ** 2 / (ms_r**2 / (n_readers - 1)) if ms_r > 0 else float("inf")
    half = float(stats.t.ppf(1 - alpha / 2, df)) * stderr
    mean = float(aucs.mean())
    return SingleTreatment(
        auc=mean,
        reader_aucs=tuple(float(a) for a in aucs),
        ms_r=ms_r,
        cov2=parts.cov2,
        var=parts.var,
        stderr=stderr,
        df=float(df),
        ci95_low=mean - half,
        ci95_high=mean + half,
    )


def compare_treatments(ratings: np.ndarray, truth: np.ndarray, *, alpha: float = 0.05) -> dict:
    """OR-Hillis random-reader random-case test of equal treatment AUCs, `ratings` (treatments, readers, cases)."""
    ratings = np.asarray(ratings, dtype=np.float64)
    n_t, n_r = ratings.shape[:2]
    aucs = reader_aucs(ratings, truth)
    parts = covariances(ratings, truth)
    grand, by_t, by_r = aucs.mean(), aucs.mean(axis=1), aucs.mean(axis=0)
    ms_t = n_r * float(((by_t - grand) ** 2).sum()) / (n_t - 1)
    ms_r = n_t * float(((by_r - grand) ** 2).sum()) / (n_r - 1)
    ms_tr = float(((aucs - by_t[:, None] - by_r[None, :] + grand) ** 2).sum()) / ((n_t - 1) * (n_r - 1))
    denominator = ms_tr + n_r * max(parts.cov2 - parts.cov3, 0.0)
    f_stat = ms_t / denominator
    ddf = denominator**2 / (ms_tr**2 / ((n_t - 1) * (n_r - 1)))
    result = {
        "aucs": aucs,
        "treatment_means": by_t,
        "ms_t": ms_t,
        "ms_r": ms_r,
        "ms_tr": ms_tr,
        "covariances": parts,
        "f": f_stat,
        "df1": n_t - 1,
        "df2": ddf,
        "p_value": float(stats.f.sf(f_stat, n_t - 1, ddf)),
    }
    if n_t == 2:
        diff = float(by_t[0] - by_t[1])
        stderr = float(np.sqrt(2.0 / n_r * denominator))
        half = float(stats.t.ppf(1 - alpha / 2, ddf)) * stderr
        result.update(difference=diff, difference_stderr=stderr, difference_ci95=(diff - half, diff + half))
    return result


def tost_vs_chance(result: SingleTreatment, *, margin: float, alpha: float = 0.05) -> dict:
    """Two one-sided t tests of |AUC - 0.5| < margin on the random-reader, random-case SE and df_H.

    Equivalence is shown when both one-sided p values are below alpha, i.e. when the (1 - 2 alpha) interval
    lies inside (0.5 - margin, 0.5 + margin).
    """
    if not 0 < margin < 0.5:
        raise ValueError(f"the equivalence margin must be between 0 and 0.5 (AUC units); got {margin}.")
    stderr = max(result.stderr, 1e-12)  # every reader gave every case one score: no spread at all
    t_low = (result.auc - (0.5 - margin)) / stderr
    t_high = ((0.5 + margin) - result.auc) / stderr
    p_value = float(max(stats.t.sf(t_low, result.df), stats.t.sf(t_high, result.df)))
    half = float(stats.t.ppf(1 - alpha, result.df)) * result.stderr
    two_sided = float(2 * stats.t.sf(abs(result.auc - 0.5) / stderr, result.df))
    return {
        "margin": margin,
        "alpha": alpha,
        "p_value": p_value,
        "equivalent": p_value < alpha,
        "ci90_low": result.auc - half,
        "ci90_high": result.auc + half,
        "p_vs_chance": two_sided,
    }
