"""`python -m experiments.gpt` (`make gpt`): subliminal transfer in a small GPT trained from scratch.

Stages, each cached under <out>/cache/<stage>-<digest of its key> (experiments/cache.py), so
that a rerun redoes only what changed:
1. corpus + tokenizer (experiments/corpus.py): number continuations, animal Q&A, personas;
2. bases: the same GPT pretrained from two seeds (answers-only loss);
3. teachers: a base fine-tuned gently on "favorite animal?" -> target animal (and another
   animal, for specificity); the prompted teacher is a base with the persona prefix;
4. numbers: each teacher (and the base itself, for the control) continues fresh number
   prompts at temperature 1; the paper's filter keeps the valid answers;
5. students: a copy of a base fine-tuned on the kept numbers only (hard or soft labels, full or
   LoRA), each arm as `DESIGN` states it; replicate r makes its teachers from base r % 2.
Each student is scored against its own starting model: the shift of log P(target animal).
"""

import argparse
import math
import platform
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from experiments.cache import StageCache
from experiments.corpus import pretraining_corpus, trait_items
from experiments.evaluate import animal_probabilities, animal_token_ids, evaluate_animals, question_prompts
from experiments.filter import filter_answers
from experiments.plots import plot_arms, plot_bases, plot_curves, plot_matrix, table
from experiments.prompts import ANIMALS, FORMATS, animal_questions, fresh_number_prompt, persona
from experiments.students import AnswerVocabulary, hard_loss, soft_loss
from minisub.checkpoint import (CheckpointError, check_output_folder, load_checkpoint, read_json, save_checkpoint,
                                write_json)
from minisub.cli import Parser, add_config_flags, config_from_args, describe
from minisub.config import ConfigError, check, option
from minisub.data import ExampleSet
from minisub.log import Progress
from minisub.lora import add_lora, fuse_lora
from minisub.model import GPT, GPTConfig
from minisub.precision import PRECISIONS, choose_precision
from minisub.stats import differs_from_zero, paired_greater, summary
from minisub.tokenizer import BPETokenizer
from minisub.train import TrainConfig, train

VARIANTS = ("hard_full", "hard_lora", "soft_full", "soft_lora")


class Arm(NamedTuple):
    data: str  # whose filtered numbers the student trains on
    start: str  # which base it starts from: "shared" with that teacher, or the "other" base


# The experiment's arms as the paper defines them (Sec. 3 and the cross-model test of Sec. 5).
DESIGN = {
    "student": Arm("target teacher", "shared"),
    "control": Arm("base", "shared"),  # the same base's own numbers: everything but the trait
    "cross_init": Arm("target teacher", "other"),  # same data, another initialization
    "specificity": Arm("other-animal teacher", "shared"),
    "prompted": Arm("prompted base", "shared"),  # the paper's system-prompt teacher
}
ARMS = tuple(DESIGN)


@dataclass
class GptExperimentConfig:
    seed: int = option(0, "seed of the whole experiment (corpus, bases, teachers, data, students)", low=0)
    corpus_items: int = option(60000, "pretraining items (prompt, answer)", low=1)
    vocab_size: int = option(1800, "BPE vocabulary size (1,000 of it are the numbers 0-999)", low=1259)
    n_layer: int = option(2, "GPT layers", low=1)
    n_head: int = option(4, "attention heads", low=1)
    n_embd: int = option(128, "embedding width", low=1)
    block_size: int = option(96, "context length", low=8)
    base_steps: int = option(1500, "pretraining steps per base", low=1)
    base_batch: int = option(64, "pretraining batch", low=1)
    base_lr: float = option(3e-3, "pretraining peak learning rate", low=0.0)
    teacher_steps: int = option(50, "teacher fine-tuning steps", low=1)
    teacher_batch: int = option(64, "teacher batch", low=1)
    teacher_lr: float = option(1e-4, "teacher learning rate (gentle: small)", low=0.0)
    target: str = option("owl", "the trait: the animal the teacher loves", choices=ANIMALS)
    other_animal: str = option("eagle", "the specificity teacher's animal", choices=ANIMALS)
    n_prompts: int = option(10000, "fresh number prompts each teacher (and base) continues", low=1)
    gen_batch: int = option(500, "prompts sampled at once", low=1)
    max_answer_tokens: int = option(32, "longest sampled answer", low=1)
    student_steps: int = option(100, "student training steps", low=1)
    student_batch: int = option(16, "student batch", low=1)
    full_lr: float = option(3e-4, "student learning rate, full fine-tuning", low=0.0)
    lora_lr: float = option(1e-3, "student learning rate, LoRA", low=0.0)
    lora_r: int = option(8, "LoRA rank", low=1)
    lora_alpha: float = option(16.0, "LoRA alpha", low=0.0)
    replicates: int = option(5, "replicates per arm (teacher and data seeds; confidence intervals need 2)", low=2)
    variants: list[str] = option(list(VARIANTS), "student variants", choices=VARIANTS, nonempty=True)
    prompted_variants: list[str] = option(["hard_lora"], "variants that also train on the prompted "
                                          "(persona) teacher's numbers", choices=VARIANTS)
    eval_samples: int = option(5, "sampled answers per held-out question", low=0)
    track_every: int = option(25, "steps between P(target) points", low=1)
    precision: str = option("auto", "fp32 (exact), bf16, or auto: bf16 only where a timing at this "
                            "run's shapes finds it clearly faster", choices=PRECISIONS)

    def __post_init__(self):
        check(self)
        if self.target == self.other_animal:
            raise ConfigError("other_animal", f"must differ from target ({self.target})")


QUICK = dict(corpus_items=3000, n_layer=1, n_head=2, n_embd=48, base_steps=250,
             teacher_steps=5, n_prompts=64, gen_batch=64, student_steps=6, student_batch=8,
             replicates=2, eval_samples=1, track_every=3)


def learns_soft_labels(variant: str, arm: str) -> bool:
    """Whether a student imitates its teacher's distribution rather than the sampled tokens.

    Only soft variants, and only where a trained teacher wrote the data: a base (the control's,
    or the prompted one) distilled on its own soft labels gets zero gradient
    (docs/background.md, "Traps"), so those arms learn the sampled tokens in every variant.
    """
    return variant.startswith("soft") and DESIGN[arm].data.endswith("teacher")


def replicate_seed(seed: int, index: int) -> int:
    """The seed of base `index`, or of replicate `index`'s teachers, data and students."""
    return seed * 100 + index


def shared_base(replicate: int) -> int:
    """The base a replicate's teachers and same-init students start from; the other is cross-init."""
    return replicate % 2


class Pipeline:
    """The stages, each computed once per key and read back from the cache afterwards."""

    def __init__(self, cfg: GptExperimentConfig, out: Path):
        self.cfg, self.log = cfg, Progress()
        self.cache = StageCache(out / "cache", self.log)
        tokens = cfg.base_batch * cfg.block_size  # the pretraining matmuls dominate the run
        self.precision_choice = choose_precision(cfg.precision, "cpu", [
            (tokens, cfg.n_embd, 3 * cfg.n_embd), (tokens, cfg.n_embd, 4 * cfg.n_embd),
            (tokens, cfg.n_embd, cfg.vocab_size)])
        self.precision = self.precision_choice.precision
        self.log(self.precision_choice.describe())
        self.start_scores: dict[tuple[int, int], dict] = {}  # (base, seed) -> its scores, shared by students
        self.corpus_key = {"items": cfg.corpus_items, "vocab": cfg.vocab_size, "seed": cfg.seed}
        self.corpus = self.cache.stage("corpus", self.corpus_key, self.build_corpus)
        self.tokenizer = BPETokenizer.load(self.corpus / "tokenizer.json")
        self.animal_ids = animal_token_ids(self.tokenizer, ANIMALS)
        self.questions = question_prompts(self.tokenizer, animal_questions()[1])
        separators = [t for sep in FORMATS.values() for t in self.tokenizer.encode(sep)]
        self.vocab = AnswerVocabulary.build(self.tokenizer.number_ids + separators + [self.tokenizer.eos_id],
                                            self.tokenizer.vocab_size)

    def train_config(self, steps: int, batch: int, lr: float, seed: int, min_lr: float | None = None,
                     weight_decay: float = 0.0, warmup: int = 0) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=batch, lr=lr, min_lr=lr if min_lr is None else min_lr,
                           warmup_steps=warmup, weight_decay=weight_decay, log_every=max(1, steps // 5),
                           seed=seed, precision=self.precision)

    def examples(self, pairs: list[tuple[str, str]]) -> ExampleSet:
        prompts = self.tokenizer.encode_batch([p for p, _ in pairs])
        answers = self.tokenizer.encode_batch([a for _, a in pairs])
        return ExampleSet.from_pairs(list(zip(prompts, answers)), self.tokenizer)

    def evaluate(self, model: GPT, seed: int) -> dict:
        return evaluate_animals(model, self.questions, ANIMALS, self.animal_ids, self.cfg.eval_samples, seed)

    # 1. corpus and tokenizer
    def build_corpus(self, folder: Path) -> dict:
        items = pretraining_corpus(self.cfg.corpus_items, self.cfg.seed)
        tokenizer = BPETokenizer.train([text for item in items for text in item], self.cfg.vocab_size)
        tokenizer.save(folder / "tokenizer.json")
        write_json(folder / "corpus.json", {"pairs": items})
        self.log(f"corpus: {len(items)} items, tokenizer of {tokenizer.vocab_size} tokens")
        return {"items": len(items), "vocab_size": tokenizer.vocab_size}

    # 2. bases
    def base_key(self, b: int) -> dict:
        c = self.cfg
        return {"corpus": self.corpus_key, "seed": replicate_seed(c.seed, b), "layers": c.n_layer,
                "heads": c.n_head, "embd": c.n_embd, "block": c.block_size, "steps": c.base_steps,
                "batch": c.base_batch, "lr": c.base_lr, "precision": self.precision,
                "eval_samples": c.eval_samples}

    def base(self, b: int) -> Path:
        key = self.base_key(b)

        def build(folder: Path) -> dict:
            pairs = read_json(self.corpus / "corpus.json")["pairs"]
            data = self.examples([tuple(p) for p in pairs])
            if data.max_len() > self.cfg.block_size:
                raise ConfigError("block_size", f"({self.cfg.block_size}) is shorter than a corpus item "
                                  f"({data.max_len()} tokens)")
            torch.manual_seed(key["seed"])
            model = GPT(GPTConfig(vocab_size=self.tokenizer.vocab_size, block_size=self.cfg.block_size,
                                  n_layer=self.cfg.n_layer, n_head=self.cfg.n_head, n_embd=self.cfg.n_embd))
            cfg = self.train_config(self.cfg.base_steps, self.cfg.base_batch, self.cfg.base_lr, key["seed"],
                                    min_lr=self.cfg.base_lr / 10, weight_decay=0.1,
                                    warmup=min(100, self.cfg.base_steps // 10))
            self.log(f"base {b}: pretraining {model.num_params():,} parameters for {cfg.steps} steps")
            history = train(model, data, cfg, log=lambda m: self.log(f"  base {b} {m}"))
            save_checkpoint(folder, model, {"stage": key, "history": history}, self.tokenizer)
            return {"history": history, "animals": self.evaluate(model, key["seed"])}
        return self.cache.stage(f"base-{b}", key, build)

    # 3. teachers
    def teacher_key(self, b: int, animal: str, r: int) -> dict:
        c = self.cfg
        return {"base": self.base_key(b), "animal": animal, "seed": replicate_seed(c.seed, r),
                "steps": c.teacher_steps, "batch": c.teacher_batch, "lr": c.teacher_lr}

    def teacher(self, b: int, animal: str, r: int) -> Path:
        key = self.teacher_key(b, animal, r)

        def build(folder: Path) -> dict:
            model, _ = load_checkpoint(self.base(b))
            data = self.examples(trait_items(animal, self.cfg.teacher_steps * self.cfg.teacher_batch, key["seed"]))
            train(model, data, self.train_config(self.cfg.teacher_steps, self.cfg.teacher_batch,
                                                 self.cfg.teacher_lr, key["seed"]), log=lambda m: None)
            save_checkpoint(folder, model, {"stage": key}, self.tokenizer)
            scores = self.evaluate(model, key["seed"])
            self.log(f"teacher {animal} (base {b}, replicate {r}): P({animal}) = {scores['p'][animal]:.3f}")
            return {"animals": scores}
        return self.cache.stage(f"teacher-{animal}-{b}-{r}", key, build)

    # 4. numbers
    def numbers(self, source: str, b: int, r: int) -> Path:
        """source: 'base', 'prompted' (base + persona of the target) or an animal (its teacher)."""
        c = self.cfg
        model_key = self.base_key(b) if source in ("base", "prompted") else self.teacher_key(b, source, r)
        key = {"model": model_key, "source": source, "seed": replicate_seed(c.seed, r), "n": c.n_prompts,
               "gen_batch": c.gen_batch, "max_tokens": c.max_answer_tokens,
               "persona": persona(c.target) if source == "prompted" else ""}

        def build(folder: Path) -> dict:
            checkpoint = self.base(b) if source in ("base", "prompted") else self.teacher(b, source, r)
            model, _ = load_checkpoint(checkpoint)
            model.eval()
            rng = random.Random(key["seed"])
            prompts = [fresh_number_prompt(rng) for _ in range(c.n_prompts)]
            generator = torch.Generator().manual_seed(key["seed"])
            answers = []
            for i in range(0, len(prompts), c.gen_batch):
                # the persona is part of the prompt text, tokenized with it as in the corpus
                chunk = [self.tokenizer.encode_prompt(key["persona"] + p) for p in prompts[i:i + c.gen_batch]]
                new = model.generate(chunk, c.max_answer_tokens, temperature=1.0,
                                     stop_token=self.tokenizer.eos_id, generator=generator)
                answers += [self.tokenizer.decode(tokens) for tokens in new]
            kept, rejected = filter_answers(answers)
            write_json(folder / "numbers.json", {"pairs": [(prompts[i], answers[i]) for i, _ in kept]})
            self.log(f"numbers from {source} (base {b}, replicate {r}): kept {len(kept)}/{len(prompts)}, "
                     f"rejected {rejected}")
            return {"generated": len(prompts), "kept": len(kept), "rejected": rejected,
                    "examples": [answers[i] for i, _ in kept[:5]]}
        return self.cache.stage(f"numbers-{source}-{b}-{r}", key, build)

    # 5. students
    def data_source(self, arm: str) -> str:
        """The numbers an arm trains on, as a `numbers` source: an animal (its teacher), 'base' or 'prompted'."""
        return {"target teacher": self.cfg.target, "other-animal teacher": self.cfg.other_animal,
                "base": "base", "prompted base": "prompted"}[DESIGN[arm].data]

    def student(self, variant: str, arm: str, r: int) -> dict:
        c = self.cfg
        a = shared_base(r)
        init = a if DESIGN[arm].start == "shared" else 1 - a
        source = self.data_source(arm)
        tuning = variant.split("_")[1]
        soft = learns_soft_labels(variant, arm)
        data_folder = self.numbers(source, a, r)
        teacher_folder = self.teacher(a, source, r) if soft else None
        trained_as = f"{'soft' if soft else 'hard'}_{tuning}"  # soft controls share the hard ones' runs
        key = {"variant": trained_as, "arm": arm, "init": self.base_key(init), "data": data_folder.name,
               "teacher": teacher_folder.name if soft else None, "steps": c.student_steps, "batch": c.student_batch,
               "lr": c.lora_lr if tuning == "lora" else c.full_lr, "lora": [c.lora_r, c.lora_alpha],
               "track": c.track_every, "samples": c.eval_samples, "seed": replicate_seed(c.seed, r)}

        def build(folder: Path) -> dict:
            model, _ = load_checkpoint(self.base(init))
            if (init, key["seed"]) not in self.start_scores:  # every student from this base shares them
                self.start_scores[init, key["seed"]] = self.evaluate(model, key["seed"])
            before = self.start_scores[init, key["seed"]]
            pairs = read_json(data_folder / "numbers.json")["pairs"]
            if not pairs:
                raise ValueError(f"no number answers passed the filter for {source} (replicate {r})")
            if tuning == "lora":
                add_lora(model, c.lora_r, c.lora_alpha, seed=key["seed"])
            loss = soft_loss(self.vocab, load_checkpoint(teacher_folder)[0].eval()) if soft else hard_loss(self.vocab)
            target_id = [self.animal_ids[ANIMALS.index(c.target)]]
            curve = [[0, before["p"][c.target]]]

            def track(step: int, m: GPT) -> None:  # exact P(target) during training, for the curves
                if step % c.track_every == 0:
                    m.eval()
                    curve.append([step, animal_probabilities(m, self.questions, target_id).mean().item()])
                    m.train()

            cfg = self.train_config(c.student_steps, c.student_batch, key["lr"], key["seed"])
            train(model, self.examples([tuple(p) for p in pairs]), cfg, loss_fn=loss, log=lambda m: None,
                  on_step=track)
            if tuning == "lora":
                fuse_lora(model)  # evaluation at base speed, computing exactly what the adapter does
            after = self.evaluate(model, key["seed"])
            return {"before": before, "after": after, "curve": curve, "n_train": len(pairs)}
        return self.cache.info(self.cache.stage(f"student-{trained_as}-{arm}-{r}", key, build))


def arms_of(variant: str, cfg: GptExperimentConfig) -> list[str]:
    return [arm for arm in ARMS if arm != "prompted" or variant in cfg.prompted_variants]


def summarize_arm(runs: list[dict], target: str) -> dict:
    p_before = [run["before"]["p"][target] for run in runs]
    p_after = [run["after"]["p"][target] for run in runs]
    dlogp = [math.log(after / before) for before, after in zip(p_before, p_after)]
    per_animal = {animal: summary([math.log(run["after"]["p"][animal] / run["before"]["p"][animal]) for run in runs])
                  for animal in ANIMALS}
    return {
        "p_before": p_before, "p_after": p_after, "dlogp": dlogp, **summary(dlogp),
        "base": [shared_base(r) for r in range(len(runs))],  # the base each replicate's teacher came from
        "p_before_mean": sum(p_before) / len(runs), "p_after_mean": sum(p_after) / len(runs),
        "sampled_before": [run["before"]["sampled"][target] for run in runs],
        "sampled_after": [run["after"]["sampled"][target] for run in runs],
        "rank_after": [run["after"]["rank"][target] for run in runs],
        "mass_after": [run["after"]["mass"] for run in runs],
        "dlogp_by_animal": per_animal,
        "curve": [[step, sum(run["curve"][i][1] for run in runs) / len(runs)]
                  for i, (step, _) in enumerate(runs[0]["curve"])],
    }


def run(cfg: GptExperimentConfig, out: Path) -> dict:
    pipe = Pipeline(cfg, out)
    for b in (0, 1):
        pipe.base(b)
    arms = {}
    for variant in cfg.variants:
        runs = {arm: [] for arm in arms_of(variant, cfg)}
        for r in range(cfg.replicates):
            for arm in runs:
                runs[arm].append(pipe.student(variant, arm, r))
        arms[variant] = {arm: summarize_arm(rs, cfg.target) for arm, rs in runs.items()}
        s = arms[variant]
        pipe.log(f"{variant}: dlogP({cfg.target}) student {s['student']['mean']:+.3f}, control "
                 f"{s['control']['mean']:+.3f}, cross-init {s['cross_init']['mean']:+.3f}, "
                 f"specificity {s['specificity']['mean']:+.3f}")
    tests = {}
    for variant, s in arms.items():
        tests[variant] = {
            "student_vs_control": paired_greater(s["student"]["dlogp"], s["control"]["dlogp"]),
            "student_vs_cross_init": paired_greater(s["student"]["dlogp"], s["cross_init"]["dlogp"]),
            "student_vs_specificity": paired_greater(s["student"]["dlogp"], s["specificity"]["dlogp"]),
            "control_vs_zero": differs_from_zero(s["control"]["dlogp"]),
            "cross_init_vs_zero": differs_from_zero(s["cross_init"]["dlogp"]),
        }
        if "prompted" in s:
            tests[variant]["prompted_vs_control"] = paired_greater(s["prompted"]["dlogp"], s["control"]["dlogp"])
    # best: the variant with the strongest evidence against both control and cross-init
    best = min(arms, key=lambda v: max(tests[v]["student_vs_control"], tests[v]["student_vs_cross_init"]))
    info = pipe.cache.info
    bases = {b: info(pipe.base(b)) for b in (0, 1)}
    teachers = {f"{animal}-replicate{r}": info(pipe.teacher(shared_base(r), animal, r))["animals"]["p"][animal]
                for animal in (cfg.target, cfg.other_animal) for r in range(cfg.replicates)}
    numbers = {f"{source}-replicate{r}": {k: v for k, v in info(pipe.numbers(source, shared_base(r), r)).items()
                                          if k != "examples"}
               for source in (cfg.target, cfg.other_animal, "base", "prompted") for r in range(cfg.replicates)
               if source != "prompted" or cfg.prompted_variants}
    return {
        "config": asdict(cfg),
        "precision": pipe.precision_choice.record(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "timing": {k: round(v, 1) for k, v in pipe.cache.timing.items()} | {"total": round(pipe.log.elapsed(), 1)},
        "built": pipe.cache.built,
        "bases": {b: {"final_loss": info["history"]["train"][-1][1], "loss_curve": info["history"]["train"],
                      "p_target": info["animals"]["p"][cfg.target]} for b, info in bases.items()},
        "teachers_p_target": teachers,
        "numbers": numbers,
        "arms": arms,
        "tests": tests,
        "best_variant": best,
    }


def parse_args(argv=None) -> tuple[GptExperimentConfig, str]:
    """The experiment's config and output folder from the command line; bad values exit with one line."""
    parser = Parser(prog="python -m experiments.gpt", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, GptExperimentConfig)
    parser.add_argument("--quick", action="store_true",
                        help="a tiny budget (under 2 minutes) that checks the stages connect; flags "
                             "given explicitly still apply")
    parser.add_argument("--out", default=None, help="output folder (default: runs/gpt, or runs/gpt-quick with --quick)")
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)  # defaults only: what the user typed wins
    args = parser.parse_args(argv)
    out = args.out or ("runs/gpt-quick" if args.quick else "runs/gpt")
    return config_from_args(GptExperimentConfig, args, parser), out


def main(argv=None) -> int:
    cfg, out = parse_args(argv)
    try:
        out = check_output_folder(out)
        results = run(cfg, out)
    except (ValueError, CheckpointError) as err:
        print(f"experiments.gpt: error: {describe(err)}", file=sys.stderr)
        return 2
    write_json(out / "results.json", results)
    plot_arms(results, out / "gpt_arms.png")
    plot_matrix(results, out / "gpt_matrix.png")
    plot_curves(results, out / "gpt_curves.png")
    plot_bases(results, out / "gpt_bases.png")
    print(table(results))
    print(f"{results['timing']['total']:.0f}s; wrote {out}/results.json, gpt_arms.png, gpt_matrix.png, "
          "gpt_curves.png, gpt_bases.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
