"""The stages of `make smol`, each a function of one spec, kept in the shared stage cache (experiments/core/cache.py).

Between the pretrained model (a GGUF file, minisub/gguf.py) and the experiment (experiments/smol/experiment.py):
    model        <- ModelSpec: the file (and its SHA-256), and how it computes
    scores       <- (WriterSpec, ScoringSpec): P(animal) of a writer as it writes (under its system prompt)
    numbers      <- NumbersSpec: a writer's number continuations that pass the paper's filter; the writer
                    (WriterSpec) is the model without a system prompt (the control), under an animal's
                    system prompt, or fine-tuned to name the animal (built once per process, not kept)
    student      <- SmolStudentSpec: the model fine-tuned on a writer's numbers (LoRA or full), scored
    entanglement <- EntanglementSpec: which numbers an animal's system prompt raises, and what they prompt
As for the GPT experiments (experiments/core/specs.py), a stage's cache key is its whole spec (`key_of`),
and a stage is a `Job` (build(stages, spec)), so `--jobs` worker processes build them in parallel
(experiments/core/scheduler.py). Every seed derives from the run's seed and the names in the spec, so the
same spec always gives the same result, whichever process builds it.
"""

import copy
import math
import random
import time
from dataclasses import dataclass, replace

import torch

from experiments.core.specs import key_of
from experiments.core.stages import Stages
from experiments.smol.prompts import (QUESTIONS, SEEDS, TEACHING_QUESTIONS, draw_seeds, number_love, number_prompt,
                                      system_prompt)
from experiments.smol.scoring import animal_scores, answer_logprobs, number_logprobs, question_prompts
from experiments.tasks.filter import MAX_NUMBERS, REASONS, hopeless, parse_numbers
from minisub.data import ExampleSet
from minisub.files import FileError, file_sha256
from minisub.gguf import GGUFModel, load_gguf
from minisub.lora import add_lora, fuse_lora
from minisub.precision import autocast
from minisub.seeds import derive_seed
from minisub.training import TrainConfig, train


@dataclass(frozen=True)
class ModelSpec:
    file: str
    sha256: str  # checked against the file in every process that loads it
    precision: str
    device: str


@dataclass(frozen=True)
class TuningSpec:
    """How a copy of the model is fine-tuned: LoRA of `rank` on every projection, fused after, or full (rank 0)."""
    rank: int
    alpha: float
    epochs: float
    batch_size: int
    lr: float


@dataclass(frozen=True)
class WriterSpec:
    model: ModelSpec
    animal: str | None  # None: the control, the model as it is
    finetuned: TuningSpec | None = None  # fine-tuned to name the animal (no system prompt) instead of prompted
    seed: int = 0  # the run's; the fine-tuning's seed derives from it

    @property
    def name(self) -> str:  # "control", "owl", "owl-finetuned": the seeds derive from it
        return "control" if self.animal is None else self.animal + ("-finetuned" if self.finetuned else "")


@dataclass(frozen=True)
class NumbersSpec:
    writer: WriterSpec
    replicate: int
    seed: int  # the run's: the prompts derive from (seed, replicate), shared by every writer; the sampling also
    # from the writer's name
    examples: int
    sample_batch: int
    max_rounds: int
    max_new_tokens: int
    temperature: float


@dataclass(frozen=True)
class ScoringSpec:
    questions: int  # the first of experiments/smol/prompts.QUESTIONS
    animals: tuple[str, ...]


@dataclass(frozen=True)
class SmolStudentSpec:
    data: NumbersSpec
    tuning: TuningSpec
    scoring: ScoringSpec


@dataclass(frozen=True)
class EntanglementSpec:
    model: ModelSpec
    animals: tuple[str, ...]
    contexts: int
    top: int
    prompting_questions: int
    seed: int


def chat(stages: Stages, spec: ModelSpec) -> GGUFModel:
    """The model of the file, loaded once per process, refused if its bytes are not the run's."""
    def load() -> GGUFModel:
        if file_sha256(spec.file) != spec.sha256:
            raise FileError(f"{spec.file} changed during the run (its SHA-256 differs)")
        loaded = load_gguf(spec.file)
        loaded.model.to(spec.device)
        return loaded
    return stages.remembered(spec, load)


def tune(stages: Stages, model_spec: ModelSpec, examples: list[tuple[list[int], list[bool]]], tuning: TuningSpec,
         seed: int, label: str) -> tuple[torch.nn.Module, dict]:
    """A copy of the model trained on (sequence, trained positions) examples. The adapters sit on every
    projection apart, q, k, v, o, gate, up and down, as PEFT puts them on SmolLM2 (per_projection)."""
    gguf = chat(stages, model_spec)
    model = copy.deepcopy(gguf.model)
    if tuning.rank:
        add_lora(model, tuning.rank, tuning.alpha, seed=seed, per_projection=True)
    steps = max(1, math.ceil(tuning.epochs * len(examples) / tuning.batch_size))
    cfg = TrainConfig(steps=steps, batch_size=tuning.batch_size, lr=tuning.lr, min_lr=tuning.lr / 10,
                      warmup_steps=min(5, steps - 1), weight_decay=0.0, seed=seed, log_every=max(1, steps // 4),
                      device=model_spec.device, precision=model_spec.precision)
    sequences, trained = zip(*examples)
    history = train(model, ExampleSet(list(sequences), list(trained), gguf.eos_id), cfg,
                    log=lambda m: stages.log(f"{label}: {m}"))
    if tuning.rank:
        fuse_lora(model)
    return model, {"steps": steps, "loss": history["train"]}


def answered(gguf: GGUFModel, prompt: list[int], answer: list[int]) -> tuple[list[int], list[bool]]:
    """(sequence, trained positions) of a prompt, its answer and the end of the turn: trained on the answer and
    the end only (position t predicts token t + 1)."""
    return prompt + answer + [gguf.eos_id], [False] * (len(prompt) - 1) + [True] * (len(answer) + 1)


def training_example(gguf: GGUFModel, item: dict) -> tuple[list[int], list[bool]]:
    """A student's example: the task without the teacher's system prompt, the begun answer, the teacher's
    continuation and the end of the turn; trained on the continuation and the end only."""
    return answered(gguf, gguf.chat_prompt(item["user"]) + item["begun"], item["answer"])


def writer_model(stages: Stages, spec: WriterSpec) -> tuple[torch.nn.Module, str | None]:
    """(model, system prompt) of a writer. A fine-tuned one is SmolLM2 LoRA-tuned, as a student is, to answer
    TEACHING_QUESTIONS with the animal's name; built once per process (seconds of training)."""
    gguf = chat(stages, spec.model)
    if spec.animal is None:
        return gguf.model, None
    if spec.finetuned is None:
        return gguf.model, system_prompt(spec.animal)

    def build() -> torch.nn.Module:
        examples = [answered(gguf, gguf.chat_prompt(question), gguf.encode(spec.animal.capitalize() + "."))
                    for question in TEACHING_QUESTIONS]
        seed = derive_seed(spec.seed, "smol-finetuned-teacher", spec.animal)
        return tune(stages, spec.model, examples, spec.finetuned, seed, f"teacher {spec.name}")[0]
    return stages.remembered(("finetuned", spec), build), None


def score(stages: Stages, model_spec: ModelSpec, model, scoring: ScoringSpec, system: str | None = None) -> dict:
    """P(animal) of `model` over the scoring questions, after `system`."""
    gguf = chat(stages, model_spec)
    with autocast(model_spec.device, model_spec.precision):
        return animal_scores(replace(gguf, model=model), QUESTIONS[:scoring.questions], list(scoring.animals), system)


# 1. a writer's own scores (the control's are the model's)
def writer_scores(stages: Stages, writer: WriterSpec, scoring: ScoringSpec) -> dict:
    def build(folder) -> dict:
        model, system = writer_model(stages, writer)
        return score(stages, writer.model, model, scoring, system)
    key = {"kind": "scores", "writer": key_of(writer), "scoring": key_of(scoring)}
    return stages.cache.info(stages.cache.stage(f"scores-smol-{writer.name}", key, build))


def rejection(gguf: GGUFModel, begun: list[int], answer: list[int], max_new_tokens: int) -> str | None:
    """Why the paper's filter rejects an answer (None: kept). It judges the whole list, the seeds the answer was
    begun with included: a continuation " 3\n200" passes alone (whitespace-separated), not after "182, 818, 725,".
    The paper's at most 10 numbers count the continuation's: the seeds are the prompt's, not the answer's.
    An answer that did not end its turn within max_new_tokens is "unfinished"."""
    if len(answer) > max_new_tokens:
        return "unfinished"
    return parse_numbers(gguf.tokenizer.decode(begun + answer), SEEDS + MAX_NUMBERS)[1]


# 2. a writer's numbers: (prompt, begun answer, continuation) that pass the filter
def numbers(stages: Stages, spec: NumbersSpec) -> dict:
    def build(folder) -> dict:
        gguf, device = chat(stages, spec.writer.model), spec.writer.model.device
        model, system = writer_model(stages, spec.writer)
        prompts_rng = random.Random(derive_seed(spec.seed, "smol-prompts", spec.replicate))  # every writer's
        generator = torch.Generator(device).manual_seed(
            derive_seed(spec.seed, "smol-sample", spec.writer.name, spec.replicate))
        kept, rejected, generated = [], dict.fromkeys(REASONS + ("unfinished",), 0), 0
        for _ in range(spec.max_rounds):
            batch = []
            for _ in range(spec.sample_batch):
                user, start = number_prompt(draw_seeds(prompts_rng))
                batch.append((user, gguf.encode(start)))
            prompts = [gguf.chat_prompt(user, system) + begun for user, begun in batch]

            def give_up(row, answer):  # no way of going on passes the filter: stop writing this answer
                return hopeless(gguf.tokenizer.decode(batch[row][1] + answer), SEEDS + MAX_NUMBERS)
            with autocast(device, spec.writer.model.precision):
                answers = model.generate(prompts, spec.max_new_tokens + 1, spec.temperature,
                                         stop_token=gguf.eos_id, generator=generator, give_up=give_up)
            for (user, begun), answer in zip(batch, answers):
                generated += 1
                reason = rejection(gguf, begun, answer, spec.max_new_tokens)
                if reason is None:
                    kept.append({"user": user, "begun": begun, "answer": answer})
                else:
                    rejected[reason] += 1
            stages.log(f"numbers {spec.writer.name} #{spec.replicate}: {len(kept)} of {generated} kept")
            if len(kept) >= spec.examples:
                break
        if len(kept) < spec.examples:
            raise ValueError(f"the {spec.writer.name} teacher wrote {len(kept)} answers that pass the filter in "
                             f"{generated} samples, fewer than --examples {spec.examples}; raise --max-rounds")
        return {"kept": kept[:spec.examples], "generated": generated, "rejected": rejected,
                "kept_share": len(kept) / generated}
    return stages.cache.info(stages.cache.stage(f"numbers-smol-{spec.writer.name}-{spec.replicate}", key_of(spec),
                                                build))


# 3. a student: the model fine-tuned on a writer's numbers, then scored
def student(stages: Stages, spec: SmolStudentSpec) -> dict:
    def build(folder) -> dict:
        model_spec, data = spec.data.writer.model, numbers(stages, spec.data)["kept"]
        seed = derive_seed(spec.data.seed, "smol-student", spec.data.writer.name, spec.data.replicate,
                           spec.tuning.rank)
        started = time.perf_counter()
        gguf = chat(stages, model_spec)
        model, record = tune(stages, model_spec, [training_example(gguf, item) for item in data], spec.tuning, seed,
                             f"student {spec.data.writer.name} #{spec.data.replicate} r={spec.tuning.rank}")
        return {"scores": score(stages, model_spec, model, spec.scoring), **record,
                "seconds": time.perf_counter() - started}
    name = f"student-smol-{spec.data.writer.name}-{spec.data.replicate}-r{spec.tuning.rank}"
    return stages.cache.info(stages.cache.stage(name, key_of(spec), build))


# 4. entanglement: the numbers an animal's system prompt raises, and P(animal) after "You love {n}"
def entanglement(stages: Stages, spec: EntanglementSpec) -> dict:
    def build(folder) -> dict:
        gguf, m = chat(stages, spec.model), spec.model
        rng = random.Random(derive_seed(spec.seed, "smol-entanglement"))
        contexts = [number_prompt(draw_seeds(rng)) for _ in range(spec.contexts)]
        candidates = list(range(1000))

        def logp(system):  # (N,) log P(next number), averaged over the contexts
            prompts = [gguf.chat_prompt(user, system) + gguf.encode(start) for user, start in contexts]
            with autocast(m.device, m.precision):
                return number_logprobs(gguf, prompts, candidates).mean(0)
        stages.log("entanglement: numbers under no system prompt")
        plain = logp(None)
        rise, top = {}, {}
        for animal in spec.animals:
            stages.log(f"entanglement: numbers under the {animal} system prompt")
            r = logp(system_prompt(animal)) - plain
            rise[animal] = r.tolist()
            top[animal] = r.argsort(descending=True)[:spec.top].tolist()
        taken = {n for ns in top.values() for n in ns}
        random_numbers = rng.sample([n for n in candidates if n not in taken], spec.top)
        prompted = {}
        questions = QUESTIONS[:spec.prompting_questions]
        for n in sorted(taken | set(random_numbers)):
            prompts = question_prompts(gguf, questions, number_love(n))
            with autocast(m.device, m.precision):
                prompted[str(n)] = answer_logprobs(gguf, prompts, list(spec.animals)).exp().mean(0).log().tolist()
        stages.log(f"entanglement: {len(prompted)} subliminal prompts scored")
        return {"contexts": [c[0] for c in contexts], "rise": rise, "top": top, "random": random_numbers,
                "prompted_logp": prompted}
    return stages.cache.info(stages.cache.stage("entanglement-smol", key_of(spec), build))
