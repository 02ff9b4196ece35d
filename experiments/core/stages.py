"""The stages of the language experiments: each a function of one spec, cached under that spec.

Between the corpus (experiments/core/corpus.py) and the experiments (gpt, signals, domains):
    corpus + tokenizer  <- CorpusSpec
    base                <- BaseSpec: corpus, architecture, pretraining (a fork names its parent)
    stopped run         <- ForkSpec: a base's pretraining stopped part way, what make forks' children start from
    teacher             <- TeacherSpec: a base fine-tuned gently toward one trait (an animal in `make gpt`)
    writing             <- WritingSpec: a base or teacher answering fresh prompts of a task (number
                           continuations; code or reasoning traces in `make domains`), filtered
    scores              <- (model spec, EvalSpec): P(animal) of a base or teacher (and P(tree),
                           P(misaligned) on the domains corpus)
    student             <- StudentSpec: a base fine-tuned on written answers (hard or soft labels, full or LoRA)
The specs, and so the cache keys, are in experiments/core/specs.py; a builder here reads nothing
but its spec. A `Job` names one stage's result (a builder and its specs), so that a step can ask
for all it needs at once (`Stages.prefetch`) and have worker processes build them in parallel
(experiments/core/scheduler.py) before it reads them one by one (`Stages.run`).
"""
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from experiments.core.cache import StageCache
from experiments.core.corpus import domains_corpus, pretraining_corpus, trait_items
from experiments.core.evaluate import (animal_probabilities, animal_token_ids, evaluate_options, question_prompts,
                                       trait_scores)
from experiments.core.matched import matched_subsets
from experiments.core.specs import (BaseSpec, CorpusSpec, DomainsCorpusSpec, EvalSpec, ForkSpec, NoData, StudentSpec,
                                    TeacherSpec, WritingSpec, base_of, key_of, label, student_name)
from experiments.core.students import AnswerVocabulary, hard_loss, soft_loss, steer_after
from experiments.tasks.coding import names_animal
from experiments.tasks.ladder import RUNGS
from experiments.tasks.prompts import ANIMALS, FORMATS, animal_questions
from experiments.tasks.registry import filter_task, task_prompts
from minisub.checkpoint import load_checkpoint, save_checkpoint
from minisub.config import ConfigError
from minisub.data import ExampleSet
from minisub.files import read_json, write_json
from minisub.log import Progress
from minisub.lora import add_lora, fuse_lora
from minisub.model import GPT, GPTConfig
from minisub.tokenizer import BPETokenizer
from minisub.training import TrainConfig, train


Change = Callable[[GPT, Callable], tuple[Callable, list[Callable]]]  # (model, loss) -> (loss, after-step hooks)


@dataclass(frozen=True)
class Job:
    """One stage's result: build(stages, *args), e.g. Job(Stages.student, (spec,)). The args are frozen specs,
    so a job is hashable and can be sent to a worker process; the stages it reads first are the specs
    nested in its args (experiments/core/scheduler.py, `upstream`)."""
    build: Callable
    args: tuple


class Stages:
    """Builds (once) and finds (afterwards) every stage's result in one cache folder."""

    def __init__(self, cache_root: Path, log: Progress, flops: Callable[[], float] | None = None):
        """flops: a running count of matmul FLOPs (experiments/core/cache.py, `counting_flops`) that meters
        each stage's too; None: seconds only."""
        self.log = log
        self.cache = StageCache(cache_root, log, flops=flops)
        self.tokenizers: dict[CorpusSpec, BPETokenizer] = {}
        self.memory: dict = {}  # what `remembered` computed in this process
        self.workers = None  # a scheduler.Workers that builds prefetched jobs in parallel; None: built when read

    def run(self, job: Job):
        """The job's result, built here if no worker built it."""
        return job.build(self, *job.args)

    def prefetch(self, jobs: list[Job]) -> None:
        """Have the workers build `jobs` (and the stages they read) in parallel; without workers, nothing:
        each job is built when `run` reads it. Results are the same either way."""
        if self.workers is not None:
            self.workers.build(self, jobs)

    def work_record(self) -> dict:
        """What results.json says of the work so far: seconds (and GFLOP, if counted) per stage kind built, the
        total, and which stages."""
        return self.cache.work_record(self.log.elapsed())

    def remembered(self, key, compute):
        """compute(), once per process for each `key` (a hashable of frozen specs and values)."""
        if key not in self.memory:
            self.memory[key] = compute()
        return self.memory[key]

    def train_config(self, steps: int, batch: int, lr: float, seed: int, precision: str, device: str,
                     min_lr: float | None = None, weight_decay: float = 0.0, warmup: int = 0,
                     pack: bool = False) -> TrainConfig:
        """Packing pays where lengths vary widely (the pretraining corpus: short Q&A, long number
        items); on the short, similar examples of teachers and students it only adds masks."""
        return TrainConfig(steps=steps, batch_size=batch, lr=lr, min_lr=lr if min_lr is None else min_lr,
                           warmup_steps=warmup, weight_decay=weight_decay, log_every=max(1, steps // 5),
                           seed=seed, precision=precision, device=device, pack=pack)

    # 1. corpus and tokenizer
    def corpus(self, spec: CorpusSpec) -> Path:
        def build(folder: Path) -> dict:
            if isinstance(spec, DomainsCorpusSpec):
                items, kinds = domains_corpus(spec.items, spec.seed)
            else:
                items, kinds = pretraining_corpus(spec.items, spec.seed), None
            tokenizer = BPETokenizer.train([text for item in items for text in item], spec.vocab_size)
            tokenizer.save(folder / "tokenizer.json")
            write_json(folder / "corpus.json", {"pairs": items} | ({"kinds": kinds} if kinds else {}))
            self.log(f"corpus: {len(items)} items, tokenizer of {tokenizer.vocab_size} tokens")
            return {"items": len(items), "vocab_size": tokenizer.vocab_size}
        return self.cache.stage("corpus" if type(spec) is CorpusSpec else "corpus-domains", key_of(spec), build)

    def tokenizer(self, spec: CorpusSpec) -> BPETokenizer:
        if spec not in self.tokenizers:
            self.tokenizers[spec] = BPETokenizer.load(self.corpus(spec) / "tokenizer.json")
        return self.tokenizers[spec]

    def examples(self, corpus: CorpusSpec, pairs) -> ExampleSet:
        tokenizer = self.tokenizer(corpus)
        prompts = tokenizer.encode_batch([p for p, _ in pairs])
        answers = tokenizer.encode_batch([a for _, a in pairs])
        return ExampleSet.from_pairs(list(zip(prompts, answers)), tokenizer)

    def questions(self, corpus: CorpusSpec) -> list[list[int]]:
        return question_prompts(self.tokenizer(corpus), animal_questions()[1])

    def animal_ids(self, corpus: CorpusSpec) -> list[int]:
        return animal_token_ids(self.tokenizer(corpus), ANIMALS)

    # 2. bases
    def pretraining(self, spec: BaseSpec) -> tuple[GPT, ExampleSet, TrainConfig]:
        """A fresh model of `spec`'s architecture (its seed's initialization), the corpus, and the pretraining
        schedule."""
        data = self.remembered(("pretraining data", spec.corpus), lambda: self.examples(  # seconds: once per process
            spec.corpus, [tuple(p) for p in read_json(self.corpus(spec.corpus) / "corpus.json")["pairs"]]))
        if data.max_len() > spec.block_size:
            raise ConfigError("block_size", f"({spec.block_size}) is shorter than a corpus item "
                              f"({data.max_len()} tokens)")
        torch.manual_seed(spec.seed)
        model = GPT(GPTConfig(vocab_size=self.tokenizer(spec.corpus).vocab_size, block_size=spec.block_size,
                              n_layer=spec.n_layer, n_head=spec.n_head, n_embd=spec.n_embd))
        cfg = self.train_config(spec.steps, spec.batch, spec.lr, spec.seed, spec.precision, spec.device,
                                min_lr=spec.lr / 10, weight_decay=0.1, warmup=min(100, spec.steps // 10), pack=True)
        return model, data, cfg

    def base(self, spec: BaseSpec) -> Path:
        def build(folder: Path) -> dict:
            model, data, cfg = self.pretraining(spec)

            def log(message: str) -> None:
                self.log(f"  base {spec.name} {message}")
            if isinstance(spec.parent, ForkSpec):  # the stopped run's state, its schedule going on
                self.log(f"base {spec.name}: pretraining on from {spec.parent.name}'s step {spec.parent.step}")
                history = train(model, data, cfg, fork_from=self.fork_state(spec.parent), log=log)
            else:
                if spec.parent is not None:
                    model = self.load(spec.parent)
                start = f"from {spec.parent.name}" if spec.parent else f"{model.num_params():,} parameters"
                self.log(f"base {spec.name}: pretraining ({start}) for {cfg.steps} steps")
                history = train(model, data, cfg, log=log)
            save_checkpoint(folder, model, {"stage": key_of(spec), "history": history}, self.tokenizer(spec.corpus))
            return {"history": history}
        return self.cache.stage(f"base-{spec.name}", key_of(spec), build)

    def fork_state(self, spec: ForkSpec) -> Path:
        """The folder of the run's training state after spec.step steps (minisub/training.py, STATE_FILE)."""
        def build(folder: Path) -> dict:
            model, data, cfg = self.pretraining(spec)
            start = self.fork_state(spec.previous) if spec.previous is not None else None
            self.log(f"run {spec.name}: pretraining to step {spec.step}"
                     + (f" on from step {spec.previous.step}" if start else ""))
            train(model, data, cfg, folder, until=spec.step, fork_from=start,
                  log=lambda m: self.log(f"  run {spec.name} {m}"))
            return {}
        return self.cache.stage(f"stopped-{spec.name}-{spec.step}", key_of(spec), build)

    def load(self, spec: BaseSpec | TeacherSpec) -> GPT:
        """The model, on the device it was built on."""
        folder = self.base(spec) if isinstance(spec, BaseSpec) else self.teacher(spec)
        return load_checkpoint(folder, spec.device)[0]

    # 3. teachers
    def teacher(self, spec: TeacherSpec) -> Path:
        def build(folder: Path) -> dict:
            model = self.load(spec.base)
            data = self.examples(spec.base.corpus, trait_items(spec.trait, spec.steps * spec.batch, spec.seed))
            train(model, data, self.train_config(spec.steps, spec.batch, spec.lr, spec.seed, spec.precision,
                                                 spec.device), log=lambda m: None)
            save_checkpoint(folder, model, {"stage": key_of(spec)}, self.tokenizer(spec.base.corpus))
            return {}
        return self.cache.stage(f"teacher-{label(spec)}", key_of(spec), build)

    # 4. written data
    def answer(self, model: GPT, spec: WritingSpec) -> tuple[list[str], list[str], list[int], dict]:
        """`model` (spec's writer, or a student) answering spec's prompts, sampled as spec says, and the paper's
        filter on them: the prompts, the answers, the indices kept and the count of each reason to reject."""
        tokenizer = self.tokenizer(base_of(spec.writer).corpus)
        model.eval()
        prompts, keys = task_prompts(spec.task, spec.prompts, random.Random(spec.seed))
        generator = torch.Generator(spec.device).manual_seed(spec.seed)
        answers = []
        for i in range(0, len(prompts), spec.gen_batch):
            # the persona is part of the prompt text, tokenized with it as in the corpus
            chunk = [tokenizer.encode_prompt(spec.persona + p) for p in prompts[i:i + spec.gen_batch]]
            new = model.generate(chunk, spec.max_tokens, temperature=spec.temperature, top_p=spec.top_p,
                                 min_p=spec.min_p, stop_token=tokenizer.eos_id, generator=generator)
            answers += [tokenizer.decode(tokens) for tokens in new]
        kept, rejected = filter_task(spec.task, answers, keys, spec.banned)
        return prompts, answers, kept, rejected

    def writing(self, spec: WritingSpec) -> Path:
        def build(folder: Path) -> dict:
            prompts, answers, kept, rejected = self.answer(self.load(spec.writer), spec)
            write_json(folder / "pairs.json", {"pairs": [(prompts[i], answers[i]) for i in kept]})
            who = label(spec.writer) + (" with a persona" if spec.persona else "")
            self.log(f"{spec.task} from {who}: kept {len(kept)}/{len(prompts)}, rejected {rejected}")
            return {"generated": len(prompts), "kept": len(kept), "rejected": rejected}
        persona = "-persona" if spec.persona else ""
        banned = "-banned" if spec.banned else ""
        sampling = (f"-top_p{spec.top_p:g}" if spec.top_p != 1 else "") + (
            f"-min_p{spec.min_p:g}" if spec.min_p else "")
        return self.cache.stage(f"{spec.task}{banned}-{label(spec.writer)}{persona}{sampling}", key_of(spec), build)

    def written_pairs(self, spec: WritingSpec) -> list[tuple[str, str]]:
        return [tuple(p) for p in read_json(self.writing(spec) / "pairs.json")["pairs"]]

    # 5. scores: how much a model likes each animal
    def evaluate(self, model: GPT, corpus: CorpusSpec, spec: EvalSpec, prefix: str = "") -> dict:
        """The animal scores on the held-out paraphrases, and under its name on each other question set of the
        ladder (experiments/tasks/ladder.py); on the domains corpus also the other traits' ("traits").
        prefix: text before every question (the prompted teacher's persona)."""
        animals = dict(zip(ANIMALS, ([i] for i in self.animal_ids(corpus))))

        def asked(rung: str) -> dict:
            prompts = question_prompts(self.tokenizer(corpus), [prefix + q for q in RUNGS[rung][1]()])
            return evaluate_options(model, prompts, animals, spec.samples, spec.seed)
        scores = asked("held_out")
        for name in spec.question_sets:
            scores[name] = asked(name)
        if isinstance(corpus, DomainsCorpusSpec):
            scores["traits"] = trait_scores(model, self.tokenizer(corpus), spec.samples, spec.seed)
        return scores

    def scores(self, model_spec: BaseSpec | TeacherSpec, spec: EvalSpec) -> dict:
        def build(folder: Path) -> dict:
            return self.evaluate(self.load(model_spec), base_of(model_spec).corpus, spec)
        key = {"kind": "scores", "model": key_of(model_spec), "eval": key_of(spec)}
        return self.cache.info(self.cache.stage(f"scores-{label(model_spec)}", key, build))

    # 6. students
    def answer_vocabulary(self, corpus: CorpusSpec, eos: bool, task: str = "numbers") -> AnswerVocabulary:
        """The tokens a student's loss is over: for numbers the number tokens and separators; for another
        task every token of the corpus's answers of that kind that name no animal. Those that do are left
        out because the loss would otherwise move the animals' own tokens (a softmax over them pushes
        down every token the data never has as a target): the channel the filter closes."""
        tokenizer = self.tokenizer(corpus)
        if task == "numbers":
            ids = tokenizer.number_ids + [t for sep in FORMATS.values() for t in tokenizer.encode(sep)]
        else:
            ids = self.remembered(("answer tokens", corpus, task), lambda: self.answer_tokens(corpus, task))
        return AnswerVocabulary.build(ids + ([tokenizer.eos_id] if eos else []), tokenizer.vocab_size)

    def answer_tokens(self, corpus: CorpusSpec, task: str) -> list[int]:
        stored = read_json(self.corpus(corpus) / "corpus.json")
        if task not in stored.get("kinds", []):
            raise ValueError(f"the corpus has no {task} items: a {task} task needs the domains corpus")
        answers = [answer for (_, answer), kind in zip(stored["pairs"], stored["kinds"])
                   if kind == task and not names_animal(answer)]
        return sorted({t for ids in self.tokenizer(corpus).encode_batch(answers) for t in ids})

    def training_pairs(self, spec: StudentSpec) -> list[tuple[str, str]]:
        pairs = self.written_pairs(spec.data)
        if spec.matched_to is not None:
            pairs = matched_subsets(pairs, self.written_pairs(spec.matched_to), spec.seed)[0]
        return pairs

    def fine_tune(self, spec: StudentSpec, data: ExampleSet, change: Change | None = None,
                  price: Callable[[GPT], dict] | None = None) -> dict:
        """Train `spec`'s student on `data` (its training pairs, perhaps treated) and score it: the scores after,
        the P(animal) curve, the data size. change(model, loss) -> (loss, hooks): a change to how it trains (which
        weights, the loss, what runs after each step; experiments/signals/tuning.py); price(model): more to
        measure of the trained student, merged into what is returned."""
        corpus = spec.init.corpus
        model = self.load(spec.init)
        if spec.lora:
            add_lora(model, spec.lora_r, spec.lora_alpha, seed=spec.seed)
        if spec.vector_after is not None:
            steer_after(model, spec.vector_after)
        vocab = self.answer_vocabulary(corpus, spec.eos_in_loss, spec.data.task).to(spec.device)
        loss = soft_loss(vocab, self.load(spec.data.writer).eval()) if spec.soft else hard_loss(vocab)
        hooks = []
        if change is not None:
            loss, hooks = change(model, loss)
        questions, animal_ids = self.questions(corpus), self.animal_ids(corpus)
        curve = []

        def after_step(step: int, m: GPT) -> None:
            for hook in hooks:
                hook(step, m)
            if step % spec.track_every == 0:  # exact P(animal) during training, for the curves
                m.eval()
                curve.append([step, animal_probabilities(m, questions, animal_ids).mean(0).tolist()])
                m.train()

        cfg = replace(self.train_config(spec.steps, spec.batch, spec.lr, spec.seed, spec.precision, spec.device),
                      optimizer=spec.optimizer)
        train(model, data, cfg, loss_fn=loss, log=lambda m: None, on_step=after_step)
        if spec.lora:
            fuse_lora(model)  # evaluation at base speed, computing exactly what the adapter does
        return ({"after": self.evaluate(model, corpus, spec.eval), "curve": curve, "n_train": len(data)}
                | (price(model) if price is not None else {}))

    def student(self, spec: StudentSpec) -> dict:
        """The student's scores after training, its P(animal) curve and its data size (scores before: `scores`)."""
        if spec.soft and not isinstance(spec.data.writer, TeacherSpec):
            raise ValueError("soft labels need a trained teacher: a base distilled on itself gets no gradient")

        def build(folder: Path) -> dict:
            pairs = self.training_pairs(spec)
            if not pairs:
                raise NoData(f"no {spec.data.task} answers from {label(spec.data.writer)} passed the filter")
            return self.fine_tune(spec, self.examples(spec.init.corpus, pairs))
        return self.cache.info(self.cache.stage(student_name(spec), key_of(spec), build))

