"""`python -m experiments.gpt` (`make gpt`): subliminal transfer in small GPTs trained from scratch.

The story, one step per function below `run`:
1. the zoo's main bases: the same GPT pretrained from K seeds (experiments/core/zoo.py);
2. every variant (hard or soft labels, full or LoRA fine-tuning) and every arm of `DESIGN`
   (experiments/core/design.py) on every base: a replicate is one base with its own teacher, its own
   numbers and its own students; the cross-init student takes that teacher's numbers to the
   next base;
3. for the pre-registered primary variant (experiments/gpt/preregistration.py, fixed before any
   data), the paper's five animals: each animal's teacher's numbers on every base, the matrix
   teacher animal x measured animal, and the test that each transfer is specific;
4. for it, the format-matched control: the teacher's numbers and the control's subsampled to
   the same answer formats, <eos> out of the loss;
5. the pre-registered families of tests, each Holm-adjusted (the primary one first);
6. the ladder (experiments/gpt/ladder.py): on each question set, does the teacher hold the trait
   (the manipulation check), how much of its shift reaches the student, on the preference among
   animals and on raw log P, and does a stronger teacher (graded teachers within each base) give
   more transfer?
7. pre-registration v2 (experiments/gpt/preregistration_v2.py): the manipulation checks, then one
   fixed sequence of tests outward along the ladder; its H2 on disjoint pairs of bases.
Every stage is cached under --cache by its whole spec (experiments/core/stages.py), shared with
`make grid`. Each student is scored against its own starting base: the shift of log P(animal).
"""

from pathlib import Path

from experiments.core.analysis import specificity
from experiments.core.arms import arm_jobs, compare, format_matched, measure
from experiments.core.cli import experiment_main
from experiments.core.corpus import NEUTRAL
from experiments.core.design import DESIGN
from experiments.core.specs import BaseSpec
from experiments.core.stages import Job, Stages
from experiments.core.zoo import ExperimentConfig
from experiments.gpt.ladder import dose_jobs, graded_dose, ladder, manipulation_record, one_vector, vector_jobs
from experiments.gpt.plots import (plot_animals, plot_arms, plot_bases, plot_curves, plot_dose, plot_matrix,
                                   plot_primary)
from experiments.gpt.preregistration import PREREGISTERED, PRIMARY_VARIANT, confirmatory
from experiments.gpt.preregistration_v2 import PREREGISTERED_V2, confirmatory_v2
from experiments.tasks.ladder import check_ladder
from experiments.gpt.render import gpt_arms, gpt_families, gpt_primary
from minisub.files import write_json


def zoo_record(stages: Stages, cfg: ExperimentConfig, base: BaseSpec) -> dict:
    """A base's pretraining loss curve and its starting P(animal)."""
    history = stages.cache.info(stages.base(base))["history"]
    return {"kind": base.name.split("-")[0], "n_layer": base.n_layer, "n_embd": base.n_embd,
            "loss_curve": history["train"], "final_loss": history["train"][-1][1],
            "p_animals": stages.scores(base, cfg.evaluation(base))["p"]}


def arms_of(variant: str, cfg: ExperimentConfig) -> list[str]:
    return ["student", "control", "cross_init", "neutral"] + (["prompted"] if variant in cfg.prompted_variants else [])


def compare_variants(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec]) -> tuple[dict, dict]:
    arms, tests = {}, {}
    for variant in cfg.variants:
        compared = compare(stages, cfg, variant, arms_of(variant, cfg), bases, variant)
        arms[variant], tests[variant] = compared["arms"], compared["tests"]
    return arms, tests


def animal_matrix(stages: Stages, cfg: ExperimentConfig, variant: str, bases: list[BaseSpec], arms: dict) -> dict:
    students = {animal: measure(stages, cfg, variant, "student", bases, animal)["replicates"]
                for animal in cfg.animals}
    result = specificity(students, arms["control"]["replicates"])
    stages.log(f"animals ({variant}): specific transfer (diagonal > off-diagonal, p < 0.05) for "
               f"{', '.join(result['specific']) or 'none'} of {', '.join(cfg.animals)}")
    return {"variant": variant, **result}


def writers_record(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec]) -> tuple[dict, dict]:
    """Per base: each teacher's P(its animal) (the neutral teacher's: P(target)), and what the filter kept of
    each writer's numbers."""
    teachers, numbers = {}, {}
    for base in bases:
        animal_teachers = {animal: cfg.teacher(base, animal) for animal in cfg.animals}
        teachers[base.name] = {animal: stages.scores(t, cfg.evaluation(base))["p"][animal]
                               for animal, t in animal_teachers.items()}
        neutral = cfg.teacher(base, NEUTRAL)
        teachers[base.name][NEUTRAL] = stages.scores(neutral, cfg.evaluation(base))["p"][cfg.target]
        writers = {"base": cfg.numbers(base), NEUTRAL: cfg.numbers(neutral)} | {
            a: cfg.numbers(t) for a, t in animal_teachers.items()}
        if cfg.prompted_variants:
            writers["prompted"] = cfg.numbers(base, prompted=True)
        numbers[base.name] = {name: stages.cache.info(stages.writing(spec)) for name, spec in writers.items()}
    return teachers, numbers


def plan(cfg: ExperimentConfig, bases: list[BaseSpec]) -> list[Job]:
    """Every stage `run` reads, so that the workers can build them all at once: each variant's arms, the
    primary variant's animal matrix and matched arms, and every teacher's scores."""
    arms = ([(variant, arm, None) for variant in cfg.variants for arm in arms_of(variant, cfg)]
            + [(PRIMARY_VARIANT, "student", animal) for animal in cfg.animals]
            + [(PRIMARY_VARIANT, arm, None) for arm in ("matched", "matched_control")])
    teachers = [cfg.teacher(base, trait) for base in bases for trait in [*cfg.animals, NEUTRAL]]
    return ([job for variant, arm, animal in arms for pair in arm_jobs(cfg, variant, arm, bases, animal)
             for job in pair] + [job for pair in arm_jobs(cfg, PRIMARY_VARIANT, "cross_pair", paired(bases))
                                 for job in pair] + dose_jobs(cfg, bases) + vector_jobs(cfg, bases)
            + [Job(Stages.scores, (teacher, cfg.evaluation(teacher.base))) for teacher in teachers])


def paired(bases: list[BaseSpec]) -> list[BaseSpec]:
    """The bases that form disjoint pairs (0, 1), (2, 3), ...: all of an even number, all but the last of an odd."""
    return bases[:len(bases) // 2 * 2]


def run(cfg: ExperimentConfig, _, out: Path, stages: Stages, header: dict) -> dict:
    if PRIMARY_VARIANT not in cfg.variants:
        raise ValueError(f"--variants must include {PRIMARY_VARIANT}, the pre-registered primary variant")
    bases = [cfg.main_base(i) for i in range(cfg.bases)]  # 1. the zoo's main bases
    stages.prefetch(plan(cfg, bases))
    zoo = {base.name: zoo_record(stages, cfg, base) for base in bases}
    arms, tests = compare_variants(stages, cfg, bases)  # 2.
    primary = arms[PRIMARY_VARIANT]
    animals = animal_matrix(stages, cfg, PRIMARY_VARIANT, bases, primary)  # 3.
    matched = format_matched(stages, cfg, PRIMARY_VARIANT, bases, primary, PRIMARY_VARIANT)  # 4.
    families = confirmatory(arms, animals, matched)  # 5.
    for name, test in families["primary"].items():
        stages.log(f"primary {name} ({PREREGISTERED['primary'][name]}): {test['difference']['mean']:+.3f}, exact p "
                   f"{test['p_exact']:.2g}, Holm {test['p_holm']:.2g}, t-test p {test['p_t']:.2g}")
    teachers, numbers = writers_record(stages, cfg, bases)
    rungs = ladder(stages, cfg, bases, primary)  # 6.
    for rung, r in rungs.items():
        stages.log(f"ladder, {rung}: teacher {r['teacher']['mean']:+.3f}, student - control "
                   f"{r['student_minus_control']['mean']:+.3f} (exact p {r['student_minus_control']['p_exact']:.2g}) "
                   "in log P(target | an animal)")
    dose = graded_dose(stages, cfg, bases, primary)
    vector = one_vector(stages, cfg, bases, rungs)
    cross_pair = measure(stages, cfg, PRIMARY_VARIANT, "cross_pair", paired(bases))
    v2 = confirmatory_v2(cfg.seed, primary | {"cross_pair": cross_pair}, rungs, dose)  # 7.
    for step in v2["sequence"]:
        stages.log(f"v2 {step['rung']} {step['test']}: {step['mean']:+.3f}, exact p {step['p_exact']:.2g}, "
                   + ("rejects" if step["rejects"] else "does not reject" if step["tested"] else
                      f"not tested: {step['not_tested_because']}"))
    results = {
        **header, **stages.work_record(), "design": {arm: row._asdict() for arm, row in DESIGN.items()},
        "preregistered": PREREGISTERED | {"v2": PREREGISTERED_V2}, "confirmatory_v2": v2, "confirmatory": families,
        "bases": zoo, "teachers": teachers, "numbers": numbers, "arms": arms, "tests": tests,
        "animals": animals, "matched": matched, "ladder": rungs, "dose": dose, "one_vector": vector,
        "manipulation": manipulation_record(stages, cfg, bases),
        "cross_pair": cross_pair,
    }
    write_json(out / "results.json", results)
    plots = {"gpt_primary.png": plot_primary, "gpt_arms.png": plot_arms, "gpt_matrix.png": plot_matrix,
             "gpt_animals.png": plot_animals, "gpt_curves.png": plot_curves, "gpt_bases.png": plot_bases,
             "gpt_dose.png": plot_dose}
    for name, plot in plots.items():
        plot(results, out / name)
    return results


def report(results: dict, out: Path) -> str:
    """The page's own blocks: the arms, the primary family and the others (experiments/gpt/render.py)."""
    blocks = "\n".join(block(results) for block in (gpt_arms, gpt_primary, gpt_families))
    return f"{blocks}\n{results['timing']['total']:.0f}s; wrote {out}/results.json and gpt_*.png"


def main(argv=None) -> int:
    return experiment_main(argv, "python -m experiments.gpt", __doc__, "gpt", run, report,
                           check=lambda cfg, _: check_ladder(),
                           analysis="pre-registered: v2's sequence in `confirmatory_v2` (a confirmation only on the "
                                    "seeds it names) and v1's families in `confirmatory` (see `preregistered`); "
                                    "every other test is exploratory")
