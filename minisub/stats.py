"""Statistics over independent replicates, one convention for the whole project.

A replicate is one independently initialized model (a toy MLP seed, a GPT base). Every
confidence interval is the 95% t-interval of the mean, mean +- t(0.975, n-1) sd / sqrt(n),
and every test is a t-test over replicates (paired where two arms share their replicates).
scipy supplies the t distribution and the tests: a well-kept library beats a hand-written
incomplete-beta function here.
"""

import math

from scipy import stats


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
