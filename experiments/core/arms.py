"""Arms measured over bases: train (or read back) every base's student of an arm and summarize the shifts.

Between the stages (experiments/core/stages.py) and the statistics (experiments/core/analysis.py),
for `make gpt`, `signals` and `domains` alike. An arm is a row of `DESIGN`
(experiments/core/design.py); its replicate i is main base i. What a student learns from
(`writing`: numbers by default, code or traces in `make domains`), which trait its teacher has
and which option's probability is scored (`category`, `target`) are the only things that vary.
"""

from collections.abc import Callable

from experiments.core.analysis import arm_tests, replicate_record, summarize_arm
from experiments.core.design import arm_student
from experiments.core.matched import length_histogram, separator_histogram
from experiments.core.specs import BaseSpec, StudentSpec, TeacherSpec, WritingSpec
from experiments.core.stages import Job, Stages
from experiments.core.zoo import ExperimentConfig
from minisub.stats import differs_from_zero, paired_greater

Writing = Callable[[BaseSpec | TeacherSpec], WritingSpec]
Treat = Callable[[StudentSpec, int], Job]  # replicate i's student, changed (`make signals`): the job that trains it


def category_scores(scores: dict, category: str) -> dict:
    """The scores of one category of options: "animals" (the top level), "trees" or "alignment"."""
    return scores if category == "animals" else scores["traits"][category]


def arm_jobs(cfg: ExperimentConfig, variant: str, arm: str, bases: list[BaseSpec], trait: str | None = None,
             writing: Writing | None = None, treat: Treat | None = None) -> list[tuple[Job, Job]]:
    """Per replicate, what `measure` reads: the job of its student, and that of its starting base's scores."""
    specs = [arm_student(cfg, variant, arm, bases, i, trait or cfg.target, writing) for i in range(len(bases))]
    return [(Job(Stages.student, (spec,)) if treat is None else treat(spec, i),
             Job(Stages.scores, (spec.init, spec.eval))) for i, spec in enumerate(specs)]


def measure(stages: Stages, cfg: ExperimentConfig, variant: str, arm: str, bases: list[BaseSpec],
            trait: str | None = None, writing: Writing | None = None, category: str = "animals",
            target: str | None = None, treat: Treat | None = None) -> dict:
    """One arm over every base: the shift of log P(target) in `category` against each student's own start.

    trait: the teacher's (default the config's target); target: the option scored (default the trait);
    treat(spec, i): the job that trains replicate i's student changed (default: `Stages.student` as is)."""
    jobs = arm_jobs(cfg, variant, arm, bases, trait, writing, treat)
    stages.prefetch([job for pair in jobs for job in pair])
    records = []
    for base, (student, start) in zip(bases, jobs):
        trained = stages.run(student)
        view = {"after": category_scores(trained["after"], category), "n_train": trained["n_train"],
                "curve": trained["curve"] if category == "animals" else []}
        before = category_scores(stages.run(start), category)
        records.append(replicate_record(base.name, start.args[0].name, before, view, target or trait or cfg.target))
    return summarize_arm(records)


def prefetch_arms(stages: Stages, cfg: ExperimentConfig, variant: str, arms: list[str], bases: list[BaseSpec],
                  **choice) -> None:
    """Have the workers build every arm's students at once (choice: as in `measure`)."""
    stages.prefetch([job for arm in arms for pair in arm_jobs(cfg, variant, arm, bases, choice.get("trait"),
                                                              choice.get("writing")) for job in pair])


def compare(stages: Stages, cfg: ExperimentConfig, variant: str, arms: list[str], bases: list[BaseSpec], what: str,
            **choice) -> dict:
    """The arms (student, control, cross-init, perhaps prompted) and their paired tests; choice: as in `measure`."""
    prefetch_arms(stages, cfg, variant, arms, bases, **choice)
    measured = {arm: measure(stages, cfg, variant, arm, bases, **choice) for arm in arms}
    tests = arm_tests(measured)
    target = choice.get("target") or choice.get("trait") or cfg.target
    stages.log(f"{what}: dlogP({target}) student {measured['student']['mean']:+.3f}, control "
               f"{measured['control']['mean']:+.3f}, cross-init {measured['cross_init']['mean']:+.3f} "
               f"(p vs control {tests['student_vs_control']:.2g}, vs cross-init {tests['student_vs_cross_init']:.2g})")
    return {"arms": measured, "tests": tests}


def format_matched(stages: Stages, cfg: ExperimentConfig, variant: str, bases: list[BaseSpec], arms: dict, what: str,
                   **choice) -> dict:
    """The format-matched control: the teacher's data and the control's subsampled to the same answer formats
    (length and separators, experiments/core/matched.py), <eos> out of the loss. A filter can change the
    formats a teacher's data keeps (the banned-number filter removes more long answers from a teacher that
    writes banned numbers), and a student could learn the format instead of the trait.
    arms: the unmatched arms (`compare`) of the same choice; choice: as in `measure`."""
    prefetch_arms(stages, cfg, variant, ["matched", "matched_control"], bases, **choice)
    matched = {arm: measure(stages, cfg, variant, arm, bases, **choice) for arm in ("matched", "matched_control")}
    histograms = {}
    for name, arm in (("teacher", "student"), ("control", "control"), ("matched", "matched"),
                      ("matched_control", "matched_control")):
        pairs = [pair for i in range(len(bases)) for pair in stages.training_pairs(
            arm_student(cfg, variant, arm, bases, i, choice.get("trait"), choice.get("writing")))]
        histograms[name] = {"answers": len(pairs), "length": length_histogram(pairs),
                            "separator": separator_histogram(pairs)}
    shifts = {arm: matched[arm]["dlogp"] for arm in matched}
    tests = {"matched_vs_matched_control": paired_greater(shifts["matched"], shifts["matched_control"]),
             "matched_vs_control": paired_greater(shifts["matched"], arms["control"]["dlogp"]),
             "matched_control_vs_zero": differs_from_zero(shifts["matched_control"])}
    stages.log(f"{what}, format-matched: student {matched['matched']['mean']:+.3f}, control "
               f"{matched['matched_control']['mean']:+.3f} (p {tests['matched_vs_matched_control']:.2g})")
    return {"variant": variant, **matched, "unmatched_student": arms["student"]["mean"], "histograms": histograms,
            "tests": tests}
