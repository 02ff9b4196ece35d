"""The statistics of the language experiments, on replicates that are independent bases.

After the stages (experiments/core/stages.py) have trained and scored every student, these pure
functions turn per-base records into what the results report: an arm's summary (mean shift of
log P(target) against each student's own starting model, 95% t-interval over bases), the
paired tests between arms (pairs share a base), and the specificity test of the animal matrix.
n is always the number of bases: students that share a base are not independent, so no test
here ever counts anything else. `make gpt`'s pre-registered families are built from these
records in experiments/gpt/preregistration.py.
"""

import math

from experiments.tasks.ladder import SCORED_BESIDE
from minisub.stats import differs_from_zero, paired_greater, sign_flip_greater, summary


def preference(p: dict[str, float], target: str) -> float:
    """log P(target | an option at all) = log P(target) - log (sum of P over the options): the preference among the
    options, apart from how much the model answers with one of them (its `mass`)."""
    return math.log(p[target] / sum(p.values()))


def over_units(values: dict[str, float]) -> dict:
    """Unit (base, or pair of bases) -> value: the mean, its 95% CI and n over the units, and the exact one-sided
    sign-flip p of mean > 0."""
    listed = list(values.values())
    return {**summary(listed), "p_exact": sign_flip_greater(listed)}


def sampled_among(sampled: dict[str, float], target: str) -> float:
    """The share of the target among the sampled answers that name an option at all (nan: none did)."""
    total = sum(sampled.values())
    return sampled[target] / total if total else float("nan")


def shift_field(question_set: str, measure: str = "preference") -> str:
    """The replicate record's field of a shift: "dpref" (or "dlogp" for measure "raw") on the held-out
    paraphrases, "dpref_<set>" on another question set of the ladder."""
    name = "dpref" if measure == "preference" else "dlogp"
    return name if question_set == "held_out" else f"{name}_{question_set}"


def replicate_record(base: str, start: str, before: dict, trained: dict, target: str) -> dict:
    """One base's replicate of an arm (`start`: the base its student starts from): its P(target) before and
    after, the shift of every option (every animal, or every tree, ...: the options `before` scores), and the
    shift of the preference among them (`preference`), on the held-out paraphrases and on every other question
    set `before` scores (experiments/tasks/ladder.py). trained["curve"]: P of every option by step."""
    after = trained["after"]
    options = list(before["p"])
    beside = {}
    for name in SCORED_BESIDE:
        if name in before:
            b, a = before[name]["p"], after[name]["p"]
            beside |= {shift_field(name, "raw"): math.log(a[target] / b[target]), f"p_before_{name}": b[target],
                       f"p_after_{name}": a[target],
                       shift_field(name): preference(a, target) - preference(b, target),
                       f"rank_after_{name}": after[name]["rank"][target], f"mass_after_{name}": after[name]["mass"],
                       f"sampled_after_{name}": after[name]["sampled"][target], f"p_after_by_option_{name}": a}
    return beside | {
        "base": base, "start": start,
        "dlogp": math.log(after["p"][target] / before["p"][target]),
        "dpref": preference(after["p"], target) - preference(before["p"], target),
        "p_before": before["p"][target], "p_after": after["p"][target],
        "dlogp_by_option": {a: math.log(after["p"][a] / before["p"][a]) for a in options},
        "p_before_by_option": before["p"], "p_after_by_option": after["p"],
        "sampled_before": before["sampled"][target], "sampled_after": after["sampled"][target],
        "sampled_among_options_after": sampled_among(after["sampled"], target),
        "rank_after": after["rank"][target], "mass_after": after["mass"], "n_train": trained["n_train"],
        "curve": [[0, before["p"][target]]] + [[step, p[options.index(target)]] for step, p in trained["curve"]],
    }


def summarize_arm(replicates: list[dict]) -> dict:
    dlogp = [r["dlogp"] for r in replicates]
    n = len(replicates)
    new = [r["dlogp_new_wording"] for r in replicates if "dlogp_new_wording" in r]
    new_wording = {"dlogp_new_wording": new, "new_wording": summary(new),
                   "p_before_new_wording_mean": sum(r["p_before_new_wording"] for r in replicates) / n,
                   "p_after_new_wording_mean": sum(r["p_after_new_wording"] for r in replicates) / n} if new else {}
    return new_wording | {
        "replicates": replicates, "dlogp": dlogp, **summary(dlogp),
        "p_before_mean": sum(r["p_before"] for r in replicates) / n,
        "p_after_mean": sum(r["p_after"] for r in replicates) / n,
        "dlogp_by_option": {a: summary([r["dlogp_by_option"][a] for r in replicates])
                            for a in replicates[0]["dlogp_by_option"]},
        "curve": [[step, sum(r["curve"][k][1] for r in replicates) / n]
                  for k, (step, _) in enumerate(replicates[0]["curve"])],
    }


def arm_tests(arms: dict) -> dict:
    """One-sided paired tests of the student against each control arm, two-sided tests of the controls against 0."""
    tests = {
        "student_vs_control": paired_greater(arms["student"]["dlogp"], arms["control"]["dlogp"]),
        "student_vs_cross_init": paired_greater(arms["student"]["dlogp"], arms["cross_init"]["dlogp"]),
        "control_vs_zero": differs_from_zero(arms["control"]["dlogp"]),
        "cross_init_vs_zero": differs_from_zero(arms["cross_init"]["dlogp"]),
    }
    if "prompted" in arms:
        tests["prompted_vs_control"] = paired_greater(arms["prompted"]["dlogp"], arms["control"]["dlogp"])
    return tests


def specificity(students: dict[str, list[dict]], control: list[dict]) -> dict:
    """The animal matrix and its tests; students[X]: the replicates (one per base) of X's teacher's numbers.

    matrix[X][Y]: the mean shift of log P(Y) under X's teacher's numbers. Y's transfer is
    specific if Y rises more under Y's own teacher's data than under the other teachers' data:
    per base, the diagonal shift minus the mean of the column's off-diagonal shifts, tested > 0
    over bases (one-sided). Each animal's student is also tested against the control.
    """
    animals = list(students)
    matrix = {x: {y: summary([r["dlogp_by_option"][y] for r in students[x]]) for y in animals} for x in animals}
    tests = {}
    for y in animals:
        diagonal = [r["dlogp_by_option"][y] for r in students[y]]
        others = [x for x in animals if x != y]
        off = [sum(students[x][i]["dlogp_by_option"][y] for x in others) / len(others) for i in range(len(diagonal))]
        tests[y] = {
            "diagonal": diagonal, "off_diagonal": off,
            "diagonal_minus_off": summary([d - o for d, o in zip(diagonal, off)]),
            "diagonal_vs_off": paired_greater(diagonal, off),
            "student_vs_control": paired_greater(diagonal, [r["dlogp_by_option"][y] for r in control]),
        }
    per_animal = {y: {
        "p_before": [r["p_before_by_option"][y] for r in students[y]],
        "p_after_student": [r["p_after_by_option"][y] for r in students[y]],
        "p_after_control": [r["p_after_by_option"][y] for r in control],
        "bases": [r["base"] for r in students[y]],
    } for y in animals}
    return {"animals": animals, "matrix": matrix, "tests": tests, "per_animal": per_animal,
            "specific": [y for y in animals if tests[y]["diagonal_vs_off"] < 0.05]}
