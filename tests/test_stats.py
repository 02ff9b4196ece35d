"""minisub/stats.py's exact tests: the sign-flip p is a count over sign patterns, Holm is the
step-down adjustment, both checked against plain definitions on drawn inputs."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from minisub.stats import (EXACT_UP_TO, holm, rank_correlation_greater, replicates_for_power, sign_flip_greater,
                           spearman)


def drawn(n: int, seed: int, ties: bool) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, generator=g, dtype=torch.float64) + 0.3
    if ties:  # repeated magnitudes and zeros: the count must treat equal sums as hits
        values = torch.round(values * 2) / 2
    return values.tolist()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 10), seed=st.integers(0, 2**31 - 1), ties=st.booleans())
def test_the_sign_flip_p_is_the_share_of_sign_patterns_at_least_as_extreme(n, seed, ties):
    d = drawn(n, seed, ties)
    observed = math.fsum(d)
    hits = sum(math.fsum(s * abs(x) for s, x in zip(signs, d)) >= observed - 1e-9
               for signs in itertools.product((1, -1), repeat=n))
    assert sign_flip_greater(d) == hits / 2**n


@pytest.mark.parametrize("n", [1, 2, 6, 12, EXACT_UP_TO])
def test_the_smallest_sign_flip_p_with_n_replicates_is_two_to_the_minus_n(n):
    assert sign_flip_greater([0.5 + i for i in range(n)]) == 2.0**-n
    assert sign_flip_greater([-0.5 - i for i in range(n)]) == 1.0  # every pattern is at least as large


def test_beyond_the_exact_limit_the_p_is_seeded_monte_carlo_close_to_the_exact_one():
    d = drawn(EXACT_UP_TO + 2, seed=3, ties=False)
    first = sign_flip_greater(d, draws=20_000, seed=1)
    assert first == sign_flip_greater(d, draws=20_000, seed=1)  # a seed gives one answer
    assert first != sign_flip_greater(d, draws=20_000, seed=2)
    # the exact share, counted by halves: each half's 2^11 sums against the other's
    half = len(d) // 2
    left = torch.tensor([math.fsum(s * abs(x) for s, x in zip(signs, d[:half]))
                         for signs in itertools.product((1, -1), repeat=half)], dtype=torch.float64)
    right = torch.tensor([math.fsum(s * abs(x) for s, x in zip(signs, d[half:]))
                          for signs in itertools.product((1, -1), repeat=len(d) - half)], dtype=torch.float64)
    exact = ((left[:, None] + right[None, :]) >= math.fsum(d) - 1e-9).double().mean().item()
    assert first == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4)
    assert sign_flip_greater([1.0] * (EXACT_UP_TO + 1), draws=999) == 1 / 1000  # never below 1 / (1 + draws)


def reference_holm(pvalues: list[float]) -> list[float]:
    """Holm by its definition: hypothesis i's adjusted p is the largest, over the hypotheses
    at most as small as it in sorted order, of min(1, (m - rank + 1) p)."""
    m = len(pvalues)
    ranked = sorted(pvalues)
    return [max(min(1.0, (m - k) * ranked[k]) for k in range(m) if ranked[k] <= p) for p in pvalues]


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_holm_equals_its_definition_on_drawn_families(m, seed):
    g = torch.Generator().manual_seed(seed)
    pvalues = (torch.rand(m, generator=g, dtype=torch.float64) ** 3).tolist()
    assert holm(pvalues) == pytest.approx(reference_holm(pvalues), abs=1e-15)


def test_holm_on_a_hand_worked_family():
    # sorted 0.01, 0.03, 0.04: x3, x2, x1 = 0.03, 0.06, 0.04 -> kept monotone: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="NaN"):
        holm([0.1, float("nan")])


def spread(mean: float, sd: float, k: int = 10) -> list[float]:
    """2k values with exactly this mean and sample standard deviation."""
    a = sd * math.sqrt((2 * k - 1) / (2 * k))
    return [mean - a, mean + a] * k


@pytest.mark.parametrize("effect, alpha, power, n", [(1.0, 0.05, 0.8, 8), (0.5, 0.05, 0.8, 27), (0.5, 0.01, 0.9, 55)])
def test_replicates_for_power_matches_published_sample_sizes(effect, alpha, power, n):
    """One-sided one-sample t-test sample sizes, as G*Power and R's power.t.test give them."""
    assert replicates_for_power(spread(effect, 1.0), alpha, power) == n


@given(st.floats(0.3, 2.0), st.integers(0, 2**16))
def test_the_power_it_promises_is_what_a_simulation_finds(effect, seed):
    n = replicates_for_power(spread(effect, 1.0), 0.05, 0.8)
    samples = torch.randn(4000, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + effect
    t = samples.mean(1) / (samples.std(1) / math.sqrt(n))
    rejected = (t > scipy_stats.t.ppf(0.95, n - 1)).double().mean().item()
    assert rejected >= 0.8 - 0.03  # Monte Carlo error of 4,000 draws is about 0.006


def test_no_power_without_an_effect():
    assert replicates_for_power([-0.1, 0.2, -0.3], 0.01) is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=3, max_size=6), st.integers(0, 2**31))
def test_the_rank_correlation_p_is_the_share_of_orderings_at_least_as_correlated(a, seed):
    """Exact up to 8 values: the p-value equals a brute-force count over every ordering of b, with scipy's rho."""
    assume(len(set(a)) > 1)  # a constant list has no rank correlation
    b = list(np.random.default_rng(seed).normal(size=len(a)))
    observed = spearman(a, b)
    orders = list(itertools.permutations(b))
    count = sum(spearman(a, list(order)) >= observed - 1e-9 for order in orders)
    assert rank_correlation_greater(a, b) == pytest.approx(count / len(orders))


def test_the_rank_correlation_p_of_a_perfect_order_is_at_its_floor():
    n = 12  # beyond the exact range: p = (1 + hits) / (1 + draws), and no random ordering of 12 is perfect
    assert rank_correlation_greater(list(range(n)), list(range(n)), draws=5000) == pytest.approx(1 / 5001)
    assert rank_correlation_greater(list(range(6)), list(range(6))) == pytest.approx(1 / 720)
