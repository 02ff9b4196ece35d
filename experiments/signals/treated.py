"""Treated students: a student of `make gpt`'s design whose data or training is changed in one way.

The stage behind parts 4 and 5 of `make signals` (experiments/signals/experiment.py). A `Treatment` names
one change: a defence rewrites the student's number data (experiments/signals/defences.py), a position
rule keeps only some targets in the loss (experiments/signals/divergence.py), or only one block's
weights train. A `TreatedStudentSpec` is an untreated student's spec plus its treatment; its
cache key holds both whole, so a treated student is cached beside, and never confused with, the
untreated one, which `make gpt` already trained.
"""

from dataclasses import dataclass
from pathlib import Path

from experiments.core.specs import (BaseSpec, NoData, StudentSpec, TeacherSpec, WritingSpec, base_of, key_of,
                                    student_name)
from experiments.core.stages import Job, Stages
from experiments.core.students import AnswerVocabulary
from experiments.signals import defences
from experiments.signals.divergence import POSITIONS, divergent, greedy_choices, position_masks

DATA = ("as_is", "shuffle_within", "shuffle_across", "dilute", "rerender", "drop")


@dataclass(frozen=True)
class Treatment:
    name: str  # what the results call it
    data: str = "as_is"  # one of DATA: how the number data is rewritten
    mix_with: WritingSpec | None = None  # dilute: whose answers replace a share of them
    share: float = 0.0  # dilute: the share replaced
    drop: tuple[int, ...] = ()  # drop: answers holding any of these numbers are removed
    positions: str = "all"  # one of POSITIONS: which targets of the answers are trained
    compare: tuple[TeacherSpec, BaseSpec | TeacherSpec] | None = None  # positions: the two models whose
    # greedy choices, where they differ, make a position divergent (the same pair for teacher and control data)
    only_block: int | None = None  # train this block's weights alone (None: all weights)

    def __post_init__(self):
        if self.data not in DATA or self.positions not in POSITIONS:
            raise ValueError(f"treatment {self.name}: unknown data {self.data!r} or positions {self.positions!r}")
        if (self.data == "dilute") != (self.mix_with is not None):
            raise ValueError(f"treatment {self.name}: dilution, and only dilution, names the data mixed in")
        if (self.positions == "all") != (self.compare is None):
            raise ValueError(f"treatment {self.name}: a position rule, and only one, names the models compared")


@dataclass(frozen=True)
class TreatedStudentSpec:
    student: StudentSpec
    treatment: Treatment


def treated_pairs(stages: Stages, spec: TreatedStudentSpec) -> list[tuple[str, str]]:
    t, seed = spec.treatment, spec.student.seed
    pairs = stages.training_pairs(spec.student)
    if t.data == "shuffle_within":
        return defences.shuffle_within(pairs, seed)
    if t.data == "shuffle_across":
        return defences.shuffle_across(pairs, seed)
    if t.data == "dilute":
        return defences.dilute(pairs, stages.written_pairs(t.mix_with), t.share, seed)
    if t.data == "rerender":
        return defences.rerender(pairs, seed)
    if t.data == "drop":
        return defences.drop(pairs, set(t.drop))
    return pairs


def choices(stages: Stages, model: BaseSpec | TeacherSpec, pairs: list[tuple[str, str]], vocab: AnswerVocabulary
            ) -> list:
    """The model's greedy choices over the answers of `pairs` (experiments/signals/divergence.py), computed once
    per process: every position rule of a base, and its divergence share, asks for the same ones."""
    key = ("greedy", model, tuple(pairs), tuple(vocab.ids.tolist()))
    return stages.remembered(key, lambda: greedy_choices(stages.load(model), stages.examples(base_of(model).corpus,
                                                                                             pairs), vocab))


def treated_student(stages: Stages, spec: TreatedStudentSpec) -> dict:
    """The treated student's scores after training (as `Stages.student` reports them)."""
    student, t = spec.student, spec.treatment

    def build(folder: Path) -> dict:
        pairs = treated_pairs(stages, spec)
        if not pairs:
            raise NoData(f"treatment {t.name} left no answers to train on")
        data = stages.examples(student.init.corpus, pairs)
        if t.positions != "all":
            vocab = stages.answer_vocabulary(student.init.corpus, student.eos_in_loss, student.data.task)
            first, second = (choices(stages, model, pairs, vocab) for model in t.compare)
            flags = divergent(first, second, data)
            data = data.restricted(position_masks(t.positions, flags, data, student.seed))
        return stages.fine_tune(student, data, t.only_block)
    name = f"treated-{t.name}-{student_name(student).removeprefix('student-')}"
    return stages.cache.info(stages.cache.stage(name, key_of(spec), build))


def treated(treatments: list[Treatment] | None):
    """The `treat` hook of `measure` (experiments/core/arms.py): the job that trains replicate i's student
    under treatments[i]; None (no hook: the untreated student) for treatments None."""
    if treatments is None:
        return None

    def treat(spec: StudentSpec, i: int) -> Job:
        return Job(treated_student, (TreatedStudentSpec(spec, treatments[i]),))
    return treat
