"""`python -m experiments.gpt` (`make gpt`): subliminal transfer in small GPTs trained from scratch.

The story, one step per function below `run`:
1. the zoo's main bases: the same GPT pretrained from K seeds (experiments/zoo.py);
2. every variant (hard or soft labels, full or LoRA fine-tuning) and every arm of `DESIGN`
   (experiments/design.py) on every base: a replicate is one base with its own teacher, its own
   numbers and its own students; the cross-init student takes that teacher's numbers to the
   next base;
3. the best variant: the one with the strongest evidence against control and cross-init;
4. for it, the paper's five animals: each animal's teacher's numbers on every base, the matrix
   teacher animal x measured animal, and the test that each transfer is specific;
5. for it, the format-matched control: the teacher's numbers and the control's subsampled to
   the same answer formats, <eos> out of the loss.
Every stage is cached under --cache by its whole spec (experiments/stages.py), shared with
`make grid`. Each student is scored against its own starting base: the shift of log P(animal).
"""

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from experiments.analysis import arm_tests, best_variant, replicate_record, specificity, summarize_arm
from experiments.design import DESIGN, arm_student
from experiments.matched import length_histogram, separator_histogram
from experiments.plots import plot_animals, plot_arms, plot_bases, plot_curves, plot_matrix, table
from experiments.stages import BaseSpec, Stages
from experiments.treated import TreatedStudentSpec, Treatment, treated_student
from experiments.zoo import VARIANTS, ExperimentConfig
from minisub.cli import Parser, add_config_flags, config_from_args, describe
from minisub.files import FileError, check_output_folder, write_json
from minisub.log import Progress, machine
from minisub.model import GPT, GPTConfig
from minisub.precision import autocast, choose_precision
from minisub.stats import differs_from_zero, paired_greater

QUICK = dict(corpus_items=3000, n_layer=1, n_head=2, n_embd=48, other_n_embd=32, bases=3, base_steps=100,
             teacher_steps=5, n_prompts=64, gen_batch=64, student_steps=6, student_batch=8, grid_bases=2,
             eval_samples=1, track_every=3, variants=list(VARIANTS))


def pretraining_step(cfg: ExperimentConfig):
    """step(precision): one pretraining step of a scratch main base at the run's shapes, on random
    tokens packed as the corpus packs (examples of ~40 tokens in rows of block_size)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                          n_head=cfg.n_head, n_embd=cfg.n_embd))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = max(1, cfg.base_batch * 40 // cfg.block_size)
    idx = torch.randint(cfg.vocab_size, (rows, cfg.block_size), generator=torch.Generator().manual_seed(0))
    segments = (torch.arange(cfg.block_size) // 40).expand(rows, -1)

    def step(precision: str) -> None:
        with autocast("cpu", precision):
            loss = model(idx, idx, segments=segments)[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def resolve_precision(cfg: ExperimentConfig, log: Progress) -> tuple[ExperimentConfig, dict]:
    """The config with `auto` replaced by what a timing of a pretraining step chose, and that choice."""
    tokens = cfg.base_batch * cfg.block_size  # the pretraining matmuls dominate the run
    choice = choose_precision(cfg.precision, "cpu", [
        (tokens, cfg.n_embd, 3 * cfg.n_embd), (tokens, cfg.n_embd, 4 * cfg.n_embd),
        (tokens, cfg.n_embd, cfg.vocab_size)], step=pretraining_step(cfg) if cfg.precision == "auto" else None)
    log(choice.describe())
    return replace(cfg, precision=choice.precision), choice.record()


def zoo_record(stages: Stages, cfg: ExperimentConfig, base: BaseSpec) -> dict:
    """A base's pretraining loss curve and its starting P(animal)."""
    history = stages.cache.info(stages.base(base))["history"]
    return {"kind": base.name.split("-")[0], "n_layer": base.n_layer, "n_embd": base.n_embd,
            "loss_curve": history["train"], "final_loss": history["train"][-1][1],
            "p_animals": stages.scores(base, cfg.evaluation(base))["p"]}


def measure(stages: Stages, cfg: ExperimentConfig, variant: str, arm: str, bases: list[BaseSpec],
            animal: str | None = None, treatment: Callable[[int], Treatment] | None = None) -> dict:
    """One arm over every base: train (or read back) its students and summarize their shifts.

    treatment(i), if given: how replicate i's student is treated (experiments/treated.py, `make signals`).
    """
    animal = animal or cfg.target
    records = []
    for i, base in enumerate(bases):
        spec = arm_student(cfg, variant, arm, bases, i, animal)
        trained = stages.student(spec) if treatment is None else treated_student(
            stages, TreatedStudentSpec(spec, treatment(i)))
        records.append(replicate_record(base.name, spec.init.name, stages.scores(spec.init, spec.eval), trained,
                                        animal))
    return summarize_arm(records)


def arms_of(variant: str, cfg: ExperimentConfig) -> list[str]:
    return ["student", "control", "cross_init"] + (["prompted"] if variant in cfg.prompted_variants else [])


def compare_variants(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec]) -> tuple[dict, dict]:
    arms, tests = {}, {}
    for variant in cfg.variants:
        arms[variant] = {arm: measure(stages, cfg, variant, arm, bases) for arm in arms_of(variant, cfg)}
        tests[variant] = arm_tests(arms[variant])
        s = arms[variant]
        stages.log(f"{variant}: dlogP({cfg.target}) student {s['student']['mean']:+.3f}, control "
                   f"{s['control']['mean']:+.3f}, cross-init {s['cross_init']['mean']:+.3f} "
                   f"(p vs control {tests[variant]['student_vs_control']:.2g})")
    return arms, tests


def animal_matrix(stages: Stages, cfg: ExperimentConfig, variant: str, bases: list[BaseSpec], arms: dict) -> dict:
    students = {animal: measure(stages, cfg, variant, "student", bases, animal)["replicates"]
                for animal in cfg.animals}
    result = specificity(students, arms["control"]["replicates"])
    stages.log(f"animals ({variant}): specific transfer (diagonal > off-diagonal, p < 0.05) for "
               f"{', '.join(result['specific']) or 'none'} of {', '.join(cfg.animals)}")
    return {"variant": variant, **result}


def format_matched(stages: Stages, cfg: ExperimentConfig, variant: str, bases: list[BaseSpec], arms: dict) -> dict:
    matched = {arm: measure(stages, cfg, variant, arm, bases) for arm in ("matched", "matched_control")}
    histograms = {}
    for name, arm in (("teacher", "student"), ("control", "control"), ("matched", "matched"),
                      ("matched_control", "matched_control")):
        pairs = [pair for i in range(len(bases)) for pair in stages.training_pairs(
            arm_student(cfg, variant, arm, bases, i))]
        histograms[name] = {"answers": len(pairs), "length": length_histogram(pairs),
                            "separator": separator_histogram(pairs)}
    shifts = {arm: matched[arm]["dlogp"] for arm in matched}
    return {"variant": variant, **matched, "unmatched_student": arms["student"]["mean"], "histograms": histograms,
            "tests": {"matched_vs_matched_control": paired_greater(shifts["matched"], shifts["matched_control"]),
                      "matched_vs_control": paired_greater(shifts["matched"], arms["control"]["dlogp"]),
                      "matched_control_vs_zero": differs_from_zero(shifts["matched_control"])}}


def writers_record(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec]) -> tuple[dict, dict]:
    """Per base: each teacher's P(its animal), and what the filter kept of each writer's numbers."""
    teachers, numbers = {}, {}
    for base in bases:
        animal_teachers = {animal: cfg.teacher(base, animal) for animal in cfg.animals}
        teachers[base.name] = {animal: stages.scores(t, cfg.evaluation(base))["p"][animal]
                               for animal, t in animal_teachers.items()}
        writers = {"base": cfg.numbers(base)} | {a: cfg.numbers(t) for a, t in animal_teachers.items()}
        if cfg.prompted_variants:
            writers["prompted"] = cfg.numbers(base, prompted=True)
        numbers[base.name] = {name: stages.cache.info(stages.writing(spec)) for name, spec in writers.items()}
    return teachers, numbers


def run(cfg: ExperimentConfig, out: Path, cache: Path) -> dict:
    log = Progress()
    cfg, precision = resolve_precision(cfg, log)
    stages = Stages(cache, log)
    bases = [cfg.main_base(i) for i in range(cfg.bases)]  # 1. the zoo's main bases
    zoo = {base.name: zoo_record(stages, cfg, base) for base in bases}
    arms, tests = compare_variants(stages, cfg, bases)  # 2.
    best = best_variant(tests)  # 3.
    animals = animal_matrix(stages, cfg, best, bases, arms[best])  # 4.
    matched = format_matched(stages, cfg, best, bases, arms[best])  # 5.
    teachers, numbers = writers_record(stages, cfg, bases)
    return {
        "config": asdict(cfg), "precision": precision, "machine": machine(),
        "timing": stages.cache.timing_record(log.elapsed()),
        "built": stages.cache.built, "design": {arm: row._asdict() for arm, row in DESIGN.items()},
        "bases": zoo, "teachers": teachers, "numbers": numbers, "arms": arms, "tests": tests, "best_variant": best,
        "animals": animals, "matched": matched,
    }


def parse_args(argv=None, prog: str = "python -m experiments.gpt", doc: str = __doc__, name: str = "gpt",
               extra: type | None = None, extra_quick: dict | None = None) -> tuple[ExperimentConfig, object, str, str]:
    """The config, the `extra` config (None without one), output folder and cache folder from the
    command line; bad values exit with one line. extra_quick: the extra config's --quick defaults."""
    parser = Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, ExperimentConfig)
    if extra is not None:
        add_config_flags(parser, extra)
    parser.add_argument("--quick", action="store_true",
                        help="a tiny budget (under 2 minutes) that checks the stages connect; flags "
                             "given explicitly still apply")
    parser.add_argument("--out", default=None, help=f"output folder (default: runs/{name}, or runs/{name}-quick "
                                                    "with --quick)")
    parser.add_argument("--cache", default=None, help="stage cache shared by the language experiments (default: "
                                                      "runs/cache, or runs/cache-quick with --quick)")
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK, **(extra_quick or {}))  # defaults only: what the user typed wins
    args = parser.parse_args(argv)
    suffix = "-quick" if args.quick else ""
    out, cache = args.out or f"runs/{name}{suffix}", args.cache or f"runs/cache{suffix}"
    extra_cfg = config_from_args(extra, args, parser) if extra is not None else None
    return config_from_args(ExperimentConfig, args, parser), extra_cfg, out, cache


def checked_run(prog: str, out: str, cache: str, work: Callable[[Path, Path], dict]) -> tuple[dict, Path] | None:
    """(work(out, cache), out) once both folders are checked; None after a bad input (a ValueError or
    FileError from any stage) has been said in one line on stderr. Every experiment's main runs this way."""
    try:
        out_folder, cache_folder = check_output_folder(out), check_output_folder(cache)
        return work(out_folder, cache_folder), out_folder
    except (ValueError, FileError) as err:
        print(f"{prog}: error: {describe(err)}", file=sys.stderr)
        return None


def main(argv=None) -> int:
    cfg, _, out, cache = parse_args(argv)
    done = checked_run("experiments.gpt", out, cache, lambda out, cache: run(cfg, out, cache))
    if done is None:
        return 2
    results, out = done
    write_json(out / "results.json", results)
    plots = {"gpt_arms.png": plot_arms, "gpt_matrix.png": plot_matrix, "gpt_animals.png": plot_animals,
             "gpt_curves.png": plot_curves, "gpt_bases.png": plot_bases}
    for name, plot in plots.items():
        plot(results, out / name)
    print(table(results))
    print(f"{results['timing']['total']:.0f}s; wrote {out}/results.json, {', '.join(plots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
