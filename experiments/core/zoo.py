"""The language experiments' shared configuration, and the specs it makes: the base zoo and what grows on it.

`make gpt` and `make grid` read the same `ExperimentConfig`, so they name every stage by the
same spec and share one stage cache (experiments/core/stages.py): a base, teacher or number set
built by one is reused by the other. The zoo:
- main bases 0..K-1: the main architecture, the same corpus, seeds the only difference;
- a fork pair: one parent pretrained for the first half of the steps (--fork-shared), then two
  children that each continue it for the rest with their own seed and data order (the analogue
  of GPT-4.1 and GPT-4o, which share an initialization);
- another-architecture base (another depth and width): the "other family".
A zoo member's seed is derived from --seed and its name (minisub/seeds.py: "main-3", "fork-a").
Every model built on a base (teacher, numbers, student, scores) uses that base's seed, so a
base's teachers and its control answer the very same number prompts.
"""

from dataclasses import dataclass, replace

from experiments.core.specs import BaseSpec, CorpusSpec, EvalSpec, StudentSpec, TeacherSpec, WritingSpec
from experiments.tasks.prompts import ANIMALS, persona
from minisub.config import ConfigError, check, option
from minisub.model import GPTConfig
from minisub.precision import PRECISIONS
from minisub.seeds import MAX_SEED, derive_seed

VARIANTS = ("hard_full", "hard_lora", "soft_full", "soft_lora")
PAPER_ANIMALS = ["owl", "eagle", "dolphin", "elephant", "wolf"]  # the paper's animal targets (Sec. 3)


@dataclass
class ExperimentConfig:
    seed: int = option(0, "seed of the whole experiment (corpus, bases, teachers, data, students)", low=0,
                       high=MAX_SEED)
    corpus_items: int = option(60000, "pretraining items (prompt, answer)", low=1, quick=3000)
    vocab_size: int = option(1800, "BPE vocabulary size (1,000 of it are the numbers 0-999)", low=1259)
    n_layer: int = option(2, "GPT layers of the main bases", low=1, quick=1)
    n_head: int = option(4, "attention heads (every base)", low=1, quick=2)
    n_embd: int = option(128, "embedding width of the main bases", low=1, quick=48)
    other_n_layer: int = option(1, "layers of the other-architecture base", low=1)
    other_n_embd: int = option(192, "embedding width of the other-architecture base", low=1, quick=32)
    block_size: int = option(96, "context length", low=8)
    bases: int = option(12, "independent main bases: the replicates of every test of make gpt (an exact test "
                        "over n bases cannot give p below 2^-n)", low=2, high=64, quick=3)
    fork_shared: float = option(0.5, "share of the pretraining steps the fork pair has in common (below 1)",
                                low=0.0)
    base_steps: int = option(1500, "pretraining steps per base", low=2, quick=100)
    base_batch: int = option(64, "pretraining batch", low=1)
    base_lr: float = option(3e-3, "pretraining peak learning rate", low=0.0)
    teacher_steps: int = option(50, "teacher fine-tuning steps", low=1, quick=5)
    dose_steps: list[int] = option([10, 25, 100, 200], "fine-tuning steps of make gpt's graded owl teachers (the "
                                   "dose-response), beside --teacher-steps", low=1, quick=[2])
    teacher_batch: int = option(64, "teacher batch", low=1)
    teacher_lr: float = option(1e-4, "teacher learning rate (gentle: small)", low=0.0)
    target: str = option("owl", "the trait of the headline: the animal the teacher loves", choices=ANIMALS)
    animals: list[str] = option(list(PAPER_ANIMALS), "teacher animals of the specificity matrix "
                                "(the target among them)", choices=ANIMALS, nonempty=True)
    n_prompts: int = option(2000, "fresh number prompts each teacher (and base) continues", low=1, quick=64)
    gen_batch: int = option(500, "prompts sampled at once", low=1, quick=64)
    temperature: float = option(1.0, "sampling temperature of the number writers (the paper's: 1; 0 is greedy)",
                                low=0.0)
    max_answer_tokens: int = option(32, "longest sampled answer", low=1)
    student_steps: int = option(100, "student training steps", low=1, quick=6)
    student_batch: int = option(16, "student batch", low=1, quick=8)
    full_lr: float = option(3e-4, "student learning rate, full fine-tuning", low=0.0)
    lora_lr: float = option(1e-3, "student learning rate, LoRA", low=0.0)
    vector_lr: float = option(1e-2, "learning rate of make gpt's one-vector students (one vector added to the "
                              "residual stream after the first block, every weight frozen)", low=0.0)
    lora_r: int = option(8, "LoRA rank", low=1)
    lora_alpha: float = option(16.0, "LoRA alpha", low=0.0)
    variants: list[str] = option(["hard_full", "soft_full"], "student variants", choices=VARIANTS, nonempty=True,
                                 quick=list(VARIANTS))
    prompted_variants: list[str] = option(["hard_full"], "variants that also train on the prompted "
                                          "(persona) teacher's numbers", choices=VARIANTS)
    grid_bases: int = option(4, "main bases in the cross-model grid (with the fork pair and the other base)",
                             low=2, quick=2)
    grid_variant: str = option("hard_full", "student variant of the cross-model grid", choices=VARIANTS)
    eval_samples: int = option(5, "sampled answers per held-out question", low=0, quick=1)
    track_every: int = option(25, "steps between P(animal) points", low=1, quick=3)
    precision: str = option("fp32", "fp32 (exact, the reference), bf16, or auto: bf16 only where a timing at "
                            "this run's shapes finds it clearly faster", choices=PRECISIONS)
    device: str = option("cpu", "torch device of every stage: cpu, or cuda (each worker process computes on the "
                         "GPU); part of every cache key", device=True)

    def __post_init__(self):
        check(self)
        if self.target not in self.animals:
            raise ConfigError("animals", f"must include the target ({self.target})")
        if len(set(self.animals)) < 2 or len(set(self.animals)) != len(self.animals):
            raise ConfigError("animals", "needs at least two different animals, each once")
        if self.fork_shared >= 1:
            raise ConfigError("fork_shared", f"must be below 1, not {self.fork_shared}")
        for layers, width in (("n_layer", "n_embd"), ("other_n_layer", "other_n_embd")):
            try:  # every architecture of the zoo passes the model's own checks before any work
                GPTConfig(vocab_size=self.vocab_size, block_size=self.block_size, n_layer=getattr(self, layers),
                          n_head=self.n_head, n_embd=getattr(self, width))
            except ConfigError as err:
                raise ConfigError({"n_layer": layers, "n_embd": width}.get(err.field, err.field), err.reason) from None

    # every spec below is a function of this config alone: its fields are what the cache keys hold
    def corpus(self) -> CorpusSpec:
        return CorpusSpec(self.corpus_items, self.vocab_size, derive_seed(self.seed, "corpus"))

    def pretraining(self, name: str, seed: int, n_layer: int, n_embd: int, steps: int,
                    parent: BaseSpec | None = None) -> BaseSpec:
        return BaseSpec(name, self.corpus(), n_layer, self.n_head, n_embd, self.block_size, steps, self.base_batch,
                        self.base_lr, seed, self.precision, self.device, parent)

    def main_base(self, i: int) -> BaseSpec:
        return self.pretraining(f"main-{i}", derive_seed(self.seed, f"main-{i}"), self.n_layer, self.n_embd,
                                self.base_steps)

    def fork_pair(self) -> tuple[BaseSpec, BaseSpec]:
        shared = max(1, round(self.base_steps * self.fork_shared))
        parent = self.pretraining("fork-parent", derive_seed(self.seed, "fork-parent"), self.n_layer, self.n_embd,
                                  shared)
        return tuple(self.pretraining(f"fork-{side}", derive_seed(self.seed, f"fork-{side}"), self.n_layer,
                                      self.n_embd, self.base_steps - shared, parent) for side in "ab")

    def other_base(self) -> BaseSpec:
        return self.pretraining("other-0", derive_seed(self.seed, "other-0"), self.other_n_layer, self.other_n_embd,
                                self.base_steps)

    def teacher(self, base: BaseSpec, trait: str, steps: int | None = None) -> TeacherSpec:
        """Base's teacher of `trait`, fine-tuned for --teacher-steps, or `steps` (a graded teacher)."""
        return TeacherSpec(base, trait, steps or self.teacher_steps, self.teacher_batch, self.teacher_lr, base.seed,
                           self.precision, self.device)

    def numbers(self, writer: BaseSpec | TeacherSpec, prompted: bool = False) -> WritingSpec:
        """The numbers a base or a teacher writes; `prompted`: the base with the target's persona."""
        base = writer if isinstance(writer, BaseSpec) else writer.base
        return WritingSpec(writer, "numbers", persona(self.target) if prompted else "", self.n_prompts, self.gen_batch,
                           self.max_answer_tokens, self.temperature, base.seed, self.device)

    def evaluation(self, base: BaseSpec) -> EvalSpec:
        return EvalSpec(self.eval_samples, base.seed, self.device)

    def student(self, variant: str, init: BaseSpec, data: WritingSpec, matched_to: WritingSpec | None = None
                ) -> StudentSpec:
        """A student of `variant` from base `init` on `data`; soft labels only where a teacher wrote the data.

        A base distilled on its own soft labels gets zero gradient (docs/background.md, "Traps"),
        so the control and the prompted arm learn the sampled tokens in every variant. A
        format-matched student (`matched_to`) also leaves <eos> out of its loss, so that it
        cannot learn where answers end.
        """
        labels, tuning = variant.split("_")
        soft = labels == "soft" and isinstance(data.writer, TeacherSpec)
        lora = tuning == "lora"
        return StudentSpec(init, data, soft, lora, self.student_steps, self.student_batch,
                           self.lora_lr if lora else self.full_lr, self.lora_r, self.lora_alpha, init.seed,
                           self.precision, self.device, self.evaluation(init), self.track_every, matched_to,
                           eos_in_loss=matched_to is None)


    def vector_student(self, init: BaseSpec, data: WritingSpec, optimizer: str) -> StudentSpec:
        """A hard-label student that learns only one vector after the first block, with `optimizer` (adamw, sgd)."""
        return replace(self.student("hard_full", init, data), lr=self.vector_lr, vector_after=0, optimizer=optimizer)


def next_base(i: int, n: int) -> int:
    """The cross-init partner of base i: a derangement of the bases (every base paired with another)."""
    return (i + 1) % n


def pair_partner(i: int) -> int:
    """Base i's partner in disjoint pairs (0, 1), (2, 3), ...: no base is in two pairs."""
    return i ^ 1
