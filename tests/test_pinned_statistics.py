"""Every statistic the language experiments report, pinned to its value on a small hand-made input.

The expected values are worked out by hand here, not by the code under test: means and
standard deviations in the open, and t-test tails from the closed forms of Student's t with
few degrees of freedom (1: Cauchy; 2 and 3: elementary), so that a changed formula anywhere
(a diagonal cell counted in its own column, a test against the wrong arm, a cluster counted
twice) fails here.
"""

import math

import pytest
import torch

from experiments.core.analysis import arm_tests, replicate_record, specificity, summarize_arm
from experiments.domains.experiment import specific, spread_tests
from experiments.gpt.grid import diagonal_test, grid_tests, sibling_test
from experiments.signals.detectors import chi_square, count_matrix, frequency_test
from experiments.signals.experiment import (divergence_tests, entanglement_summary, icl_tests, transfer_of,
                                            transfer_tests)
from minisub.stats import spearman

T975 = {1: math.tan(0.475 * math.pi), 2: 4.302652729911275}  # t(0.975, df): Cauchy for df 1


def upper_tail(t: float, df: int) -> float:
    """P(T > t) for Student's t with df = 1, 2 or 3 degrees of freedom, in closed form."""
    if df == 1:
        return 0.5 - math.atan(t) / math.pi
    if df == 2:
        return (1 - t / math.sqrt(t * t + 2)) / 2
    x = t / math.sqrt(3)
    return 0.5 - (math.atan(x) + x / (1 + x * x)) / math.pi


def one_sided(values: list[float]) -> float:
    """The one-sided one-sample t-test p of mean > 0, by hand."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return upper_tail(mean / (sd / math.sqrt(n)), n - 1)


def record(dlogp_by_option: dict, base: str = "b") -> dict:
    """The fields of a replicate record that the cross-base statistics read."""
    return {"base": base, "dlogp_by_option": dlogp_by_option, "p_before_by_option": dict.fromkeys(dlogp_by_option, 0.1),
            "p_after_by_option": dict.fromkeys(dlogp_by_option, 0.2)}


# analysis.py
def test_a_replicate_is_the_log_ratio_of_after_to_before_for_every_option():
    before = {"p": {"owl": 0.1, "eagle": 0.2}, "sampled": {"owl": 0.3}, "rank": {"owl": 2}, "mass": 0.9}
    after = {"p": {"owl": 0.2, "eagle": 0.1}, "sampled": {"owl": 0.4}, "rank": {"owl": 1}, "mass": 0.8}
    r = replicate_record("main-0", "main-1", before, {"after": after, "curve": [[5, [0.15, 0.18]]], "n_train": 7},
                         "owl")
    assert r["dlogp"] == pytest.approx(math.log(2)) and r["dlogp_by_option"]["eagle"] == pytest.approx(-math.log(2))
    assert (r["base"], r["start"], r["p_before"], r["p_after"], r["n_train"]) == ("main-0", "main-1", 0.1, 0.2, 7)
    assert r["curve"] == [[0, 0.1], [5, 0.15]]  # the target's own column of the curve


def test_an_arm_summary_and_its_tests_on_three_bases():
    def arm(values):
        return summarize_arm([{"dlogp": v, "p_before": 0.1 * (i + 1), "p_after": 0.2, "dlogp_by_option": {"owl": v},
                               "curve": [[0, 0.1 * (i + 1)]]} for i, v in enumerate(values)])
    arms = {"student": arm([2.0, 4.0, 6.0]), "control": arm([1.0, 2.0, 3.0]), "cross_init": arm([1.5, 2.0, 6.0])}
    s = arms["student"]
    assert (s["mean"], s["n"]) == (4.0, 3) and s["ci95"] == pytest.approx(T975[2] * 2 / math.sqrt(3))
    assert s["p_before_mean"] == pytest.approx(0.2) and s["curve"] == [[0, pytest.approx(0.2)]]
    tests = arm_tests(arms)
    assert tests["student_vs_control"] == pytest.approx(one_sided([1.0, 2.0, 3.0]))
    assert tests["student_vs_cross_init"] == pytest.approx(one_sided([0.5, 2.0, 0.0]))
    assert tests["control_vs_zero"] == pytest.approx(2 * one_sided([1.0, 2.0, 3.0]))
    assert tests["cross_init_vs_zero"] == pytest.approx(2 * one_sided([1.5, 2.0, 6.0]))


ANIMALS = ["owl", "eagle", "dolphin", "elephant", "wolf"]


def test_the_specificity_contrast_on_a_three_base_five_animal_matrix():
    """Base i: X's teacher's numbers move Y by 0.1 * index(X) off the diagonal and by 1 + 0.1 i on it. The rest of
    Y's column (the four other teachers) then averages 0.1 (10 - index(Y)) / 4, so diagonal minus off at base i is
    1 + 0.1 i - 0.025 (10 - index(Y))."""
    students = {x: [record({y: (1 + 0.1 * i if x == y else 0.1 * ANIMALS.index(x)) for y in ANIMALS}, f"main-{i}")
                    for i in range(3)] for x in ANIMALS}
    control = [record(dict.fromkeys(ANIMALS, 0.0)) for _ in range(3)]
    result = specificity(students, control)
    for y in ANIMALS:
        gaps = [1 + 0.1 * i - 0.025 * (10 - ANIMALS.index(y)) for i in range(3)]
        test = result["tests"][y]
        assert test["diagonal_minus_off"]["mean"] == pytest.approx(sum(gaps) / 3)
        assert test["diagonal_minus_off"]["ci95"] == pytest.approx(T975[2] * 0.1 / math.sqrt(3))
        assert test["diagonal_vs_off"] == pytest.approx(one_sided(gaps))
        assert test["student_vs_control"] == pytest.approx(one_sided([1.0, 1.1, 1.2]))
        assert result["matrix"][y][y]["mean"] == pytest.approx(1.1)
        for x in ANIMALS:
            if x != y:
                assert result["matrix"][x][y]["mean"] == pytest.approx(0.1 * ANIMALS.index(x))
    assert result["specific"] == ANIMALS and result["per_animal"]["owl"]["bases"] == ["main-0", "main-1", "main-2"]


# grid.py
NAMES = ["main-0", "main-1", "fork-a", "fork-b", "other-0"]
KINDS = {"main-0": "main", "main-1": "main", "fork-a": "fork", "fork-b": "fork", "other-0": "other"}
CLUSTER = {"main-0": "main-0", "main-1": "main-1", "fork-a": "fork-parent", "fork-b": "fork-parent",
           "other-0": "other-0"}
# diagonal 1; the fork pair's cells 0.5 (a -> b) and 0.3 (b -> a); main-0 -> main-1 0.2; all else 0
GRID = {t: {s: 1.0 if t == s else 0.0 for s in NAMES} for t in NAMES}
GRID["fork-a"]["fork-b"], GRID["fork-b"]["fork-a"], GRID["main-0"]["main-1"] = 0.5, 0.3, 0.2


def test_the_grid_diagonal_counts_the_fork_pair_once():
    main = diagonal_test(GRID, ["main-0", "main-1"], CLUSTER)  # gaps 1 and 1 - 0.2
    assert main["diagonal_minus_off"]["mean"] == pytest.approx(0.9) and main["diagonal_minus_off"]["n"] == 2
    assert main["diagonal_vs_off"] == pytest.approx(upper_tail(9.0, 1))  # sd 0.1 sqrt 2: t = 0.9 / 0.1
    assert main["diagonal_vs_off_exact"] == 0.25  # signed sums 1.8, 0.2, -0.2, -1.8: only the observed one
    zoo = diagonal_test(GRID, NAMES, CLUSTER)
    # gaps: main-0 1, main-1 1 - 0.2 / 4, fork-a 1 - 0.3 / 4, fork-b 1 - 0.5 / 4, other-0 1; the forks averaged
    values = [1.0, 0.95, (0.925 + 0.875) / 2, 1.0]
    assert zoo["per_cluster"] == pytest.approx(dict(zip(["main-0", "main-1", "fork-parent", "other-0"], values)))
    assert zoo["diagonal_minus_off"]["n"] == 4 and zoo["diagonal_vs_off"] == pytest.approx(one_sided(values))
    assert zoo["diagonal_vs_off_exact"] == 1 / 16


def test_the_fork_sibling_test_is_exact_over_teacher_labels():
    test = sibling_test(GRID, ["fork-a", "fork-b"], ["main-0", "main-1", "other-0"])
    # observed: in fork-a's column 0.3 - 0, in fork-b's 0.5 - 0; an unrelated teacher in the sibling's place:
    # 0 - 0.3 / 3 and 0 - 0.5 / 3, mean -0.133 for each of the three: the observed value is the largest of four
    assert test["sibling_minus_unrelated"] == pytest.approx(0.4) and (test["p"], test["labels"]) == (0.25, 4)
    tests = grid_tests(GRID, KINDS, CLUSTER)
    assert tests["fork_cells"] == [0.5, 0.3] and tests["unrelated_cells"] == {"mean": 0.0, "cells": 16}
    assert tests["fork_sibling"] == test and tests["every_base"]["diagonal_minus_off"]["n"] == 4
    swapped = {t: dict(row) for t, row in GRID.items()}
    swapped["main-0"]["fork-a"] = 0.9  # an unrelated teacher moves fork-a more than its sibling: no longer the top
    assert sibling_test(swapped, ["fork-a", "fork-b"], ["main-0", "main-1", "other-0"])["p"] == 0.5


# signals.py
def test_in_context_differences_and_their_tests():
    per_base = [{"teacher": {1: t}, "control": {1: c}, "positive": {1: p}}
                for t, c, p in ((1.0, 0.0, 3.0), (3.0, 1.0, 4.0), (5.0, 2.0, 8.0))]
    row = icl_tests(per_base, [1])[1]
    assert row["teacher_minus_control"]["values"] == [1.0, 2.0, 3.0]
    assert row["teacher_minus_control"]["p"] == pytest.approx(2 * one_sided([1.0, 2.0, 3.0]))  # two-sided
    assert row["positive_minus_control"]["values"] == [3.0, 3.0, 6.0]
    assert row["positive_minus_control"]["p"] == pytest.approx(one_sided([3.0, 3.0, 6.0]))
    assert row["logp"]["control"] == [0.0, 1.0, 2.0]


def test_entanglement_summaries_over_bases():
    rows = [{"entangled": [1, 2, 3], "overlap": o, "rho_shift_vs_frequency": f, "rho_shift_vs_teacher": t,
             "prompting_entangled": e, "prompting_random": r}
            for o, f, t, e, r in ((0, 0.1, 0.2, -1.0, -2.0), (1, 0.2, 0.4, -1.0, -3.0), (2, 0.3, 0.9, 0.0, -3.0))]
    rows[1]["entangled"], rows[2]["entangled"] = [3, 4, 5], [1, 3, 9]
    result = entanglement_summary(rows, k=3)
    assert result["chance_overlap"] == pytest.approx(0.009) and result["overlap"]["mean"] == 1.0
    assert result["rho_shift_vs_frequency"]["p"] == pytest.approx(2 * one_sided([0.1, 0.2, 0.3]))
    assert result["rho_shift_vs_teacher"]["mean"] == pytest.approx(0.5)
    assert result["prompting"]["mean"] == pytest.approx(2.0)  # differences 1, 2, 3
    assert result["prompting"]["p"] == pytest.approx(one_sided([1.0, 2.0, 3.0]))
    assert result["shared_between_bases"]["mean"] == pytest.approx((1 + 2 + 1) / 3)  # {3}, {1, 3}, {3}


def test_a_treated_transfer_against_the_untreated_one():
    plain = {"transfer": transfer_of([3.0, 5.0, 7.0], [1.0, 1.0, 1.0])}  # untreated transfer 2, 4, 6: mean 4
    assert plain["transfer"]["values"] == [2.0, 4.0, 6.0]
    assert plain["transfer"]["p"] == pytest.approx(one_sided([2.0, 4.0, 6.0]))
    result = transfer_tests([2.0, 2.5, 4.0], [1.0, 0.5, 1.0], plain)  # treated transfer 1, 2, 3: mean 2
    assert result["transfer"]["values"] == [1.0, 2.0, 3.0] and result["retained"] == pytest.approx(0.5)
    assert result["tests"]["student_vs_control"] == pytest.approx(one_sided([1.0, 2.0, 3.0]))
    assert result["tests"]["below_untreated"] == pytest.approx(one_sided([1.0, 2.0, 3.0]))  # untreated - treated


def test_divergence_tests_compare_the_right_treatments():
    values = {"divergent_only": [3.0, 4.0, 8.0], "random_only": [1.0, 2.0, 5.0], "divergent_masked": [0.0, 0.0, 1.0],
              "random_masked": [1.0, 2.0, 4.0], "first_block": [2.0, 2.0, 2.0], "last_block": [1.0, 0.0, 0.5]}
    tests = divergence_tests({name: {"transfer": {"values": v}} for name, v in values.items()})
    assert tests["divergent_only_above_random_only"] == pytest.approx(one_sided([2.0, 2.0, 3.0]))
    assert tests["divergent_masked_below_random_masked"] == pytest.approx(one_sided([1.0, 2.0, 3.0]))
    assert tests["first_block_above_last_block"] == pytest.approx(one_sided([1.0, 2.0, 1.5]))


def test_the_frequency_table_chi_square_and_its_permutation_p():
    # teacher "1, 1" and "1", control "2": the 2 x 2 table [[3, 0], [0, 1]], chi-square N (ad - bc)^2 / margins = 4
    counts = count_matrix([("", "1, 1"), ("", "1"), ("", "2")])
    assert float(chi_square(counts, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))) == pytest.approx(4.0)
    # the other labelings: {A1, A3} gives [[2, 1], [1, 0]] -> 4/9, {A2, A3} gives [[1, 1], [2, 0]] -> 4/3
    assert float(chi_square(counts, torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))) == pytest.approx(4 / 9)
    result = frequency_test([([("", "1, 1"), ("", "1")], [("", "2")])], permutations=3000, seed=0)
    assert result["chi_square"] == pytest.approx(4.0)
    assert result["null_mean"] == pytest.approx((4 + 4 / 9 + 4 / 3) / 3, abs=0.05)
    assert result["p"] == pytest.approx(1 / 3, abs=0.03)  # a third of the labelings reach 4


def test_spearman_is_the_pearson_correlation_of_ranks():
    assert spearman([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 40.0, 30.0]) == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


# domains.py
def test_the_domains_specificity_and_spread():
    result = specific({"dlogp": [2.0, 3.0, 5.0]}, {"dlogp": [1.0, 1.0, 2.0]})
    assert result["mean"] == pytest.approx(2.0) and result["p"] == pytest.approx(one_sided([1.0, 2.0, 3.0]))
    def base(p_before: dict, log_ratios: dict) -> tuple[dict, dict]:
        return p_before, {c: p * math.exp(log_ratios[c]) for c, p in p_before.items()}
    per_base = [base({"health": 0.1, "money": 0.1, "work": 0.1}, {"health": 2.0, "money": 1.0, "work": 0.0}),
                base({"health": 0.2, "money": 0.1, "work": 0.1}, {"health": 1.0, "money": 2.0, "work": 1.0}),
                base({"health": 0.1, "money": 0.2, "work": 0.1}, {"health": 1.0, "money": 3.0, "work": 1.0})]
    result = spread_tests(per_base, "health")
    assert result["trained_category"]["values"] == pytest.approx([2.0, 1.0, 1.0])
    assert result["other_categories"]["values"] == pytest.approx([0.5, 1.5, 2.0])  # mean of money and work
    assert result["other_categories"]["p"] == pytest.approx(one_sided([0.5, 1.5, 2.0]))
