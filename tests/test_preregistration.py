"""make gpt's pre-registered families on hand-worked inputs: H2 subtracts the control of the base a
cross-init student starts from, Holm adjusts within each family, and the primary family is the
fixed variant's whatever the others show."""

import pytest

from experiments.gpt.preregistration import (ALPHA, PRIMARY_VARIANT, against_start_control, confirmatory, family,
                                             paired_test, variant_tests)

BASES = ["main-0", "main-1", "main-2"]


def arm(dlogp: list[float], starts: list[str] | None = None, new_wording: list[float] | None = None) -> dict:
    """An arm's summary as make gpt keeps it; the shifts on the new-wording questions default to the held-out ones."""
    starts, new_wording = starts or BASES, new_wording or dlogp
    replicates = [{"base": b, "start": s, "dlogp": d, "dlogp_new_wording": w}
                  for b, s, d, w in zip(BASES, starts, dlogp, new_wording)]
    return {"dlogp": dlogp, "dlogp_new_wording": new_wording, "replicates": replicates}


def arms(student, control, cross, neutral=(0.0, 0.0, 0.0)) -> dict:
    return {"student": arm(student), "control": arm(control), "cross_init": arm(cross, BASES[1:] + BASES[:1]),
            "neutral": arm(list(neutral))}


def test_h2_subtracts_the_control_of_the_base_the_cross_init_student_starts_from():
    # main-1 drifts toward the target under any numbers (its control +0.3); the cross-init student that
    # starts from main-1 (base main-0's replicate) inherits that drift, and H2 takes it out
    a = arms(student=[0.5, 0.4, 0.6], control=[0.0, 0.3, 0.0], cross=[0.35, 0.05, 0.02])
    assert against_start_control(a["cross_init"]["replicates"], a["control"]["replicates"]) == pytest.approx(
        [0.05, 0.05, 0.02])
    tests = variant_tests(a)
    assert tests["H2"]["difference"]["values"] == pytest.approx([0.45, 0.35, 0.58])
    assert tests["H2"]["p_exact"] == pytest.approx(1 / 8)  # all three positive: the floor 2^-3
    assert tests["H1"]["difference"]["values"] == pytest.approx([0.5, 0.1, 0.6])


def test_the_primary_family_is_measured_on_the_new_wording_and_the_held_out_one_beside_it():
    a = arms(student=[0.5, 0.4, 0.6], control=[0.0, 0.0, 0.0], cross=[0.0, 0.0, 0.0])
    a["student"] = arm([0.5, 0.4, 0.6], new_wording=[0.2, -0.1, 0.3])
    animals = {"tests": {"owl": {"diagonal": [0.3, 0.2, 0.4], "off_diagonal": [0.0, 0.1, 0.0]}}}
    matched = {"matched": {"dlogp": [0.2, 0.3, 0.1]}, "matched_control": {"dlogp": [0.0, 0.0, 0.0]}}
    families = confirmatory({PRIMARY_VARIANT: a}, animals, matched)
    assert families["primary"]["H1"]["difference"]["values"] == pytest.approx([0.2, -0.1, 0.3])
    assert families["held_out"]["H1"]["difference"]["values"] == pytest.approx([0.5, 0.4, 0.6])
    assert families["primary"]["H1"]["p_exact"] == pytest.approx(2 / 8)  # (+ + +) and (+ - +) reach 0.4


def test_a_paired_test_gives_the_exact_p_the_t_test_p_and_the_difference():
    test = paired_test([1.0, 2.0, -0.5, 3.0], [0.0, 0.0, 0.0, 0.0])
    # sign patterns of (1, 2, 0.5, 3) with a sum >= 5.5: of 16, the observed and (1, 2, 0.5, 3) all positive
    assert test["p_exact"] == pytest.approx(2 / 16)
    assert test["difference"]["mean"] == pytest.approx(5.5 / 4) and test["difference"]["n"] == 4
    assert 0 < test["p_t"] < 0.2


def test_a_family_is_holm_adjusted_over_its_exact_p_values():
    tests = {"a": {"p_exact": 0.004}, "b": {"p_exact": 0.02}, "c": {"p_exact": 0.001}}
    adjusted = family(tests)
    assert adjusted["c"]["p_holm"] == pytest.approx(0.003) and adjusted["a"]["p_holm"] == pytest.approx(0.008)
    assert adjusted["b"]["p_holm"] == pytest.approx(0.02)
    assert [adjusted[k]["rejects"] for k in "abc"] == [True, False, True] and ALPHA == 0.01


def test_the_primary_family_is_the_fixed_variants_whatever_the_others_show():
    strong = arms(student=[0.9, 0.8, 0.7], control=[0.0, 0.0, 0.0], cross=[0.0, 0.0, 0.0])
    weak = arms(student=[0.1, -0.1, 0.0], control=[0.0, 0.0, 0.0], cross=[0.0, 0.0, 0.0])
    animals = {"tests": {"owl": {"diagonal": [0.3, 0.2, 0.4], "off_diagonal": [0.0, 0.1, 0.0]}}}
    matched = {"matched": {"dlogp": [0.2, 0.3, 0.1]}, "matched_control": {"dlogp": [0.0, 0.0, 0.0]}}
    families = confirmatory({"soft_full": strong, PRIMARY_VARIANT: weak}, animals, matched)
    assert families["primary"]["H1"]["difference"]["values"] == pytest.approx([0.1, -0.1, 0.0])
    assert set(families["variants"]) == {"soft_full H1", "soft_full H2"}
    assert families["animals"]["owl"]["difference"]["values"] == pytest.approx([0.3, 0.1, 0.4])
    assert families["neutral"]["hard_full student > neutral"]["difference"]["values"] == pytest.approx([0.1, -0.1, 0.0])
    assert set(families["neutral"]) == {"hard_full student > neutral", "soft_full student > neutral"}
    assert set(families) == {"primary", "held_out", "variants", "neutral", "animals", "matched"}  # no prompted family
