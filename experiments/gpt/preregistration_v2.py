"""Pre-registration v2 of `make gpt`, fixed in code before the first run that uses it; v1 (preregistration.py)
stays as it was, and its families are still computed and reported.

Why a v2. v1's primary measure, raw log P(target) on the new-wording questions, did not reject at
seeds 0 and 1, and the ladder (experiments/gpt/ladder.py) found why after the data: raw log P also
moves with how much a model answers with an animal at all, and on that measure the teacher's own
shift is not clear either. v2 was shaped after seeing seeds 0 and 1, so it is confirmed only on
seeds no earlier run has used: `SEEDS`, named here before they ran. On every other seed its tests
are computed the same way and labelled exploratory.

- Measure: the preference among animals, log P(target | an animal) (experiments/core/analysis.py,
  `preference`), of the primary variant's students (hard labels, full fine-tuning), each against
  its own starting base.
- Manipulation check first: on each rung, the target teacher's shift against its base, > 0 over
  bases (exact one-sided sign-flip) at ALPHA. A test on a rung whose check fails is not run.
- Primary: one fixed sequence at family-wise ALPHA, each test at the full ALPHA and run only if
  every earlier one rejected (fixed-sequence gatekeeping, which keeps the family-wise error at
  ALPHA without splitting it):
    1. held_out H1, 2. held_out H2, 3. held_out graded dose,
    4. held_out_stems H1, 5. held_out_stems H2, 6. new_wording H1, 7. new_wording H2.
  Why this order: outward along the ladder, nearest first. The held-out paraphrases (b) are the
  rung where transfer was seen; the dose test follows there, before going outward, since a
  transfer that grows with the teacher's trait is the trait's, not the numbers'; held-out stems (c)
  keep the corpus's words and change the question; the new wording (d) changes the words too.
  We expect c to pass (the farthest rung we expect to) and d's effect to be small (seed 0's
  ratio was 0.07). Rungs a (the teacher's own questions) and e (after numbers) are measured
  beside, exploratory: a is no farther than b, and e changes the context, not the distance.
- H1: student - control, paired by base (n = bases).
- H2 on independent units: the bases in disjoint pairs (0, 1), (2, 3), ...; per pair (a, b),
  (student_a - cross_b->a) + (student_b - cross_a->b), where cross_b->a is base a's student of base
  b's teacher's numbers. Both terms of a base start from it, so its own drift cancels without a
  control, and no base enters two pairs (v1's H2 shared each base between two replicates).
- Dose: per base, the teachers of graded strength (ladder.py, `graded_dose`): Spearman's rho of
  the teacher's shift with student - control over the doses; rho > 0 over bases.
- Why ALPHA 0.05 and not v1's 0.01: with 12 bases, H2 has 6 pairs, and the exact one-sided
  sign-flip p cannot go below 1/64 = 0.016: at 0.01 it could never reject.
- Secondary: none is confirmatory. Rungs a and e, raw log P, the across-bases dose correlation
  and v1's families are exploratory.
Every test is the exact one-sided sign-flip test over its units.
"""

from experiments.core.analysis import over_units, shift_field

ALPHA = 0.05
SEEDS = (2,)  # the confirmatory seeds, named before any run on them
SEQUENCE = (("held_out", "H1"), ("held_out", "H2"), ("held_out", "dose"), ("held_out_stems", "H1"),
            ("held_out_stems", "H2"), ("new_wording", "H1"), ("new_wording", "H2"))
PREREGISTERED_V2 = {
    "measure": "the preference among animals, log P(target | an animal), of the primary variant's students",
    "alpha": ALPHA, "sided": "greater", "test": "exact sign-flip permutation over the units",
    "manipulation_check": "per rung: the target teacher's shift against its base > 0 over bases",
    "sequence": [f"{rung} {test}" for rung, test in SEQUENCE],
    "H1": "student - control, per base",
    "H2": "per disjoint pair of bases (a, b): (student_a - cross_b->a) + (student_b - cross_a->b)",
    "dose": "per base, Spearman's rho of the graded teachers' shifts with their students' - control",
    "seeds": list(SEEDS),
    "exploratory": "rungs own and after_numbers, raw log P, the across-bases dose correlation, v1's families",
}


def h1(arms: dict, rung: str) -> dict[str, float]:
    field = shift_field(rung)
    control = {r["base"]: r[field] for r in arms["control"]["replicates"]}
    return {r["base"]: r[field] - control[r["base"]] for r in arms["student"]["replicates"]}


def h2_pairs(arms: dict, rung: str) -> dict[str, float]:
    """Per disjoint pair "a+b": (student_a - cross_b->a) + (student_b - cross_a->b); cross_pair's replicate of
    base b is base b's teacher's numbers learned from b's partner a."""
    field = shift_field(rung)
    student = {r["base"]: r[field] for r in arms["student"]["replicates"]}
    into = {r["start"]: r[field] for r in arms["cross_pair"]["replicates"]}  # start base -> its cross student
    partner = {r["base"]: r["start"] for r in arms["cross_pair"]["replicates"]}
    pairs = {}
    for a, b in partner.items():
        if partner.get(b) == a and a < b:
            pairs[f"{a}+{b}"] = (student[a] - into[a]) + (student[b] - into[b])
    return pairs


def confirmatory_v2(seed: int, arms: dict, ladder: dict, dose: dict) -> dict:
    """The v2 sequence from make gpt's records: arms, the primary variant's (with cross_pair); ladder and dose,
    experiments/gpt/ladder.py's. Each step records whether it ran, and why not."""
    checks = {rung: {**r["teacher"], "passes": r["teacher"]["p_exact"] <= ALPHA} for rung, r in ladder.items()}
    steps, open_ = [], True
    for rung, name in SEQUENCE:
        values = {"H1": lambda: h1(arms, rung), "H2": lambda: h2_pairs(arms, rung),
                  "dose": lambda: dose["rungs"][rung]["rho"]["per_base"]}[name]()
        record = {"rung": rung, "test": name, "values": values, **over_units(values)}
        reason = None if open_ else "an earlier test did not reject"
        if reason is None and not checks[rung]["passes"]:
            reason = f"the teacher's shift on {rung} did not pass its manipulation check"
        record |= {"tested": reason is None, "rejects": reason is None and record["p_exact"] <= ALPHA,
                   "not_tested_because": reason}
        open_ = record["rejects"]
        steps.append(record)
    return {"confirmation": seed in SEEDS, "seed": seed, "alpha": ALPHA, "manipulation_checks": checks,
            "sequence": steps}
