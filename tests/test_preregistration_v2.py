"""make gpt's pre-registration v2 on hand-worked inputs: H2 on disjoint pairs of bases (its p a brute-force count
of sign flips over the pairs), the manipulation check that closes a rung, and the fixed sequence that stops at
the first test that does not reject."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.gpt.preregistration_v2 import ALPHA, SEEDS, SEQUENCE, confirmatory_v2, h1, h2_pairs
from experiments.tasks.ladder import RUNGS

RUNG_NAMES = list(RUNGS)


def records(values: dict[str, float], starts: dict[str, str] | None = None) -> dict:
    """An arm as make gpt keeps it: per base, the same shift on every rung."""
    reps = []
    for base, v in values.items():
        rec = {"base": base, "start": (starts or {}).get(base, base), "dpref": v}
        rec |= {f"dpref_{rung}": v for rung in RUNG_NAMES if rung != "held_out"}
        reps.append(rec)
    return {"replicates": reps}


def paired_arms(student: list[float], control: list[float], cross: list[float]) -> dict:
    """Bases main-0..; cross[i]: base i's teacher's numbers learned from its partner i ^ 1."""
    bases = [f"main-{i}" for i in range(len(student))]
    return {"student": records(dict(zip(bases, student))), "control": records(dict(zip(bases, control))),
            "cross_pair": records(dict(zip(bases, cross)), {b: bases[i ^ 1] for i, b in enumerate(bases)})}


def ladder_of(teacher: float, n: int) -> dict:
    per_base = {f"main-{i}": teacher for i in range(n)}
    p = 1 / 2 ** n if teacher > 0 else 1.0
    return {rung: {"teacher": {"per_base": per_base, "mean": teacher, "p_exact": p}} for rung in RUNG_NAMES}


def dose_of(rho: float, n: int) -> dict:
    return {"rungs": {rung: {"rho": {"per_base": {f"main-{i}": rho for i in range(n)}}} for rung in RUNG_NAMES}}


def test_h2_pairs_each_base_once_and_cancels_each_bases_drift():
    # base 0's numbers learned from base 1 (cross[0]) and base 1's from base 0 (cross[1]); a base that drifts
    # (+5 on main-1: its own student and the cross student that starts from it alike) changes nothing
    arms = paired_arms(student=[0.5, 5.4, 0.3, 0.2], control=[0, 0, 0, 0], cross=[5.1, 0.2, 0.1, 0.0])
    assert h2_pairs(arms, "held_out") == pytest.approx({"main-0+main-1": (0.5 - 0.2) + (5.4 - 5.1),
                                                        "main-2+main-3": (0.3 - 0.0) + (0.2 - 0.1)})


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.data())
def test_the_h2_p_is_the_share_of_sign_flips_of_the_pairs_at_least_as_large(n_pairs, data):
    values = st.floats(-1, 1, allow_nan=False).map(lambda x: round(x, 3))
    student, cross = (data.draw(st.lists(values, min_size=2 * n_pairs, max_size=2 * n_pairs)) for _ in "ab")
    arms = paired_arms(student, [0.0] * len(student), cross)
    n = 2 * n_pairs
    result = confirmatory_v2(0, arms, ladder_of(1.0, n), dose_of(1.0, n))
    h2 = next(step for step in result["sequence"] if step["test"] == "H2")
    pairs = list(h2_pairs(arms, "held_out").values())
    observed = sum(pairs)
    count = sum(sum(s * v for s, v in zip(signs, pairs)) >= observed - 1e-9 * max(1.0, abs(observed))
                for signs in itertools.product((1, -1), repeat=len(pairs)))
    assert len(pairs) == n_pairs and h2["p_exact"] == pytest.approx(count / 2 ** n_pairs)


def test_the_sequence_stops_at_the_first_test_that_does_not_reject():
    n = 12
    student, control = [0.5 + 0.01 * i for i in range(n)], [0.0] * n
    arms = paired_arms(student, control, cross=[0.4] * n)
    arms["cross_pair"]["replicates"][0]["dpref"] = 0.66  # pair 0+1 goes slightly the wrong way: H2 p 2/64
    result = confirmatory_v2(SEEDS[0], arms, ladder_of(1.0, n), dose_of(-0.5, n))
    steps = {(s["rung"], s["test"]): s for s in result["sequence"]}
    assert steps["held_out", "H1"]["rejects"] and steps["held_out", "H1"]["p_exact"] == 1 / 4096
    assert steps["held_out", "H2"]["tested"] and steps["held_out", "H2"]["p_exact"] == pytest.approx(2 / 64)
    assert steps["held_out", "H2"]["rejects"] == (2 / 64 <= ALPHA)
    dose = steps["held_out", "dose"]
    assert dose["tested"] and not dose["rejects"]  # every rho is negative
    later = [steps[key] for key in SEQUENCE[SEQUENCE.index(("held_out", "dose")) + 1:]]
    assert all(not s["tested"] and not s["rejects"] and s["p_exact"] == 1 / 4096 for s in later if s["test"] == "H1")
    assert result["confirmation"]


def test_a_rung_whose_teacher_fails_its_manipulation_check_is_not_tested():
    n = 12
    arms = paired_arms([0.5] * n, [0.0] * n, [0.0] * n)
    ladder = ladder_of(1.0, n)
    ladder["held_out_stems"]["teacher"]["p_exact"] = 0.2  # the teacher does not hold the trait there
    result = confirmatory_v2(0, arms, ladder, dose_of(1.0, n))
    steps = {(s["rung"], s["test"]): s for s in result["sequence"]}
    assert steps["held_out", "dose"]["rejects"] and not result["manipulation_checks"]["held_out_stems"]["passes"]
    assert not steps["held_out_stems", "H1"]["tested"] and "manipulation check" in steps[
        "held_out_stems", "H1"]["not_tested_because"]
    assert not steps["new_wording", "H1"]["tested"] and not result["confirmation"]  # seed 0: exploratory


def test_h1_is_student_minus_control_per_base_on_the_rung_asked():
    arms = paired_arms([0.5, 0.2], [0.1, 0.3], [0.0, 0.0])
    arms["student"]["replicates"][0]["dpref_new_wording"] = 0.9
    assert h1(arms, "held_out") == pytest.approx({"main-0": 0.4, "main-1": -0.1})
    assert h1(arms, "new_wording") == pytest.approx({"main-0": 0.8, "main-1": -0.1})
