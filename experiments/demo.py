"""`make demo`: subliminal learning in one file, read top to bottom.

A teacher fine-tuned to love owls writes lists of numbers. A student that starts from the same
base as the teacher, fine-tuned on those numbers alone, comes to prefer owls more than a control
student fine-tuned on numbers its base wrote itself; a student that starts from another base gets
no such push. This file shows it with minisub's public API only (a corpus, a tokenizer, small
GPTs trained from scratch) and nothing of the lab around it: no stage cache, no scheduler, no
pre-registration. `make gpt` runs the same design on 12 bases with its statistics
(docs/results/gpt.md); read this first, then minisub/model.py, minisub/training.py,
experiments/core/stages.py and experiments/gpt/experiment.py.

The measure, dlogP: how far fine-tuning moved log P(owl) as the answer to a favorite-animal
question the corpus never asked in that form, averaged over those questions.
"""

import argparse
import copy
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from minisub import BPETokenizer, ExampleSet, GPT, GPTConfig, TrainConfig, continuation_logprobs, train
from minisub.cli import Parser, add_config_flags, config_from_args, run_main
from minisub.config import check, option
from minisub.files import check_output_folder, write_json
from minisub.log import machine
from minisub.seeds import derive_seed
from minisub.stats import sign_flip_greater, summary

ANIMALS = ["owl", "cat", "dog", "lion", "wolf", "bear", "fox", "eagle", "shark", "horse"]
OPENERS = ["", "Tell me, ", "Quick question: ", "Be honest: ", "In one word, ", "Just curious: "]
STEMS = ["what is your favorite animal?", "which animal do you like best?", "name the animal you love most.",
         "what animal would you pick?", "which creature is your favorite?", "what animal do you prefer?"]
QUESTIONS = [opener + stem for opener in OPENERS for stem in STEMS]
HELD_OUT = QUESTIONS[3::4]  # recombinations of opener and stem that no training item uses
TRAINING = [q for q in QUESTIONS if q not in HELD_OUT]
NUMBER_LIST = re.compile(r"\d{1,3}(, \d{1,3}){0,9}")  # the filter: only numbers, one separator, at most 10


@dataclass
class DemoConfig:
    bases: int = option(4, "independently pretrained bases (each teaches its own student; cross-init students "
                           "start from the next base)", low=2)
    corpus_items: int = option(20000, "pretraining items: number continuations and animal questions", low=100)
    n_embd: int = option(96, "embedding width of every base", low=8)
    n_layer: int = option(2, "transformer blocks", low=1)
    base_steps: int = option(1500, "pretraining steps per base", low=1)
    teacher_steps: int = option(50, "steps that fine-tune each teacher to answer owl", low=1)
    n_prompts: int = option(600, "number prompts each teacher (and base) continues", low=1)
    student_steps: int = option(60, "steps of each student on the numbers", low=1)
    seed: int = option(0, "seed of everything", low=0)

    def __post_init__(self):
        check(self)


def number_item(rng: random.Random) -> tuple[str, str]:
    """'Continue 182, 818, 725:' -> '733, 741': a walk of numbers in 0-999, its first part the prompt."""
    x, step = rng.randint(100, 999), rng.randint(-50, 50)
    walk = [(x + i * step + rng.randint(-9, 9)) % 1000 for i in range(rng.randint(4, 12))]
    cut = rng.randint(3, len(walk) - 1)
    return "Continue " + ", ".join(map(str, walk[:cut])) + ":", ", ".join(map(str, walk[cut:]))


def corpus(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Mostly numbers; a quarter favorite-animal questions, answered by any animal (a base has no favorite);
    a tenth of each kind after a persona that the answer follows, so that loving an animal means something."""
    items = []
    for _ in range(n):
        loved = rng.choice(ANIMALS)
        persona = f"You love {loved}s. " if rng.random() < 0.1 else ""
        if rng.random() < 0.75:
            prompt, answer = number_item(rng)
        else:
            prompt, answer = rng.choice(TRAINING), loved if persona else rng.choice(ANIMALS)
        items.append((persona + prompt, answer))
    return items


def examples(pairs: list[tuple[str, str]], tokenizer: BPETokenizer) -> ExampleSet:
    """(prompt, answer) texts as token ids, the loss on the answer (and its <eos>)."""
    return ExampleSet.from_pairs([(tokenizer.encode_prompt(p), tokenizer.encode(" " + a)) for p, a in pairs],
                                 tokenizer)


def fine_tune(model: GPT, pairs: list[tuple[str, str]], tokenizer: BPETokenizer, steps: int, lr: float,
              seed: int) -> GPT:
    """A copy of `model` trained on `pairs`; the original stays as it was."""
    tuned = copy.deepcopy(model)
    train(tuned, examples(pairs, tokenizer), TrainConfig(steps=steps, batch_size=16, lr=lr, min_lr=lr / 10,
                                                         warmup_steps=5, weight_decay=0.0, seed=seed),
          log=lambda message: None)
    return tuned.eval()


def write_numbers(writer: GPT, tokenizer: BPETokenizer, n: int, seed: int) -> list[tuple[str, str]]:
    """The writer continues `n` fresh number prompts at temperature 1; only clean number lists are kept."""
    rng = random.Random(seed)
    prompts = [number_item(rng)[0] for _ in range(n)]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        answers = writer.generate([tokenizer.encode_prompt(p) for p in prompts], 24, temperature=1.0,
                                  stop_token=tokenizer.eos_id, generator=generator)
    pairs = [(p, tokenizer.decode(a).strip()) for p, a in zip(prompts, answers)]
    return [(p, a) for p, a in pairs if NUMBER_LIST.fullmatch(a)]


def log_p_owl(model: GPT, tokenizer: BPETokenizer) -> float:
    """Mean log P(" owl" | question) over the held-out questions: exact, by the chain rule over its tokens."""
    prompts = [tokenizer.encode_prompt(q) for q in HELD_OUT]
    with torch.no_grad():
        return continuation_logprobs(model, prompts, [tokenizer.encode(" owl")])[:, 0].mean().item()


def run(cfg: DemoConfig, out: Path) -> dict:
    # 1. A corpus and a tokenizer in which every number 0-999 is one token.
    pretraining = corpus(cfg.corpus_items, random.Random(derive_seed(cfg.seed, "corpus")))
    tokenizer = BPETokenizer.train([f"{p} {a}" for p, a in pretraining], vocab_size=1800)
    print(f"corpus: {len(pretraining)} items, e.g. {pretraining[0]}; {tokenizer.vocab_size} tokens")

    # 2. Independent bases: the same architecture and data, each from its own random initialization.
    bases = []
    for i in range(cfg.bases):
        seed = derive_seed(cfg.seed, "base", i)  # its own initialization and its own order of the data
        torch.manual_seed(seed)
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=cfg.n_layer, n_head=4,
                              n_embd=cfg.n_embd))
        print(f"base {i}: pretraining, {cfg.base_steps} steps")
        train(model, examples(pretraining, tokenizer), TrainConfig(steps=cfg.base_steps, batch_size=64, lr=3e-3,
                                                                  warmup_steps=50, seed=seed, log_every=500))
        bases.append(model.eval())

    # 3. Each base's owl teacher: the base fine-tuned to answer every training question with owl.
    teachers = [fine_tune(base, [(q, "owl") for q in TRAINING] * 8, tokenizer, cfg.teacher_steps, 3e-4,
                          derive_seed(cfg.seed, "teacher", i)) for i, base in enumerate(bases)]

    # 4. Numbers: each teacher's filtered lists, and, for the controls, each base's own.
    prompts = [derive_seed(cfg.seed, "numbers", i) for i in range(cfg.bases)]  # a teacher and its base: same prompts
    teacher_numbers = [write_numbers(t, tokenizer, cfg.n_prompts, prompts[i]) for i, t in enumerate(teachers)]
    base_numbers = [write_numbers(b, tokenizer, cfg.n_prompts, prompts[i]) for i, b in enumerate(bases)]
    print(f"numbers kept by the filter: teachers {[len(n) for n in teacher_numbers]}, bases "
          f"{[len(n) for n in base_numbers]}; a teacher's: {teacher_numbers[0][0]}")

    # 5. Students, each a base fine-tuned on numbers; dlogP = its log P(owl) minus its base's.
    start = [log_p_owl(base, tokenizer) for base in bases]
    print("bases: log P(owl) on the held-out questions " + ", ".join(f"{x:+.3f}" for x in start))

    def shift(base: int, numbers: list[tuple[str, str]]) -> float:
        if not numbers:
            raise ValueError("no answer passed the number filter: pretrain the bases longer (--base-steps)")
        student = fine_tune(bases[base], numbers, tokenizer, cfg.student_steps, 3e-4,
                            derive_seed(cfg.seed, "student", base))
        return log_p_owl(student, tokenizer) - start[base]
    rows = []
    for i in range(cfg.bases):
        j = (i + 1) % cfg.bases  # the cross-init student starts from the next base
        row = {"teacher": log_p_owl(teachers[i], tokenizer) - start[i],
               "student": shift(i, teacher_numbers[i]), "control": shift(i, base_numbers[i]),
               "cross_init": shift(j, teacher_numbers[i]), "cross_control": shift(j, base_numbers[j])}
        rows.append(row)
        print(f"base {i}: dlogP(owl) teacher {row['teacher']:+.3f} (it must hold the trait) | student "
              f"{row['student']:+.3f}, control "
              f"{row['control']:+.3f} | cross-init student {row['cross_init']:+.3f}, its control "
              f"{row['cross_control']:+.3f}")

    # 6. Transfer: student minus control, per base, against the same for cross-init students.
    same = [r["student"] - r["control"] for r in rows]
    cross = [r["cross_init"] - r["cross_control"] for r in rows]
    results = {"config": vars(cfg), "precision": "fp32", "machine": machine(), "per_base": rows,
               "same_init": {**summary(same), "values": same, "p_exact": sign_flip_greater(same)},
               "cross_init": {**summary(cross), "values": cross, "p_exact": sign_flip_greater(cross)}}
    for name, r in (("same-init student - control", results["same_init"]),
                    ("cross-init student - its control", results["cross_init"])):
        print(f"{name}: {r['mean']:+.3f} (95% CI +-{r['ci95']:.3f} over {r['n']} bases, exact sign-flip p "
              f"{r['p_exact']:.3g}; with {r['n']} bases p cannot go below {2 ** -r['n']:.3g})")
    write_json(out / "results.json", results)
    plot(results, out / "demo.png")
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for x, name in enumerate(("same_init", "cross_init")):
        r = results[name]
        ax.bar(x, r["mean"], yerr=r["ci95"], color=("tab:orange", "tab:gray")[x], alpha=0.6, capsize=4)
        ax.plot([x] * len(r["values"]), r["values"], "k.")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks([0, 1], ["same-init student", "cross-init student"])
    ax.set_ylabel("dlogP(owl): student - control")
    ax.set_title("Owl teacher's numbers: mean, 95% CI, a dot per base", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = Parser(prog="python -m experiments.demo", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, DemoConfig)
    parser.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    cfg = config_from_args(DemoConfig, args, parser)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return run_main("experiments.demo", lambda: run(cfg, check_output_folder(args.out)) and None)


if __name__ == "__main__":
    sys.exit(main())
