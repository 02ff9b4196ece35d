"""Statistics over independent replicates, one convention for the whole project.

A replicate is one independently initialized model (a toy MLP seed, a GPT base). Every
confidence interval is the 95% t-interval of the mean, mean +- t(0.975, n-1) sd / sqrt(n).
Tests over replicates come in two kinds, side by side: the t-test (paired where two arms share
their replicates), and the exact sign-flip permutation test, which assumes only that each
replicate's difference is symmetric about 0 under the null; at small n it is the honest one (its
smallest p with n replicates is 2^-n). A family of tests is adjusted with Holm's step-down
method. scipy supplies the t distribution and the t-tests: a well-kept library beats a
hand-written incomplete-beta function here.
"""

import itertools
import math

import numpy as np
from scipy import stats

EXACT_UP_TO = 20  # replicates: 2^20 signed sums take 8 MB and a fraction of a second; beyond, Monte Carlo


def summary(values: list[float]) -> dict:
    """Mean and 95% CI half-width from the t distribution, over n independent replicates."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "ci95": float("nan"), "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"mean": mean, "ci95": float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n), "n": n}


def paired_greater(a: list[float], b: list[float]) -> float:
    """One-sided paired t-test p-value for mean(a - b) > 0 (pairs share a replicate)."""
    if len(a) < 2:
        return float("nan")
    return float(stats.ttest_rel(a, b, alternative="greater").pvalue)


def sign_flip_greater(differences: list[float], draws: int = 100_000, seed: int = 0) -> float:
    """One-sided paired sign-flip permutation p-value for mean(differences) > 0.

    p = the share of the 2^n sign patterns whose sum is at least the observed sum (the observed
    pattern counts, so p >= 2^-n), exact up to EXACT_UP_TO replicates; beyond, `draws` seeded
    random patterns with p = (1 + hits) / (1 + draws), which never understates the exact p's
    expectation. Sums within a relative 1e-9 of the observed count as ties (floating sums of
    the same values in another order may differ in the last bits).
    """
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 1:
        return float("nan")
    observed = d.sum()
    tie = 1e-9 * max(np.abs(d).sum(), 1e-300)
    if len(d) <= EXACT_UP_TO:
        sums = np.zeros(1)
        for x in np.abs(d):  # every signed sum, doubling: 2^k sums after k replicates
            sums = np.concatenate([sums + x, sums - x])
        return float((sums >= observed - tie).mean())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(draws, len(d)))
    hits = int(((signs * np.abs(d)).sum(axis=1) >= observed - tie).sum())
    return (1 + hits) / (1 + draws)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order: the k-th smallest of m is
    multiplied by (m - k + 1), capped at 1, and kept no smaller than the one before it."""
    if any(math.isnan(p) for p in pvalues):
        raise ValueError("holm: a p-value of the family is NaN")
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def replicates_for_power(differences: list[float], alpha: float, power: float = 0.9, most: int = 10_000
                         ) -> int | None:
    """How many replicates a one-sided paired t-test at level `alpha` needs to detect mean(differences) > 0
    with probability `power`, if replicates spread as these do: the smallest n whose noncentral t
    (noncentrality mean / sd * sqrt(n), n - 1 degrees of freedom) passes the test's critical value with that
    probability. None if the mean is not above 0 or no n up to `most` is enough. An exact sign-flip test
    also needs 2^-n <= alpha."""
    n0 = len(differences)
    if n0 < 2:
        return None
    mean = sum(differences) / n0
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n0 - 1))
    if mean <= 0 or sd == 0:
        return None if mean <= 0 else 2
    effect = mean / sd
    for n in range(2, most + 1):
        if stats.nct.sf(stats.t.ppf(1 - alpha, n - 1), n - 1, effect * math.sqrt(n)) >= power:
            return n
    return None


def differs_from_zero(values: list[float]) -> float:
    """Two-sided one-sample t-test p-value against 0: is an arm's shift more than noise?"""
    if len(values) < 2:
        return float("nan")
    return float(stats.ttest_1samp(values, 0.0).pvalue)


def auc(positive: list[float], negative: list[float]) -> float:
    """Area under the ROC curve: P(a positive scores above a negative), ties counted half (Mann-Whitney U)."""
    return float(stats.mannwhitneyu(positive, negative).statistic) / (len(positive) * len(negative))


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation of two equally long lists (ties get their mean rank)."""
    return float(stats.spearmanr(a, b).statistic)


def rank_correlation_greater(a: list[float], b: list[float], draws: int = 100_000, seed: int = 0) -> float:
    """One-sided permutation p-value for Spearman's rho(a, b) > 0: the share of the orderings of b whose rho is at
    least the observed one (the observed counts), exact over all n! orderings up to n = 8; beyond, `draws` seeded
    random orderings with p = (1 + hits) / (1 + draws), as in `sign_flip_greater`."""
    ra, rb = stats.rankdata(a), stats.rankdata(b)
    n = len(ra)
    if n < 2:
        return float("nan")
    centred_a = ra - ra.mean()
    observed = float(centred_a @ (rb - rb.mean()))  # rho up to a positive factor that no ordering changes
    tie = 1e-9 * max(abs(observed), 1e-300)
    if n <= 8:
        orders = np.array(list(itertools.permutations(rb - rb.mean())))
        return float(((orders @ centred_a) >= observed - tie).mean())
    orders = np.random.default_rng(seed).random((draws, n)).argsort(axis=1)  # (draws, n) random orderings
    shuffled = (rb - rb.mean())[orders]
    hits = int(((shuffled @ centred_a) >= observed - tie).sum())
    return (1 + hits) / (1 + draws)
