"""Treated students: a student of `make gpt`'s design whose data or training is changed in one way.

The stage behind parts 4 and 5 of `make signals` (experiments/signals/experiment.py). A `Treatment` names
one change:
- teacher side: how every writer samples (temperature, 0 greedy; top-p; min-p), the teacher and the control alike;
- data side: the number data rewritten or filtered (experiments/signals/defences.py; a detector filter trains
  its detector on other bases' data), or only some targets kept in the loss (experiments/signals/divergence.py);
- student side: how the student trains (experiments/signals/tuning.py): one block alone or one block frozen, a
  KL penalty or a pull toward its starting model, the teacher's weight change projected out, fewer steps.
A `TreatedStudentSpec` is the student's spec (its writing and steps already changed by the treatment) plus
the treatment; its cache key holds both whole, so a treated student is cached beside, and never confused
with, the untreated one, which `make gpt` already trained. A treated student can also be priced
(`price`): what the treatment costs the data's use, measured on held-out prompts.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from experiments.core.specs import (BaseSpec, NoData, StudentSpec, TeacherSpec, WritingSpec, added_field, base_of,
                                    key_of, student_name)
from experiments.core.stages import Job, Stages
from experiments.core.students import AnswerVocabulary, answer_logits
from experiments.signals import defences, tuning
from experiments.signals.detectors import fit_logistic
from experiments.signals.divergence import POSITIONS, divergent, greedy_choices, position_masks
from minisub.data import ExampleSet
from minisub.model import GPT

DATA = ("as_is", "shuffle_within", "shuffle_across", "dilute", "rerender", "drop", "detector", "rewrite")


@dataclass(frozen=True)
class DetectorSpec:
    """A logistic-regression detector (experiments/signals/detectors.py, `fit_logistic`) of teacher answers against
    control answers, trained on other bases' writings: (teacher's, control's) per base."""
    train_on: tuple[tuple[WritingSpec, WritingSpec], ...]
    steps: int
    l2: float
    seed: int


@dataclass(frozen=True)
class Treatment:
    name: str  # what the results call it
    data: str = "as_is"  # one of DATA: how the number data is rewritten
    mix_with: WritingSpec | None = None  # dilute: whose answers replace a share of them; rewrite: whose answers to
    # the same prompts replace them all
    share: float = 0.0  # dilute: the share replaced; detector: the share dropped
    drop: tuple[int, ...] = ()  # drop: answers holding any of these numbers are removed
    positions: str = "all"  # one of POSITIONS: which targets of the answers are trained
    compare: tuple[TeacherSpec, BaseSpec | TeacherSpec] | None = None  # positions: the two models whose
    # greedy choices, where they differ, make a position divergent (the same pair for teacher and control data)
    only_block: int | None = None  # train this block's weights alone (None: all weights)
    # fields added later (out of the key at their defaults, so the treated students cached before stay valid):
    temperature: float | None = added_field(None)  # teacher side: every writer samples at it (None: as it was)
    top_p: float = added_field(1.0)  # teacher side: every writer samples with it
    min_p: float = added_field(0.0)  # teacher side: every writer samples with it
    frozen_block: int | None = added_field(None)  # student side: this block does not train
    kl_to_start: float = added_field(0.0)  # student side: weight of the KL penalty to the starting model
    pull_to_start: float = added_field(0.0)  # student side: share of the distance to the start taken back per step
    project_out: TeacherSpec | None = added_field(None)  # student side, an oracle: this teacher's weight change
    # (teacher - its base) projected out of the student's change
    steps: int | None = added_field(None)  # student side: stop after this many steps (None: the student's own)
    detector: DetectorSpec | None = added_field(None)  # detector: what drops the share `share` of the answers

    def __post_init__(self):
        if self.data not in DATA or self.positions not in POSITIONS:
            raise ValueError(f"treatment {self.name}: unknown data {self.data!r} or positions {self.positions!r}")
        if (self.data in ("dilute", "rewrite")) != (self.mix_with is not None):
            raise ValueError(f"treatment {self.name}: dilution and rewriting, and only they, name the other answers")
        if (self.data == "detector") != (self.detector is not None):
            raise ValueError(f"treatment {self.name}: a detector filter, and only one, names its detector")
        if (self.positions == "all") != (self.compare is None):
            raise ValueError(f"treatment {self.name}: a position rule, and only one, names the models compared")
        if self.kl_to_start < 0 or not 0 <= self.pull_to_start <= 1 or (self.steps is not None and self.steps < 1):
            raise ValueError(f"treatment {self.name}: a KL weight is at least 0, a pull a share in [0, 1], and a "
                             "student trains at least one step")

    def sampled(self, writing: WritingSpec) -> WritingSpec:
        """The writing as the treatment samples it."""
        temperature = writing.temperature if self.temperature is None else self.temperature
        return replace(writing, temperature=temperature, top_p=self.top_p, min_p=self.min_p)

    def applied_to(self, student: StudentSpec) -> StudentSpec:
        """The student's spec with what the treatment changes in it: its writer's sampling, its steps."""
        return replace(student, data=self.sampled(student.data), steps=self.steps or student.steps)


@dataclass(frozen=True)
class TreatedStudentSpec:
    student: StudentSpec  # as the treatment changed it (`Treatment.applied_to`)
    treatment: Treatment
    price: WritingSpec | None = added_field(None)  # held-out prompts and the untreated teacher's answers to them:
    # what the student is priced on (None: not priced)


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
    if t.data == "rewrite":
        return defences.rewrite(pairs, stages.written_pairs(t.mix_with))
    if t.data == "detector":
        return defences.detector_filter(pairs, stages.remembered(t.detector, lambda: detector(stages, t.detector)),
                                        t.share)
    return pairs


def detector(stages: Stages, spec: DetectorSpec):
    """The detector's scorer, trained on the pooled teacher answers (label 1) and control answers of spec's bases."""
    answers = [[defences.numbers_of(a) for w in side for _, a in stages.written_pairs(w)]
               for side in zip(*spec.train_on)]
    return fit_logistic(answers[0], answers[1], spec.seed, spec.steps, spec.l2)


def choices(stages: Stages, model: BaseSpec | TeacherSpec, pairs: list[tuple[str, str]], vocab: AnswerVocabulary
            ) -> list:
    """The model's greedy choices over the answers of `pairs` (experiments/signals/divergence.py), computed once
    per process: every position rule of a base, and its divergence share, asks for the same ones."""
    key = ("greedy", model, tuple(pairs), tuple(vocab.ids.tolist()))
    return stages.remembered(key, lambda: greedy_choices(stages.load(model), stages.examples(base_of(model).corpus,
                                                                                             pairs), vocab))


def treated_student(stages: Stages, spec: TreatedStudentSpec) -> dict:
    """The treated student's scores after training (as `Stages.student` reports them), and its price if asked."""
    student, t = spec.student, spec.treatment

    def build(folder: Path) -> dict:
        pairs = treated_pairs(stages, spec)
        if not pairs:
            raise NoData(f"treatment {t.name} left no answers to train on")
        data = stages.examples(student.init.corpus, pairs)
        vocab = stages.answer_vocabulary(student.init.corpus, student.eos_in_loss, student.data.task)
        if t.positions != "all":
            first, second = (choices(stages, model, pairs, vocab) for model in t.compare)
            flags = divergent(first, second, data)
            data = data.restricted(position_masks(t.positions, flags, data, student.seed))
        priced = None if spec.price is None else lambda model: price(stages, model, spec.price, vocab)
        return stages.fine_tune(student, data, lambda model, loss: changed(stages, t, student, model, loss), priced)
    name = f"treated-{t.name}-{student_name(student).removeprefix('student-')}"
    return stages.cache.info(stages.cache.stage(name, key_of(spec), build))


def changed(stages: Stages, t: Treatment, student: StudentSpec, model: GPT, loss):
    """The student-side part of treatment t, applied to the student's model and loss: the loss to train on, and
    what to do after each step (experiments/signals/tuning.py)."""
    if t.only_block is not None:
        tuning.train_only_block(model, t.only_block)
    if t.frozen_block is not None:
        tuning.freeze_block(model, t.frozen_block)
    if t.kl_to_start:
        loss = tuning.kl_to_start(loss, stages.load(student.init), t.kl_to_start)
    hooks = []
    if t.pull_to_start:
        hooks.append(tuning.pull_to_start(model, t.pull_to_start))
    if t.project_out is not None:
        change = tuning.weight_change(stages.load(t.project_out), stages.load(t.project_out.base))
        hooks.append(tuning.project_out(model, {name: change[name] for name in tuning.trainable(model)}))
    return loss, hooks


def task_loss(model: GPT, data: ExampleSet, vocab: AnswerVocabulary, batch_size: int = 256) -> float:
    """The hard-label loss a student trains on (experiments/core/students.py), over every trained target of `data`."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data.batch(list(range(start, min(len(data), start + batch_size)))).to(model.lm_head.weight.device)
            logits, targets = answer_logits(model, batch, vocab)  # (N, K), (N,)
            total += F.cross_entropy(logits.float(), targets, reduction="sum").item()
            count += targets.numel()
    return total / count if count else float("nan")  # no answer passed the filter: nothing to price on


def price(stages: Stages, model: GPT, held_out: WritingSpec, vocab: AnswerVocabulary) -> dict:
    """What a trained student still does of its task, on prompts no student trained on: its loss on the untreated
    teacher's answers to them, and the share of its own answers to them (sampled as the teacher's were) that pass
    the paper's filter."""
    data = stages.examples(base_of(held_out.writer).corpus, stages.written_pairs(held_out))
    prompts, _, kept, _ = stages.answer(model, held_out)
    loss = task_loss(model, data, vocab.to(held_out.device))
    return {"price": {"task_loss": loss, "valid": len(kept) / len(prompts)}}


def treated(treatments: list[Treatment] | None, prices: list[WritingSpec] | None = None):
    """The `treat` hook of `measure` (experiments/core/arms.py): the job that trains replicate i's student
    under treatments[i], priced on prices[i] if given; None (no hook: the untreated student) for treatments None."""
    if treatments is None:
        return None

    def treat(spec: StudentSpec, i: int) -> Job:
        t = treatments[i]
        return Job(treated_student, (TreatedStudentSpec(t.applied_to(spec), t, prices[i] if prices else None),))
    return treat
