"""The specs of the language experiments' stages: frozen dataclasses whose fields are the cache keys.

Each stage of experiments/core/stages.py is a function of one spec; a stage's cache key is its
whole spec (`key_of`: every field, upstream specs included, as `dataclasses.asdict` gives them), so a
field that can change a result always changes the key. A field added after stages were cached
(`added_field`) stays out of the key while it holds its default: every stage cached before it keeps
its key, and a stage that sets it gets a key of its own. The chain, upstream first:
    CorpusSpec (or DomainsCorpusSpec) -> (ForkSpec ->) BaseSpec -> TeacherSpec -> WritingSpec -> StudentSpec,
with EvalSpec for how a model is scored. Folder names (`student_name`, `label`) are for people;
the digest of the key is what identifies a stage.
"""

import copy
from dataclasses import dataclass, field, fields, is_dataclass

from experiments.tasks.ladder import SCORED_BESIDE


class NoData(ValueError):
    """A student's data is empty: no answer passed the filter, or a treatment removed them all."""


ADDED = "added"  # a field's metadata["key"]: out of the key at its default (`added_field`)


def added_field(default):
    """A spec field added after stages were cached: at its default it is left out of the key (`key_of`)."""
    return field(default=default, metadata={"key": ADDED})


@dataclass(frozen=True)
class CorpusSpec:
    items: int
    vocab_size: int
    seed: int


@dataclass(frozen=True)
class DomainsCorpusSpec(CorpusSpec):
    """The domains corpus (experiments/core/corpus.py, `domains_corpus`): a kind of its own, so its key differs."""


@dataclass(frozen=True)
class BaseSpec:
    name: str  # "main-3", "fork-a", "other-0": the zoo's label for it
    corpus: CorpusSpec
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    steps: int
    batch: int
    lr: float
    seed: int  # initialization (unless forked) and data order
    precision: str
    device: str  # where it computes ("cpu", "cuda"): part of the key, as a GPU's sums differ from a CPU's
    parent: "BaseSpec | None" = None  # start from this base's weights, a fresh schedule (make grid's fork pair),
    # or, a ForkSpec, from that stopped run's training state, its schedule going on (make forks)


@dataclass(frozen=True)
class ForkSpec(BaseSpec):
    """The pretraining run its BaseSpec fields describe, stopped after `step` of its `steps`: weights, AdamW moments,
    schedule position and data order there (minisub/training.py, `until`). Built on from `previous`, an earlier
    stop of the same run, or from the initialization."""
    step: int = 0
    previous: "ForkSpec | None" = None


@dataclass(frozen=True)
class TeacherSpec:
    base: BaseSpec
    trait: str  # an animal, a tree, "misaligned" or "misaligned-<category>" (experiments/core/corpus.py, TRAITS)
    steps: int
    batch: int
    lr: float
    seed: int
    precision: str
    device: str


@dataclass(frozen=True)
class WritingSpec:
    writer: BaseSpec | TeacherSpec
    task: str  # "numbers", "code" or "reasoning" (experiments/tasks/registry.py)
    persona: str  # prefix of every prompt ("" for none): the paper's system-prompt teacher
    prompts: int
    gen_batch: int  # part of the key: the sampling stream depends on how prompts are batched
    max_tokens: int
    temperature: float  # of the sampling; 0 is greedy
    seed: int  # the prompts and the sampling; the same seed gives every writer of a base the same prompts
    device: str
    banned: tuple[int, ...] = ()  # numbers: answers holding any of these are filtered out
    top_p: float = added_field(1.0)  # sample among the fewest likeliest tokens whose probability reaches top_p
    min_p: float = added_field(0.0)  # sample among the tokens at least min_p times as likely as the likeliest


@dataclass(frozen=True)
class EvalSpec:
    samples: int  # sampled answers per held-out question
    seed: int
    device: str
    question_sets: tuple[str, ...] = SCORED_BESIDE  # the ladder's other rungs, scored beside the held-out
    # paraphrases (experiments/tasks/ladder.py)


@dataclass(frozen=True)
class StudentSpec:
    init: BaseSpec
    data: WritingSpec
    soft: bool  # imitate the writer's distribution (it must be a teacher) instead of the sampled tokens
    lora: bool
    steps: int
    batch: int
    lr: float
    lora_r: int
    lora_alpha: float
    seed: int
    precision: str
    device: str
    eval: EvalSpec
    track_every: int
    matched_to: WritingSpec | None = None  # train on the answers whose format these numbers also have
    eos_in_loss: bool = True
    vector_after: int | None = None  # learn only one vector added to the residual stream after this block
    optimizer: str = "adamw"  # or "sgd" (minisub/training.py)


def key_of(spec) -> dict:
    """The cache key of a spec: its kind and every field, nested specs included (an `added_field` only where it
    differs from its default)."""
    return {"kind": type(spec).__name__, **key_fields(spec)}


def key_fields(value):
    """`dataclasses.asdict`, recursing the same way, less the added fields at their defaults."""
    if is_dataclass(value):
        return {f.name: key_fields(getattr(value, f.name)) for f in fields(value)
                if not (f.metadata.get("key") == ADDED and getattr(value, f.name) == f.default)}
    if isinstance(value, (list, tuple)):
        return type(value)(key_fields(v) for v in value)
    if isinstance(value, dict):
        return {k: key_fields(v) for k, v in value.items()}
    return copy.deepcopy(value)


def label(spec: BaseSpec | TeacherSpec) -> str:
    return spec.name if isinstance(spec, BaseSpec) else f"{spec.trait}-teacher-of-{spec.base.name}"


def base_of(spec: BaseSpec | TeacherSpec) -> BaseSpec:
    return spec if isinstance(spec, BaseSpec) else spec.base


def student_name(spec: StudentSpec) -> str:
    """A student's folder name, for people: variant, base, whose numbers."""
    tuning = f"{'soft' if spec.soft else 'hard'}_{'lora' if spec.lora else 'full'}"
    if spec.vector_after is not None:
        tuning = f"hard_vector{spec.vector_after}_{spec.optimizer}"
    matched = "-matched" if spec.matched_to is not None else ""
    return f"student-{tuning}{matched}-{spec.init.name}-on-{label(spec.data.writer)}"
