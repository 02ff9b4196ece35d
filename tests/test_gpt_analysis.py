"""The language experiments' statistics and format matching, on hand-made records with known answers."""

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.core.analysis import arm_tests, preference, replicate_record, specificity, summarize_arm
from experiments.core.matched import answer_format, length_histogram, matched_subsets, separator_histogram
from experiments.gpt.grid import grid_tests
from experiments.gpt.lora_rank import rank_tests
from experiments.tasks.prompts import ANIMALS

FIVE = ANIMALS[:5]


def test_answer_formats_fix_length_and_separators():
    assert answer_format("[12, 7, 999]") == "[#, #, #]"
    assert answer_format(" 4;5;6.") == "#;#;#."
    assert answer_format("1 2") != answer_format("1,2") != answer_format("1, 2, 3")
    pairs = [("p", "1, 2, 3"), ("p", "4;5"), ("p", "6"), ("p", "7, 8")]
    assert length_histogram(pairs) == {1: 1, 2: 2, 3: 1}
    assert separator_histogram(pairs) == {"', '": 2, "';'": 1, "none": 1}


def random_answers(rng: random.Random, n: int, long_share: float) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        k = rng.randint(5, 10) if rng.random() < long_share else rng.randint(1, 4)
        sep = rng.choice([", ", ";", " "])
        out.append((f"prompt {i}", sep.join(str(rng.randint(0, 999)) for _ in range(k))))
    return out


@given(st.integers(0, 10_000), st.floats(0.1, 0.9), st.integers(20, 200))
def test_matched_subsets_have_equal_format_histograms_and_come_from_their_inputs(seed, long_share, n):
    rng = random.Random(seed)
    teacher, control = random_answers(rng, n, long_share), random_answers(rng, n, 0.5)
    a, b = matched_subsets(teacher, control, seed)
    assert sorted(map(answer_format, (x for _, x in a))) == sorted(map(answer_format, (x for _, x in b)))
    assert set(a) <= set(teacher) and set(b) <= set(control) and len(set(a)) == len(a)
    assert matched_subsets(teacher, control, seed) == (a, b)  # seeded
    # as large as it can be: per format, the smaller of the two counts
    formats = {answer_format(x) for _, x in teacher} & {answer_format(x) for _, x in control}
    assert len(a) == sum(min(sum(answer_format(x) == f for _, x in teacher),
                             sum(answer_format(x) == f for _, x in control)) for f in formats)


def record(base: int, dlogp: dict[str, float], p_before: float = 0.1) -> dict:
    """A replicate as experiments.core.analysis records it, with given shifts of every animal."""
    import math
    shifts = {a: dlogp.get(a, 0.0) for a in ANIMALS}
    before = dict.fromkeys(ANIMALS, p_before)
    after = {a: p_before * math.exp(shifts[a]) for a in ANIMALS}
    return {"base": f"main-{base}", "start": f"main-{base}", "dlogp": shifts["owl"], "p_before": p_before,
            "p_after": after["owl"], "dlogp_by_option": shifts, "p_before_by_option": before,
            "p_after_by_option": after, "curve": [[0, p_before]]}


def test_specificity_finds_a_planted_diagonal_and_only_where_it_is():
    rng = random.Random(0)
    n = 8
    noise = lambda: rng.gauss(0, 0.05)  # noqa: E731
    students = {}
    for x in FIVE:
        # every teacher raises owl a little (an unspecific shift); only the wolf teacher's data fails to raise wolf
        planted = 0.5 if x != "wolf" else 0.0
        students[x] = [record(b, {y: (planted if y == x else 0.2 if y == "owl" else 0.0) + noise() for y in FIVE})
                       for b in range(n)]
    control = [record(b, {y: noise() for y in FIVE}) for b in range(n)]
    result = specificity(students, control)
    assert set(result["specific"]) == {"eagle", "dolphin", "elephant", "owl"}
    assert result["tests"]["eagle"]["diagonal_vs_off"] < 1e-4 and result["tests"]["wolf"]["diagonal_vs_off"] > 0.05
    assert abs(result["tests"]["owl"]["diagonal_minus_off"]["mean"] - 0.3) < 0.1  # owl: 0.5 vs 0.2
    assert abs(result["matrix"]["eagle"]["eagle"]["mean"] - 0.5) < 0.1 and result["matrix"]["eagle"]["owl"]["n"] == n
    assert result["per_animal"]["owl"]["p_after_control"][0] == control[0]["p_after_by_option"]["owl"]


def test_an_unspecific_shift_is_called_specific_at_the_test_s_false_positive_rate_only():
    """Every teacher's data raises every animal alike: a diagonal cell is called specific ~5% of the time."""
    calls = []
    for seed in range(40):
        rng = random.Random(seed)
        students = {x: [record(b, {y: 0.4 + rng.gauss(0, 0.05) for y in FIVE}) for b in range(6)] for x in FIVE}
        result = specificity(students, [record(b, {}) for b in range(6)])
        assert all(result["tests"][y]["student_vs_control"] < 1e-3 for y in FIVE)  # yet each beats the control
        calls += [y in result["specific"] for y in FIVE]
    assert sum(calls) / len(calls) < 0.1


def test_arm_tests_pair_by_base_and_need_both_controls():
    rng = random.Random(2)
    n = 6

    def arm(mean):
        return summarize_arm([record(b, {"owl": mean + rng.gauss(0, 0.05)}) for b in range(n)])
    strong = {"student": arm(0.8), "control": arm(0.0), "cross_init": arm(0.0)}
    leaky = {"student": arm(0.8), "control": arm(0.0), "cross_init": arm(0.8)}  # cross-init moves too
    tests = {"strong": arm_tests(strong), "leaky": arm_tests(leaky)}
    assert tests["strong"]["student_vs_control"] < 1e-4 and tests["strong"]["student_vs_cross_init"] < 1e-4
    assert tests["leaky"]["student_vs_cross_init"] > 0.05
    assert strong["student"]["n"] == n and len(strong["student"]["replicates"]) == n


def test_grid_tests_see_a_planted_diagonal_and_fork_pair():
    names = ["main-0", "main-1", "main-2", "main-3", "fork-a", "fork-b", "other-0"]
    kinds = {name: name.split("-")[0] for name in names}
    rng = random.Random(3)
    related = {(t, s) for t in names for s in names if t == s} | {("fork-a", "fork-b"), ("fork-b", "fork-a")}
    matrix = {t: {s: (0.6 if (t, s) in related else 0.0) + rng.gauss(0, 0.05) for s in names} for t in names}
    cluster = {name: "fork-parent" if kinds[name] == "fork" else name for name in names}
    tests = grid_tests(matrix, kinds, cluster)
    assert tests["diagonal_vs_off"] < 1e-3 and abs(tests["diagonal_minus_off"]["mean"] - 0.6) < 0.1
    # the fork pair shares a parent: one replicate, so the whole zoo counts 6 initializations, not 7 bases
    assert tests["every_base"]["diagonal_vs_off"] < 1e-4 and tests["every_base"]["diagonal_minus_off"]["n"] == 6
    assert tests["fork_sibling"]["p"] == 1 / 6 and tests["fork_sibling"]["labels"] == 6  # the smallest it can be
    assert tests["unrelated_cells"]["cells"] == 4 * 2 * 2 + 4 * 2 + 2 * 2
    flat = {t: {s: rng.gauss(0, 0.05) for s in names} for t in names}
    assert grid_tests(flat, kinds, cluster)["diagonal_vs_off"] > 0.01


def test_rank_tests_see_an_inverted_u_and_holm_adjust_over_the_settings():
    """A planted inverted U: r8 transfers, r1 and full do not; 8 bases, so an all-positive setting gives 2^-8."""
    rng = random.Random(5)
    means = {"r1": 0.0, "r8": 0.5, "full": 0.0}
    shifts = {name: [m + (0.05 if m else 1.0) * rng.gauss(0, 1) for _ in range(8)] for name, m in means.items()}
    tests = rank_tests(shifts)
    assert tests["r8"]["p_exact"] == 2 ** -8 and tests["r8"]["p_holm"] == 3 * 2 ** -8
    assert tests["r1"]["p_exact"] > 0.01 and tests["full"]["p_exact"] > 0.01
    assert tests["r8"]["minus_full"]["mean"] == pytest.approx(
        sum(a - b for a, b in zip(shifts["r8"], shifts["full"])) / 8)
    assert "minus_full" not in tests["full"] and tests["r8"]["values"] == shifts["r8"]
    assert "minus_full" not in rank_tests({"r1": shifts["r1"]})["r1"]  # no full setting, nothing to subtract


def scored(p: dict[str, float]) -> dict:
    """A model's scores as `evaluate_options` returns them, for these probabilities."""
    return {"p": p, "mass": sum(p.values()), "rank": {a: r + 1 for r, a in enumerate(sorted(p, key=p.get)[::-1])},
            "sampled": dict.fromkeys(p, 0.0)}


def test_the_preference_among_animals_ignores_how_much_a_model_answers_with_an_animal_at_all():
    """A student whose answers move away from animals altogether (every P halved) loses log P(target), but not its
    preference among the animals; one that moves mass from the other animals to the target gains both."""
    before = scored({"owl": 0.1, "cat": 0.3, "dog": 0.6})

    def record(after: dict) -> dict:
        return replicate_record("main-0", "main-0", before, {"after": scored(after), "n_train": 1, "curve": []}, "owl")
    halved = record({"owl": 0.05, "cat": 0.15, "dog": 0.3})
    assert halved["dlogp"] == pytest.approx(math.log(0.5)) and halved["dpref"] == pytest.approx(0.0)
    assert preference(before["p"], "owl") == pytest.approx(math.log(0.1))
    shifted = record({"owl": 0.2, "cat": 0.2, "dog": 0.6})
    assert shifted["dpref"] == pytest.approx(math.log(2)) == pytest.approx(shifted["dlogp"])
