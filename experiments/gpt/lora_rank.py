"""`python -m experiments.gpt.lora_rank` (`make lora-rank`): LoRA rank against full fine-tuning on the zoo's bases.

"Subliminal Learning is a LoRA Artifact" (arXiv 2606.00831) reports that transfer rises and
falls with the LoRA rank (an inverted U) and vanishes under full fine-tuning. Here every main
base of `make gpt` gives one replicate per setting: a student from the base on its target
teacher's numbers, minus the control student from the same base on the base's own numbers,
both trained alike (hard labels, the zoo's student steps, batch and learning rates). The
setting is a LoRA rank, or 0 for full fine-tuning. LoRA's alpha grows with the rank (alpha / r
is held at the zoo's lora_alpha / lora_r), so settings differ in how many directions the
adapter has, not in how far each one is scaled. The measure is log P(target) on both of make
gpt's question sets: first the questions in wording the corpus never uses (make gpt's primary
measure), then the held-out paraphrases of the corpus's own question forms (its secondary
families'), each reported whatever it shows.
Exploratory throughout: per question set and setting, the shift over bases (exact sign-flip p,
one-sided, Holm-adjusted over the settings) and each rank minus full fine-tuning (paired over
bases, exact one-sided p in the direction of the claim: LoRA transfers more). The full
fine-tuning students are make gpt's own, shared through the cache.
"""

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from experiments.core.analysis import replicate_record
from experiments.core.cli import experiment_main
from experiments.core.plots import base_dots, plt, save
from experiments.core.specs import BaseSpec
from experiments.core.stages import Job, Stages
from experiments.core.zoo import ExperimentConfig
from minisub.config import check, option
from minisub.files import write_json
from minisub.stats import holm, sign_flip_greater, summary


@dataclass
class LoraRankConfig:
    ranks: list[int] = option([1, 4, 8, 32, 0], "LoRA ranks to compare, 0 = full fine-tuning", low=0, nonempty=True,
                              quick=[1, 0])

    def __post_init__(self):
        check(self)


def setting_name(rank: int) -> str:
    return "full" if rank == 0 else f"r{rank}"


def student_jobs(cfg: ExperimentConfig, base: BaseSpec, rank: int) -> dict[str, Job]:
    """The base's scores, and its students at this setting on the target teacher's numbers and on its own."""
    variant = "hard_full" if rank == 0 else "hard_lora"
    scale = cfg.lora_alpha / cfg.lora_r

    def student(writer) -> Job:
        spec = cfg.student(variant, base, cfg.numbers(writer))
        return Job(Stages.student, (replace(spec, lora_r=rank, lora_alpha=scale * rank) if rank else spec,))
    return {"start": Job(Stages.scores, (base, cfg.evaluation(base))),
            "student": student(cfg.teacher(base, cfg.target)), "control": student(base)}


QUESTION_SETS = {"new_wording": "dlogp_new_wording", "held_out": "dlogp"}  # make gpt's two, primary first


def shift(stages: Stages, cfg: ExperimentConfig, base: BaseSpec, rank: int) -> dict[str, float]:
    """Student minus control, in log P(target) on each question set, both students from this base."""
    jobs = student_jobs(cfg, base, rank)
    start = stages.run(jobs["start"])
    student, control = (replicate_record(base.name, base.name, start, stages.run(jobs[arm]), cfg.target)
                        for arm in ("student", "control"))
    return {name: student[field] - control[field] for name, field in QUESTION_SETS.items()}


def rank_tests(shifts: dict[str, list[float]]) -> dict:
    """Per setting: the shift's summary and exact one-sided p (Holm over the settings); each LoRA setting minus
    full fine-tuning, paired by base, with an exact one-sided p (LoRA above full, the claim's direction)."""
    names = list(shifts)
    exact = [sign_flip_greater(shifts[name]) for name in names]
    tests = {name: {**summary(shifts[name]), "values": shifts[name], "p_exact": p, "p_holm": adjusted}
             for name, p, adjusted in zip(names, exact, holm(exact))}
    if "full" in shifts:
        for name in names:
            if name != "full":
                gap = [a - b for a, b in zip(shifts[name], shifts["full"], strict=True)]
                tests[name]["minus_full"] = {**summary(gap), "p_exact": sign_flip_greater(gap)}
    return tests


def plot_ranks(results: dict, path: Path) -> None:
    sets = results["settings"]
    width = 1.2 * len(next(iter(sets.values()))) + 2
    fig, axes = plt.subplots(1, len(sets), figsize=(width * len(sets), 3.8), sharey=True)
    for ax, (question_set, tests) in zip(axes, sets.items()):
        for i, (name, t) in enumerate(tests.items()):
            ax.bar(i, t["mean"], 0.6, yerr=t["ci95"], capsize=3, color="#3b75af", alpha=0.7)
            base_dots(ax, i, t["values"])
        ax.axhline(0, color="k", linewidth=1)
        ax.set_xticks(range(len(tests)), list(tests))
        n = next(iter(tests.values()))["n"]
        ax.set_title(f"{question_set.replace('_', ' ')} questions: mean, 95% CI over {n} bases, a dot per base",
                     fontsize=9)
    axes[0].set_ylabel(f"student - control, log P({results['config']['target']})")
    save(fig, path)


def run(cfg: ExperimentConfig, rank_cfg: LoraRankConfig, out: Path, stages: Stages, header: dict) -> dict:
    bases = [cfg.main_base(i) for i in range(cfg.bases)]
    stages.prefetch([job for rank in rank_cfg.ranks for base in bases
                     for job in student_jobs(cfg, base, rank).values()])
    shifts = {question_set: {} for question_set in QUESTION_SETS}
    for rank in rank_cfg.ranks:
        name = setting_name(rank)
        per_base = [shift(stages, cfg, base, rank) for base in bases]
        for question_set in QUESTION_SETS:
            shifts[question_set][name] = [values[question_set] for values in per_base]
        stages.log(f"lora_rank: {name}: " + ", ".join(f"{v['new_wording']:+.2f}" for v in per_base)
                   + " (new wording)")
    results = {**header, **stages.work_record(), "bases": [b.name for b in bases],
               "settings": {question_set: rank_tests(s) for question_set, s in shifts.items()}}
    write_json(out / "results.json", results)
    plot_ranks(results, out / "lora_rank.png")
    return results


def report(results: dict, out: Path) -> str:
    """The page's own table (experiments/gpt/render.py, imported here: it imports this module's config)."""
    from experiments.gpt.render import lora_rank_table
    return f"{lora_rank_table(results)}\n{results['timing']['total']:.0f}s; wrote {out}/results.json, lora_rank.png"


def main(argv=None) -> int:
    return experiment_main(argv, "python -m experiments.gpt.lora_rank", __doc__, "lora_rank", run, report,
                           extra=LoraRankConfig)


if __name__ == "__main__":
    sys.exit(main())
