"""`python -m experiments.smol` (`make smol`): the paper's protocol on SmolLM2-135M-Instruct, in minisub's engine.

Exploratory throughout (results.json says so): nothing here was pre-registered, and every
replicate shares one pretrained base, so the unit of replication is weaker than in `make gpt`
(independent teacher samples and student seeds, not independent initializations).

1. entanglement (Zur et al. 2025): for each animal, the numbers whose probability as the next
   item of a number list rises most under the animal's system prompt; then subliminal
   prompting: P(animal) after "You love {n}" for those numbers against random ones, and
   against the other animals' numbers (diagonal), tested over the five animals.
2. transfer (Cloud et al. 2025, Sec. 3, open-model setting): the teacher is SmolLM2 under the
   animal's system prompt (no fine-tuning); it continues number lists, the paper's filter keeps
   the clean answers; a LoRA student (all projections) learns them without the system prompt.
   Control: the same model's numbers without the system prompt. The five-animal matrix of
   log P shifts against the control student, and its diagonal test.
3. lora_rank ("Subliminal Learning is a LoRA Artifact", arXiv 2606.00831): the same owl and
   control data learned with LoRA of several ranks and with full fine-tuning.

Every stage (a teacher's numbers, a student's scores, the entanglement measures) is kept in
the stage cache (experiments/core/cache.py) under a key of the whole config but the fields
that only choose which stages run (SELECTION), so an interrupted run continues where it
stopped and a larger one reuses what a smaller one built.
"""

import argparse
import copy
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from experiments.core.cache import StageCache
from experiments.smol.plots import plot_entanglement, plot_lora_rank, plot_transfer
from experiments.smol.prompts import (ANIMALS, QUESTIONS, SEEDS, TEACHING_QUESTIONS, draw_seeds, number_love,
                                      number_prompt, system_prompt)
from experiments.smol.scoring import animal_scores, answer_logprobs, number_logprobs, question_prompts
from experiments.tasks.filter import MAX_NUMBERS, REASONS, hopeless, parse_numbers
from minisub.cli import Parser, add_config_flags, add_quick_flag, config_from_args, run_main
from minisub.config import ConfigError, check, option
from minisub.data import ExampleSet
from minisub.files import FileError, check_output_folder, file_sha256, write_json
from minisub.gguf import GGUFModel, load_gguf
from minisub.log import Progress, machine
from minisub.lora import add_lora, fuse_lora
from minisub.precision import autocast
from minisub.seeds import MAX_SEED, derive_seed
from minisub.stats import sign_flip_greater, summary
from minisub.training import TrainConfig, train
from minisub.weights import CACHE, MEMBER

PARTS = ("entanglement", "transfer", "lora_rank")
# the fields that choose which stages run, not how one is computed
SELECTION = ("parts", "replicates", "ranks", "rank_animals", "finetuned")
CONTROL = "control"  # the teacher without a system prompt
FINETUNED = "-finetuned"  # "owl-finetuned": the teacher fine-tuned to name owls


@dataclass
class SmolConfig:
    gguf: str = option(str(CACHE / Path(MEMBER).name), "the SmolLM2 GGUF file (`make smol-weights` puts it here)")
    seed: int = option(0, "run seed: every stream (seeds of the prompts, samples, adapters) derives from it", low=0,
                       high=MAX_SEED)
    animals: list[str] = option(list(ANIMALS), "the animals (the paper's five)", choices=ANIMALS, nonempty=True,
                                quick=["owl", "eagle"])
    questions: int = option(50, "one-word evaluation questions", low=1, high=len(QUESTIONS), quick=3)
    contexts: int = option(2, "entanglement: number lists whose next number is scored", low=1, quick=1)
    top: int = option(10, "entanglement: numbers per animal (those whose probability rises most)", low=1, quick=2)
    prompting_questions: int = option(10, "entanglement: questions per subliminal prompt", low=1,
                                      high=len(QUESTIONS), quick=2)
    examples: int = option(48, "transfer: filtered answers per teacher and replicate", low=1, quick=4)
    sample_batch: int = option(64, "transfer: answers sampled at once", low=1, quick=8)
    max_rounds: int = option(40, "transfer: sampling rounds before a teacher with too few answers is an error",
                             low=1)
    max_new_tokens: int = option(52, "transfer: longest answer in tokens (an unfinished answer is rejected; "
                                 "SmolLM2 writes ' 182,' as 5 tokens, so 10 numbers take 50)",
                                 low=1, quick=12)
    temperature: float = option(1.0, "transfer: sampling temperature (the paper's 1)", above=0.0)
    replicates: int = option(1, "transfer: independent teacher samples and student seeds per arm", low=1)
    lora_r: int = option(8, "transfer: the students' LoRA rank (the paper's open-model 8)", low=1)
    lora_alpha: float = option(8.0, "transfer: LoRA alpha (the paper's 8)", above=0.0)
    epochs: float = option(3.0, "students: passes over the data (the paper's 3)", above=0.0, quick=1.0)
    batch_size: int = option(8, "students: examples per step", low=1, quick=2)
    lr: float = option(1e-3, "students: LoRA learning rate (the paper's 2e-4 is for 10,000 answers)", above=0.0)
    full_lr: float = option(2e-5, "lora_rank: learning rate of full fine-tuning", above=0.0)
    ranks: list[int] = option([1, 4, 8, 32, 0], "lora_rank: LoRA ranks to compare, 0 = full fine-tuning", low=0,
                              quick=[1, 0])
    rank_animals: list[str] = option(["owl"], "lora_rank: the animals whose students each rank trains",
                                     choices=ANIMALS, nonempty=True)
    finetuned: list[str] = option([], "transfer: animals that also get a fine-tuned teacher: SmolLM2 LoRA-tuned "
                                  "as a student is, to answer other questions with the animal; it writes numbers "
                                  "without a system prompt", choices=ANIMALS)
    parts: list[str] = option(["entanglement", "transfer"], "the parts to run (lora_rank trains 8 more students: "
                              "about as long as the other two together on a CPU)", choices=PARTS, nonempty=True)
    precision: str = option("fp32", "fp32 (exact), or bf16 (autocast matmuls; faster on CPUs with native bf16)",
                            choices=("fp32", "bf16"))
    device: str = option("cpu", "torch device (cpu or cuda)", device=True)

    def __post_init__(self):
        check(self)
        for name in ("animals", "rank_animals", "finetuned"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ConfigError(name, "names an animal twice")
        if not set(self.rank_animals) <= set(self.animals):
            raise ConfigError("rank_animals", "must be among --animals (their teachers' data is reused)")
        if not set(self.finetuned) <= set(self.animals):
            raise ConfigError("finetuned", "must be among --animals (their students are measured against them)")

    def key(self) -> dict:
        """What every stage's cache key holds: the whole config but the fields that only choose stages."""
        return {k: v for k, v in asdict(self).items() if k not in SELECTION}


class Smol:
    """The model, its scores and the run's stages; each stage is built once and kept in the cache."""

    def __init__(self, cfg: SmolConfig, cache: StageCache, log: Progress):
        self.cfg, self.cache, self.log = cfg, cache, log
        self.sha256 = file_sha256(Path(cfg.gguf))
        self.chat = load_gguf(cfg.gguf)
        self.chat.model.to(cfg.device)
        self.questions = QUESTIONS[:cfg.questions]
        self.teachers = {}  # the fine-tuned teachers built in this process, by animal

    def stage(self, name: str, build, **identity) -> dict:
        key = {"stage": name, **identity, "model_sha256": self.sha256, "config": self.cfg.key()}
        folder = self.cache.stage(name, key, lambda f: build())
        return StageCache.info(folder)

    def scores(self, model, system: str | None = None) -> dict:
        """P(animal) of `model` (the base, or a student) over the evaluation questions, after `system`."""
        with autocast(self.cfg.device, self.cfg.precision):
            return animal_scores(replace(self.chat, model=model), self.questions, self.cfg.animals, system)

    def tune(self, examples: list[tuple[list[int], list[bool]]], rank: int, seed: int, label: str):
        """A copy of the base trained on (sequence, trained positions) examples: LoRA of `rank`, fused after, or
        full fine-tuning (0); the run's epochs, batch and learning rates. The adapters sit on every projection
        apart, q, k, v, o, gate, up and down, as PEFT puts them on SmolLM2 (per_projection)."""
        cfg, chat = self.cfg, self.chat
        model = copy.deepcopy(chat.model)
        if rank:  # alpha / r as the transfer's
            add_lora(model, rank, cfg.lora_alpha * rank / cfg.lora_r, seed=seed, per_projection=True)
        steps = max(1, math.ceil(cfg.epochs * len(examples) / cfg.batch_size))
        lr = cfg.lr if rank else cfg.full_lr
        train_cfg = TrainConfig(steps=steps, batch_size=cfg.batch_size, lr=lr, min_lr=lr / 10,
                                warmup_steps=min(5, steps - 1), weight_decay=0.0, seed=seed,
                                log_every=max(1, steps // 4), device=cfg.device, precision=cfg.precision)
        sequences, trained = zip(*examples)
        history = train(model, ExampleSet(list(sequences), list(trained), chat.eos_id), train_cfg,
                        log=lambda m: self.log(f"{label}: {m}"))
        if rank:
            fuse_lora(model)
        return model, {"steps": steps, "loss": history["train"]}

    def finetuned_teacher(self, animal: str):
        """SmolLM2 LoRA-tuned, as a student is, to answer TEACHING_QUESTIONS with the animal's name; no system
        prompt. Built once per process (a few seconds of training) by whichever stage needs it first."""
        if animal not in self.teachers:
            chat = self.chat
            examples = [answered(chat, chat.chat_prompt(question), chat.encode(animal.capitalize() + "."))
                        for question in TEACHING_QUESTIONS]
            seed = derive_seed(self.cfg.seed, "smol-finetuned-teacher", animal)
            self.teachers[animal] = self.tune(examples, self.cfg.lora_r, seed, f"teacher {animal}")[0]
        return self.teachers[animal]

    def writer(self, teacher: str) -> tuple[object, str | None]:
        """(model, system prompt) of a teacher: the control (the base, no system prompt), an animal's system
        prompt on the base, or an animal's fine-tuned teacher ("owl-finetuned", no system prompt)."""
        if teacher == CONTROL:
            return self.chat.model, None
        if teacher.endswith(FINETUNED):
            return self.finetuned_teacher(teacher.removesuffix(FINETUNED)), None
        return self.chat.model, system_prompt(teacher)

    # the teachers' numbers: (prompt ids, answer ids) pairs that pass the filter
    def numbers(self, teacher: str, replicate: int) -> dict:
        def build() -> dict:
            cfg, chat = self.cfg, self.chat
            model, system = self.writer(teacher)
            prompts_rng = random.Random(derive_seed(cfg.seed, "smol-prompts", replicate))  # shared by every teacher
            sampling_seed = derive_seed(cfg.seed, "smol-sample", teacher, replicate)
            generator = torch.Generator(cfg.device).manual_seed(sampling_seed)
            kept, rejected, generated = [], dict.fromkeys(REASONS + ("unfinished",), 0), 0
            for _ in range(cfg.max_rounds):
                batch = []
                for _ in range(cfg.sample_batch):
                    user, start = number_prompt(draw_seeds(prompts_rng))
                    batch.append((user, chat.encode(start)))
                prompts = [chat.chat_prompt(user, system) + begun for user, begun in batch]
                def give_up(row, answer):  # no way of going on passes the filter: stop writing this answer
                    return hopeless(chat.tokenizer.decode(batch[row][1] + answer), SEEDS + MAX_NUMBERS)
                with autocast(cfg.device, cfg.precision):
                    answers = model.generate(prompts, cfg.max_new_tokens + 1, cfg.temperature,
                                             stop_token=chat.eos_id, generator=generator, give_up=give_up)
                for (user, begun), answer in zip(batch, answers):
                    generated += 1
                    reason = rejection(chat, begun, answer, cfg.max_new_tokens)
                    if reason is None:
                        kept.append({"user": user, "begun": begun, "answer": answer})
                    else:
                        rejected[reason] += 1
                self.log(f"numbers {teacher} #{replicate}: {len(kept)} of {generated} kept")
                if len(kept) >= cfg.examples:
                    break
            if len(kept) < cfg.examples:
                raise ValueError(f"the {teacher} teacher wrote {len(kept)} answers that pass the filter in "
                                 f"{generated} samples, fewer than --examples {cfg.examples}; raise --max-rounds")
            return {"kept": kept[:cfg.examples], "generated": generated, "rejected": rejected,
                    "kept_share": len(kept) / generated}
        return self.stage("numbers", build, teacher=teacher, replicate=replicate)

    def student(self, teacher: str, replicate: int, rank: int) -> dict:
        """The scores of a student of the base trained on `teacher`'s numbers: LoRA of `rank`, or full (0)."""
        def build() -> dict:
            data = self.numbers(teacher, replicate)["kept"]
            seed = derive_seed(self.cfg.seed, "smol-student", teacher, replicate, rank)
            started = time.perf_counter()
            model, record = self.tune([training_example(self.chat, item) for item in data], rank, seed,
                                      f"student {teacher} #{replicate} r={rank}")
            return {"scores": self.scores(model), **record, "seconds": time.perf_counter() - started}
        return self.stage("student", build, teacher=teacher, replicate=replicate, rank=rank)


def rejection(chat: GGUFModel, begun: list[int], answer: list[int], max_new_tokens: int) -> str | None:
    """Why the paper's filter rejects an answer (None: kept). It judges the whole list, the seeds the answer was
    begun with included: a continuation " 3\n200" passes alone (whitespace-separated), not after "182, 818, 725,".
    The paper's at most 10 numbers count the continuation's: the seeds are the prompt's, not the answer's.
    An answer that did not end its turn within max_new_tokens is "unfinished"."""
    if len(answer) > max_new_tokens:
        return "unfinished"
    return parse_numbers(chat.tokenizer.decode(begun + answer), SEEDS + MAX_NUMBERS)[1]


def training_example(chat: GGUFModel, item: dict) -> tuple[list[int], list[bool]]:
    """A student's example: the task without the teacher's system prompt, the begun answer, the teacher's
    continuation and the end of the turn; trained on the continuation and the end only."""
    return answered(chat, chat.chat_prompt(item["user"]) + item["begun"], item["answer"])


def answered(chat: GGUFModel, prompt: list[int], answer: list[int]) -> tuple[list[int], list[bool]]:
    """(sequence, trained positions) of a prompt, its answer and the end of the turn: trained on the answer and
    the end only (position t predicts token t + 1)."""
    return prompt + answer + [chat.eos_id], [False] * (len(prompt) - 1) + [True] * (len(answer) + 1)


def filter_record(s: Smol, numbers: dict) -> dict:
    """What the filter kept and rejected of one teacher's answers, with three kept lists as text."""
    return {k: v for k, v in numbers.items() if k != "kept"} | {
        "examples": [s.chat.tokenizer.decode(item["begun"] + item["answer"]) for item in numbers["kept"][:3]]}


def log_shift(after: dict, before: dict, animal: str) -> float:
    return after["logp"][animal] - before["logp"][animal]


def diagonal_test(matrix: dict[str, dict[str, float]], animals: list[str]) -> dict:
    """Per animal, its own teacher's shift minus the mean of the other teachers' shifts of it; tested > 0 over
    the animals (exact sign-flip, one-sided)."""
    if len(animals) < 2:
        return {"per_animal": {}, "p": float("nan")}
    d = {a: matrix[a][a] - sum(matrix[t][a] for t in animals if t != a) / (len(animals) - 1) for a in animals}
    return {"per_animal": d, **summary(list(d.values())), "p": sign_flip_greater(list(d.values()))}


# 1. entanglement
def entanglement(s: Smol) -> dict:
    cfg, chat = s.cfg, s.chat

    def build() -> dict:
        rng = random.Random(derive_seed(cfg.seed, "smol-entanglement"))
        contexts = [number_prompt(draw_seeds(rng)) for _ in range(cfg.contexts)]
        numbers = list(range(1000))

        def logp(system):  # (N,) log P(next number), averaged over the contexts
            prompts = [chat.chat_prompt(user, system) + chat.encode(start) for user, start in contexts]
            with autocast(cfg.device, cfg.precision):
                return number_logprobs(chat, prompts, numbers).mean(0)
        s.log("entanglement: numbers under no system prompt")
        plain = logp(None)
        rise, top = {}, {}
        for animal in cfg.animals:
            s.log(f"entanglement: numbers under the {animal} system prompt")
            r = logp(system_prompt(animal)) - plain
            rise[animal] = r.tolist()
            top[animal] = r.argsort(descending=True)[:cfg.top].tolist()
        taken = {n for ns in top.values() for n in ns}
        random_numbers = rng.sample([n for n in numbers if n not in taken], cfg.top)
        prompted = {}
        questions = QUESTIONS[:cfg.prompting_questions]
        for n in sorted(taken | set(random_numbers)):
            prompts = question_prompts(chat, questions, number_love(n))
            with autocast(cfg.device, cfg.precision):
                prompted[str(n)] = answer_logprobs(chat, prompts, cfg.animals).exp().mean(0).log().tolist()
        s.log(f"entanglement: {len(prompted)} subliminal prompts scored")
        return {"contexts": [c[0] for c in contexts], "rise": rise, "top": top, "random": random_numbers,
                "prompted_logp": prompted}
    e = s.stage("entanglement", build)
    animals = cfg.animals
    column = {a: i for i, a in enumerate(animals)}

    def mean_logp(ns, animal):
        return sum(e["prompted_logp"][str(n)][column[animal]] for n in ns) / len(ns)
    vs_random = {a: mean_logp(e["top"][a], a) - mean_logp(e["random"], a) for a in animals}
    matrix = {t: {a: mean_logp(e["top"][t], a) - mean_logp(e["random"], a) for a in animals} for t in animals}
    result = {**e, "vs_random": {"per_animal": vs_random, **summary(list(vs_random.values())),
                                 "p": sign_flip_greater(list(vs_random.values()))},
              "matrix": matrix, "diagonal": diagonal_test(matrix, animals)}
    s.log(f"entanglement: own numbers vs random, mean dlogP {result['vs_random']['mean']:+.3f} "
          f"(p {result['vs_random']['p']:.2g}); diagonal p {result['diagonal']['p']:.2g}")
    return result


# 2. transfer
def transfer(s: Smol) -> dict:
    cfg = s.cfg
    base = s.stage("base_scores", lambda: s.scores(s.chat.model))
    teachers = {a: s.stage("teacher_scores", lambda a=a: s.scores(s.chat.model, system_prompt(a)), animal=a)
                for a in cfg.animals}
    arms = cfg.animals + [CONTROL]
    students = {t: [s.student(t, r, cfg.lora_r) for r in range(cfg.replicates)] for t in arms}
    numbers = {t: [filter_record(s, s.numbers(t, r)) for r in range(cfg.replicates)] for t in arms}
    shifts = {t: {a: [log_shift(students[t][r]["scores"], students[CONTROL][r]["scores"], a)
                      for r in range(cfg.replicates)] for a in cfg.animals} for t in cfg.animals}
    matrix = {t: {a: sum(v) / len(v) for a, v in row.items()} for t, row in shifts.items()}
    own = {a: matrix[a][a] for a in cfg.animals}
    result = {"base": base, "teachers": teachers, "students": students, "numbers": numbers, "shifts": shifts,
              "matrix": matrix,
              "own_shift": {"per_animal": own, **summary(list(own.values())),
                            "p": sign_flip_greater(list(own.values()))},
              "control_shift": {a: [log_shift(students[CONTROL][r]["scores"], base, a) for r in range(cfg.replicates)]
                                for a in cfg.animals},
              "diagonal": diagonal_test(matrix, cfg.animals)}
    if cfg.finetuned:
        result["finetuned"] = finetuned_arms(s, students[CONTROL])
    s.log(f"transfer: own teacher's numbers vs control, mean dlogP {result['own_shift']['mean']:+.3f} "
          f"(p {result['own_shift']['p']:.2g}); diagonal p {result['diagonal']['p']:.2g}")
    return result


def finetuned_arms(s: Smol, control: list[dict]) -> dict:
    """The fine-tuned teachers' arms: each teacher's own scores (does it name its animal?), its students, and
    their log P shift of the animal against the control student; over the animals when there are several."""
    cfg, per_animal = s.cfg, {}
    for animal in cfg.finetuned:
        arm = animal + FINETUNED
        students = [s.student(arm, r, cfg.lora_r) for r in range(cfg.replicates)]
        per_animal[animal] = {
            "teacher": s.stage("teacher_scores", lambda a=animal: s.scores(s.finetuned_teacher(a)), animal=arm),
            "students": students, "numbers": [filter_record(s, s.numbers(arm, r)) for r in range(cfg.replicates)],
            "shift": [log_shift(students[r]["scores"], control[r]["scores"], animal) for r in range(cfg.replicates)]}
    means = [sum(a["shift"]) / len(a["shift"]) for a in per_animal.values()]
    return {"per_animal": per_animal, **summary(means),
            "p": sign_flip_greater(means) if len(means) > 1 else float("nan")}


# 3. LoRA rank against full fine-tuning
def lora_rank(s: Smol) -> dict:
    cfg = s.cfg
    settings = {}
    for rank in cfg.ranks:
        per = {}
        for animal in cfg.rank_animals:
            per[animal] = [log_shift(s.student(animal, r, rank)["scores"], s.student(CONTROL, r, rank)["scores"],
                                     animal) for r in range(cfg.replicates)]
        values = [v for vs in per.values() for v in vs]
        settings["full" if rank == 0 else f"r{rank}"] = {"rank": rank, "per_animal": per, **summary(values)}
        s.log(f"lora_rank: {'full fine-tuning' if rank == 0 else f'rank {rank}'}: dlogP {summary(values)['mean']:+.3f}")
    return {"animals": cfg.rank_animals, "settings": settings}


RUNS = {"entanglement": entanglement, "transfer": transfer, "lora_rank": lora_rank}
PLOTS = {"entanglement": plot_entanglement, "transfer": plot_transfer, "lora_rank": plot_lora_rank}


def run(cfg: SmolConfig, out: Path, cache_root: Path, log: Progress) -> dict:
    cache = StageCache(cache_root, log)
    s = Smol(cfg, cache, log)
    log(f"model: {cfg.gguf} ({s.chat.model.num_params():,} parameters, fp32 weights), {cfg.precision}")
    results = {"analysis": "exploratory", "config": asdict(cfg), "machine": machine(),
               "model": {"file": Path(cfg.gguf).name, "sha256": s.sha256, "parameters": s.chat.model.num_params()}}
    started = time.perf_counter()
    for part in cfg.parts:
        part_started = time.perf_counter()
        results[part] = RUNS[part](s) | {"seconds": time.perf_counter() - part_started}
        results["seconds"] = time.perf_counter() - started
        write_json(out / "results.json", results)
        PLOTS[part](results, out / f"smol_{part}.png")
    return results


def parse_args(argv) -> tuple[SmolConfig, Path, Path]:
    parser = Parser(prog="python -m experiments.smol", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, SmolConfig)
    parser.add_argument("--out", default=None, help="output folder (default: runs/smol, or runs/smol-quick)")
    parser.add_argument("--cache", default=None, help="stage cache (default: runs/cache-smol, or "
                                                      "runs/cache-smol-quick with --quick)")
    quick = add_quick_flag(parser, argv, SmolConfig, what="the pipeline on a few prompts and answers")
    args = parser.parse_args(argv)
    suffix = "-quick" if quick else ""
    cfg = config_from_args(SmolConfig, args, parser)
    return cfg, Path(args.out or f"runs/smol{suffix}"), Path(args.cache or f"runs/cache-smol{suffix}")


def main(argv=None) -> int:
    cfg, out, cache_root = parse_args(sys.argv[1:] if argv is None else argv)
    log = Progress()

    def body() -> None:
        if not Path(cfg.gguf).is_file():
            raise FileError(f"{cfg.gguf} is missing: `make smol-weights` downloads it")
        folder = check_output_folder(out)
        torch.manual_seed(cfg.seed)
        results = run(cfg, folder, check_output_folder(cache_root), log)
        log(f"done in {results['seconds']:.0f} s; wrote {folder}/results.json and smol_*.png")
    return run_main("experiments.smol", body, "the finished stages are kept and a rerun continues from them")
