"""The arms of the language experiment as the paper defines them, and the student each arm trains.

Read `DESIGN` against the paper (Cloud et al. 2025, Sec. 3 and the cross-model test of Sec. 5):
every arm is a student fine-tuned on number answers only, and differs only in whose numbers
they are and which base it starts from. Replicate i of every arm is main base i: its teacher,
its numbers, its students; the cross-init student starts from the next base instead (a
derangement: no base is its own partner). `arm_student` turns a row of the table into the
student's spec, and nothing else decides what an arm trains on.
"""

from typing import Callable, NamedTuple

from experiments.core.specs import BaseSpec, StudentSpec, TeacherSpec, WritingSpec
from experiments.core.corpus import NEUTRAL
from experiments.core.zoo import ExperimentConfig, next_base, pair_partner


class Arm(NamedTuple):
    data: str  # whose numbers: "teacher" (the base's teacher of the animal), "base" (its own), "persona",
    # "neutral" (the base's teacher fine-tuned alike on answers that favor no animal)
    start: str  # the student's initialization: its "own" base, the "next" base (cross-init), or its "partner"
    # in disjoint pairs of bases (0, 1), (2, 3), ...
    matched: bool = False  # only answers whose formats the other dataset has too, as often (core/matched.py)


DESIGN = {
    "student": Arm("teacher", "own"),
    "control": Arm("base", "own"),  # the base's own numbers: everything but the trait
    "cross_init": Arm("teacher", "next"),  # the same numbers, another initialization
    "cross_pair": Arm("teacher", "partner"),  # the same, in disjoint pairs: pre-registration v2's H2
    "prompted": Arm("persona", "own"),  # the paper's system-prompt teacher: the base told it loves the animal
    "neutral": Arm("neutral", "own"),  # any fine-tuned teacher's numbers: everything but the trait and the tuning
    "matched": Arm("teacher", "own", matched=True),  # the teacher's numbers with the control's formats
    "matched_control": Arm("base", "own", matched=True),  # the control's numbers with the teacher's formats
}
# Specificity is the "student" arm with each other animal's teacher (the animal matrix).


def arm_student(cfg: ExperimentConfig, variant: str, arm: str, bases: list[BaseSpec], i: int,
                trait: str | None = None, writing: Callable[[BaseSpec | TeacherSpec], WritingSpec] | None = None
                ) -> StudentSpec:
    """Replicate i of `arm`: the student of base i's data (its teacher of `trait`, default the target).
    writing(writer): what a writer writes for students (default: its numbers, `cfg.numbers`)."""
    writing = writing or cfg.numbers
    design, own = DESIGN[arm], bases[i]
    teacher_data = writing(cfg.teacher(own, trait or cfg.target))
    own_data = writing(own)
    data = {"teacher": teacher_data, "base": own_data, "persona": cfg.numbers(own, prompted=True),
            "neutral": writing(cfg.teacher(own, NEUTRAL))}[design.data]
    start = {"own": i, "next": next_base(i, len(bases)), "partner": pair_partner(i)}[design.start]
    init = bases[start]
    matched_to = (own_data if design.data == "teacher" else teacher_data) if design.matched else None
    return cfg.student(variant, init, data, matched_to)
