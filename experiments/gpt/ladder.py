"""What transfers: the teacher's trait and the student's transfer on each question set, on two measures.

Read after make gpt's arms (experiments/gpt/experiment.py), for its primary variant and target. The
question sets are the rungs of a ladder from the teacher's own questions outward, a to e
(experiments/tasks/ladder.py). Per rung and per base:
- `teacher`: the teacher's shift against its base: the manipulation check. A student's null on a
  rung where the teacher does not hold the trait is not a finding (`manipulation_record` keeps,
  for every teacher (the prompted one too) and base, its P, animal mass, rank and sampled rate on
  every rung);
- `student_minus_control`, `student_minus_neutral`, and `student_minus_cross_init` (the cross-init
  student's shift net of the control of the base it starts from, as make gpt's H2);
- `ratio`: (student - control) / (teacher - base), the share of the teacher's shift that reaches
  the student;
- `dose`: across bases, Spearman's rho of the teacher's shift with student - control, and its
  one-sided permutation p.
Each on the preference among animals, log P(target | an animal) (`preference`), and under `raw` on
log P(target), which also moves with how much a model answers with an animal at all. Each figure
is {"per_base", "mean", "ci95", "p_exact"}: the exact one-sided sign-flip test over bases.
`one_vector`: the one-vector student (experiments/core/students.py), with Adam and with plain SGD,
against the same student on its base's own numbers, and its share of the full student's transfer
(mean over mean). `graded_dose`: within each base, teachers of graded strength (--dose-steps and --teacher-steps
fine-tuning steps), each with its own numbers and student: the teacher's shift and the student's
against the control at every dose, and per base Spearman's rho between them over the doses.
Exploratory, apart from the tests pre-registration v2 names (experiments/gpt/preregistration_v2.py).
"""

import math

from experiments.core.analysis import over_units, preference, replicate_record, sampled_among, shift_field
from experiments.core.corpus import NEUTRAL
from experiments.core.specs import BaseSpec, StudentSpec
from experiments.core.stages import Job, Stages
from experiments.core.zoo import ExperimentConfig
from experiments.gpt.preregistration import PRIMARY_VARIANT
from experiments.tasks.ladder import RUNGS
from experiments.tasks.prompts import persona
from minisub.stats import rank_correlation_greater, spearman


def across_bases(values: dict[str, float]) -> dict:
    """A per-base figure, its mean and 95% CI over bases, and its exact one-sided p (> 0)."""
    return {"per_base": values, **over_units(values)}


def on(scores: dict, rung: str) -> dict:
    """A model's scores on one question set (the held-out paraphrases' are the top level)."""
    return scores if rung == "held_out" else scores[rung]


def shift(before: dict, after: dict, rung: str, measure: str, target: str) -> float:
    """The change of log P(target) ("raw") or of the preference among animals between two models' scores."""
    b, a = on(before, rung), on(after, rung)
    if measure == "raw":
        return math.log(a["p"][target] / b["p"][target])
    return preference(a["p"], target) - preference(b["p"], target)


def teacher_shifts(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec], rung: str, measure: str,
                   steps: int | None = None) -> dict[str, float]:
    """Per base: the target's teacher's shift against its base on one question set and measure; steps: a
    graded teacher's (default --teacher-steps)."""
    return {base.name: shift(stages.scores(base, cfg.evaluation(base)),
                             stages.scores(cfg.teacher(base, cfg.target, steps), cfg.evaluation(base)), rung, measure,
                             cfg.target) for base in bases}


def model_record(scores: dict, trait: str) -> dict:
    """What a model's scores on one question set say of one trait: its P, the animal mass, its rank, its sampled
    rate, and that rate among the sampled answers that name an animal."""
    return {"p": scores["p"][trait], "mass": scores["mass"], "rank": scores["rank"][trait],
            "sampled": scores["sampled"][trait], "sampled_among_animals": sampled_among(scores["sampled"], trait)}


def manipulation_record(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec]) -> dict:
    """Per base and question set: the base's record of the target, and each teacher's (each animal's of its animal;
    the neutral's, and the prompted teacher's, the base with the target's persona before every question, of the
    target) with its shift against the base, in log P and in the preference."""
    prompted = {base.name: stages.evaluate(stages.load(base), base.corpus, cfg.evaluation(base),
                                           prefix=persona(cfg.target)) for base in bases}  # seconds: not cached
    record = {}
    for base in bases:
        before = stages.scores(base, cfg.evaluation(base))
        record[base.name] = {}
        for rung in RUNGS:
            entry = {"base": model_record(on(before, rung), cfg.target)}
            teachers = {trait: stages.scores(cfg.teacher(base, trait), cfg.evaluation(base))
                        for trait in [*cfg.animals, NEUTRAL]} | {"prompted": prompted[base.name]}
            for trait, after in teachers.items():
                animal = trait if trait in cfg.animals else cfg.target
                entry[trait] = model_record(on(after, rung), animal) | {
                    measure: shift(before, after, rung, measure, animal) for measure in ("raw", "preference")}
            record[base.name][rung] = entry
    return record


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
    """Every rung: its distance, its figures on the preference among animals, and under `raw` on log P(target)."""
    return {rung: {"distance": distance,
                   **rung_record(teacher_shifts(stages, cfg, bases, rung, "preference"), arms, shift_field(rung)),
                   "raw": rung_record(teacher_shifts(stages, cfg, bases, rung, "raw"), arms, shift_field(rung, "raw"))}
            for rung, (distance, _) in RUNGS.items()}


def doses(cfg: ExperimentConfig) -> list[int]:
    """The graded teachers' fine-tuning steps, the main teacher's among them, ascending."""
    return sorted(set(cfg.dose_steps) | {cfg.teacher_steps})


def dose_student(cfg: ExperimentConfig, base: BaseSpec, steps: int) -> StudentSpec:
    """The primary variant's student of base's graded teacher (at --teacher-steps: the student arm's own)."""
    return cfg.student(PRIMARY_VARIANT, base, cfg.numbers(cfg.teacher(base, cfg.target, steps)))


def dose_jobs(cfg: ExperimentConfig, bases: list[BaseSpec]) -> list[Job]:
    return [job for base in bases for steps in doses(cfg) for job in (
        Job(Stages.student, (dose_student(cfg, base, steps),)),
        Job(Stages.scores, (cfg.teacher(base, cfg.target, steps), cfg.evaluation(base))))]


def dose_means(points: dict[str, list[list[float]]]) -> list[list[float]]:
    """[steps, mean teacher shift, mean student - control] over bases, per dose, from per-base points."""
    per_dose = zip(*points.values())  # for each dose: every base's [steps, teacher, transfer]
    return [[dose[0][0], sum(p[1] for p in dose) / len(dose), sum(p[2] for p in dose) / len(dose)]
            for dose in per_dose]


def graded_dose(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec], arms: dict) -> dict:
    """Per rung, on the preference among animals: per base, [steps, teacher shift, student - control] at every
    dose, their means over bases, and Spearman's rho of the two over the doses, tested > 0 over bases (exact
    sign-flip)."""
    control = {r["base"]: r for r in arms["control"]["replicates"]}
    records = {(base.name, steps): replicate_record(base.name, base.name, stages.scores(base, cfg.evaluation(base)),
                                                    stages.student(dose_student(cfg, base, steps)), cfg.target)
               for base in bases for steps in doses(cfg)}
    rungs = {}
    for rung in RUNGS:
        field = shift_field(rung)
        teachers = {steps: teacher_shifts(stages, cfg, bases, rung, "preference", steps) for steps in doses(cfg)}
        points = {base.name: [[steps, teachers[steps][base.name],
                               records[base.name, steps][field] - control[base.name][field]] for steps in doses(cfg)]
                  for base in bases}
        rho = {name: spearman([p[1] for p in ps], [p[2] for p in ps]) for name, ps in points.items()}
        rungs[rung] = {"points": points, "means": dose_means(points), "rho": across_bases(rho)}
    return {"steps": doses(cfg), "rungs": rungs}


OPTIMIZERS = ("adamw", "sgd")


def vector_students(cfg: ExperimentConfig, base: BaseSpec, optimizer: str) -> tuple[StudentSpec, StudentSpec]:
    """The one-vector student of base's teacher's numbers, and its control (the same on the base's numbers)."""
    return (cfg.vector_student(base, cfg.numbers(cfg.teacher(base, cfg.target)), optimizer),
            cfg.vector_student(base, cfg.numbers(base), optimizer))


def vector_jobs(cfg: ExperimentConfig, bases: list[BaseSpec]) -> list[Job]:
    return [Job(Stages.student, (spec,)) for base in bases for optimizer in OPTIMIZERS
            for spec in vector_students(cfg, base, optimizer)]


def one_vector(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec], rungs: dict) -> dict:
    """Per optimizer and rung, on the preference among animals: the one-vector student - its control, per base,
    and its share of the full student's transfer (the ladder's student - control), mean over mean."""
    result = {}
    for optimizer in OPTIMIZERS:
        records = {}
        for base in bases:
            before = stages.scores(base, cfg.evaluation(base))
            records[base.name] = [replicate_record(base.name, base.name, before, stages.student(spec), cfg.target)
                                  for spec in vector_students(cfg, base, optimizer)]
        result[optimizer] = {}
        for rung in RUNGS:
            field = shift_field(rung)
            gap = across_bases({name: s[field] - c[field] for name, (s, c) in records.items()})
            full = rungs[rung]["student_minus_control"]["mean"]
            result[optimizer][rung] = {"student_minus_control": gap, "share": gap["mean"] / full}
    return result
