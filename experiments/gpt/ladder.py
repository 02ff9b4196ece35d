"""What transfers: the teacher's trait and the student's transfer on each question set, on two measures.

Read after make gpt's arms (experiments/gpt/experiment.py), for its primary variant and target. The
question sets are rungs of a ladder from the teacher's own questions outward; the two scored today
are the held-out paraphrases of the corpus's question forms (b) and questions in wording the
corpus never uses (d). Per rung and per base:
- `teacher`: the teacher's shift against its base: the manipulation check. A student's null on a
  rung where the teacher does not hold the trait is not a finding;
- `student_minus_control`, `student_minus_neutral`, and `student_minus_cross_init` (the cross-init
  student's shift net of the control of the base it starts from, as make gpt's H2);
- `ratio`: (student - control) / (teacher - base), the share of the teacher's shift that reaches
  the student;
- `dose`: across bases, Spearman's rho of the teacher's shift with student - control, and its
  one-sided permutation p.
Each on the preference among animals, log P(target | an animal) (`preference`), and under `raw` on
log P(target), which also moves with how much a model answers with an animal at all. Each figure
is {"per_base", "mean", "ci95", "p_exact"}: the exact one-sided sign-flip test over bases.
Exploratory: nothing here is pre-registered.
"""

import math

from experiments.core.analysis import preference
from experiments.core.specs import BaseSpec
from experiments.core.stages import Stages
from experiments.core.zoo import ExperimentConfig
from minisub.stats import rank_correlation_greater, sign_flip_greater, spearman, summary

RUNGS = {"held_out": "b", "new_wording": "d"}  # question set -> its distance from the teacher's own questions
FIELDS = {"preference": {"held_out": "dpref", "new_wording": "dpref_new_wording"},  # the replicate records' shifts
          "raw": {"held_out": "dlogp", "new_wording": "dlogp_new_wording"}}


def across_bases(values: dict[str, float]) -> dict:
    """A per-base figure, its mean and 95% CI over bases, and its exact one-sided p (> 0)."""
    listed = list(values.values())
    return {"per_base": values, **summary(listed), "p_exact": sign_flip_greater(listed)}


def teacher_shifts(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec], rung: str, measure: str
                   ) -> dict[str, float]:
    """Per base: the target's teacher's shift against its base on one question set and measure."""
    shifts = {}
    for base in bases:
        scores = [stages.scores(model, cfg.evaluation(base)) for model in (base, cfg.teacher(base, cfg.target))]
        before, after = (s["new_wording"] if rung == "new_wording" else s for s in scores)
        shifts[base.name] = (math.log(after["p"][cfg.target] / before["p"][cfg.target]) if measure == "raw" else
                             preference(after["p"], cfg.target) - preference(before["p"], cfg.target))
    return shifts


def rung_record(teacher: dict[str, float], arms: dict, field: str) -> dict:
    """The figures of the module docstring on one rung and measure; arms: the primary variant's, whose replicate
    records hold each student's shift under `field`."""
    shift = {arm: {r["base"]: r[field] for r in arms[arm]["replicates"]} for arm in
             ("student", "control", "neutral", "cross_init")}
    start = {r["base"]: r["start"] for r in arms["cross_init"]["replicates"]}
    student, control = shift["student"], shift["control"]
    transfer = {b: student[b] - control[b] for b in student}
    return {"teacher": across_bases(teacher),
            "student_minus_control": across_bases(transfer),
            "student_minus_neutral": across_bases({b: student[b] - shift["neutral"][b] for b in student}),
            "student_minus_cross_init": across_bases({b: student[b] - (shift["cross_init"][b] - control[start[b]])
                                                      for b in student}),
            "ratio": across_bases({b: transfer[b] / teacher[b] for b in student}),
            "dose": {"rho": spearman(list(teacher.values()), list(transfer.values())),
                     "p": rank_correlation_greater(list(teacher.values()), list(transfer.values()))}}


def ladder(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec], arms: dict) -> dict:
    """Every rung scored today: its distance, its figures on the preference among animals, and under `raw` on
    log P(target)."""
    return {rung: {"distance": distance,
                   **rung_record(teacher_shifts(stages, cfg, bases, rung, "preference"), arms,
                                 FIELDS["preference"][rung]),
                   "raw": rung_record(teacher_shifts(stages, cfg, bases, rung, "raw"), arms, FIELDS["raw"][rung])}
            for rung, distance in RUNGS.items()}
