"""`python -m experiments.signals` (`make signals`): where the hidden signal lives, and what removes it.

Built on `make gpt`'s zoo, teachers, numbers and students (the same stage cache, nothing
rebuilt). Every number comes per main base, and every test counts bases. Five parts, one
function each below `run`; each writes its section of results.json and its plot as it ends:
1. icl: the teacher's numbers as in-context examples instead of fine-tuning data, for k
   examples, against the control's numbers and against k target answers (the positive control);
2. detectors: can the teacher's data be told from the control's? a logistic regression on the
   data alone, the base's log-likelihood, and the number frequency table (and, for comparison,
   the answers' length alone);
3. entanglement: the numbers the target animal raises in the base, whether naming them in a
   prompt raises the animal, and whether the teacher's data over-represents them;
4. divergence: the positions where the teacher's greedy choice differs from the base's; students
   trained on those positions only, on all others, on as many random ones; students that train
   one block only (the first, the last);
5. defences (experiments/signals/defend.py): every proposed defence at the teacher (how it samples), in the
   data and at the student (how it trains), each with one knob swept; the transfer each leaves on the question
   set whose manipulation check passes, what it costs the data's use, and the pre-registered test of the
   defences the literature predicts to work.
Part 4 treats both the teacher's data and the control's the same way: transfer is the treated student's
shift minus the treated control's, against the untreated transfer of `make gpt` (student minus control),
paired by base.
"""

import random
from dataclasses import dataclass
from pathlib import Path

from experiments.core.arms import arm_jobs, measure
from experiments.core.cli import experiment_main
from experiments.core.matched import length_histogram, separator_histogram
from experiments.core.specs import BaseSpec
from experiments.core.stages import Job, Stages
from experiments.core.zoo import VARIANTS, ExperimentConfig
from experiments.signals import detectors, entanglement
from experiments.signals.defend import defend
from experiments.signals.defences import numbers_of
from experiments.signals.divergence import divergent, share
from experiments.signals.icl import ContextBaseSpec, context_base, icl_scores
from experiments.signals.plots import PLOTS
from experiments.signals.treated import Treatment, choices, treated
from experiments.tasks.prompts import ANIMALS, animal_questions
from minisub.config import ConfigError, check, option
from minisub.files import write_json
from minisub.seeds import derive_seed
from minisub.stats import auc, differs_from_zero, paired_greater, spearman, summary


@dataclass
class SignalsConfig:
    signal_bases: int = option(12, "main bases of every part: the first N of make gpt's", low=2, high=64, quick=3)
    variant: str = option("hard_full", "student variant of parts 4 and 5 (a defence rewrites the tokens a student "
                          "learns; a soft-label student would ask the teacher afresh; full fine-tuning, as the "
                          "oracle defence projects the teacher's weight change out of the student's)",
                          choices=[v for v in VARIANTS if v.endswith("full")])
    icl_block_size: int = option(512, "positions of the long-context bases (part 1)", low=16, quick=192)
    icl_documents: int = option(4000, "documents the long-context bases are trained on", low=1, quick=100)
    icl_preference: float = option(0.5, "share of a document's animal answers that name its favorite", low=0.0)
    icl_steps: int = option(150, "training steps of each long-context base", low=1, quick=4)
    icl_batch: int = option(8, "documents per step", low=1, quick=4)
    icl_lr: float = option(1e-3, "learning rate of the long-context bases", low=0.0)
    icl_ks: list[int] = option([1, 2, 4, 8], "in-context examples before the question", low=1, nonempty=True,
                               quick=[1, 2])
    icl_draws: int = option(4, "random draws of the in-context examples per question", low=1, quick=1)
    detector_steps: int = option(150, "optimizer steps of the logistic regression", low=1, quick=20)
    detector_l2: float = option(1e-2, "L2 penalty of the logistic regression", low=0.0)
    permutations: int = option(200, "permutations of the frequency-table test", low=1, quick=20)
    entangled: int = option(20, "entangled numbers of the target: the top ones (shown, compared, dropped)", low=1,
                           quick=5)
    entanglement_prompts: int = option(200, "number prompts the persona shift averages over", low=1, quick=16)
    prompting_questions: int = option(20, "held-out questions each subliminal prompt is asked with", low=1, quick=2)
    dilutions: list[float] = option([0.25, 0.5, 0.75], "defence: shares of the teacher's answers replaced by control "
                                    "answers", low=0.0, quick=[0.75])
    detector_drops: list[float] = option([0.25, 0.5], "defence: shares of the answers dropped that a detector "
                                         "trained on the other bases' data rates most like a teacher's, in [0, 1)",
                                         low=0.0, quick=[0.5])
    temperatures: list[float] = option([0.0, 0.5], "defence: sampling temperatures of every writer (0: greedy)",
                                       low=0.0, quick=[0.0])
    top_ps: list[float] = option([0.5, 0.8], "defence: top-p of every writer's sampling, in (0, 1)", above=0.0,
                                 quick=[0.8])
    min_ps: list[float] = option([0.05, 0.1], "defence: min-p of every writer's sampling (the tokens at least min-p "
                                 "times as likely as the likeliest), in (0, 1)", above=0.0, quick=[0.1])
    kl_weights: list[float] = option([0.1, 1.0, 10.0], "defence: weights of a KL penalty to the student's starting "
                                     "base", above=0.0, quick=[1.0])
    pulls: list[float] = option([0.01, 0.1], "defence: shares of the distance to the starting weights taken back "
                                "after each student step, in (0, 1]", above=0.0, quick=[0.1])
    early_steps: list[int] = option([25, 50], "defence: students stopped after this many steps (below "
                                    "--student-steps)", low=1, quick=[3])
    price_prompts: int = option(200, "fresh number prompts every defended student is priced on", low=1, quick=16)

    def __post_init__(self):
        check(self)
        for name in ("icl_preference", "dilutions", "pulls"):
            values = getattr(self, name)
            if any(v > 1 for v in (values if isinstance(values, list) else [values])):
                raise ConfigError(name, "must not exceed 1 (it is a share)")
        if any(v >= 1 for v in self.detector_drops):
            raise ConfigError("detector_drops", "must be below 1 (a filter that drops every answer leaves no data)")
        for name in ("top_ps", "min_ps"):
            if any(v >= 1 for v in getattr(self, name)):
                raise ConfigError(name, "must be below 1 (1 is no defence: top-p 1 keeps every token; min-p 1 is "
                                  "greedy, which --temperatures 0 gives)")



def number_data(stages: Stages, cfg: ExperimentConfig, base: BaseSpec) -> tuple[list, list]:
    """The (prompt, answer) pairs of base's target teacher, and of the base itself (the control)."""
    return (stages.written_pairs(cfg.numbers(cfg.teacher(base, cfg.target))),
            stages.written_pairs(cfg.numbers(base)))


# 1. in-context learning
def in_context(stages: Stages, cfg: ExperimentConfig, s: SignalsConfig, bases: list[BaseSpec]) -> dict:
    questions = animal_questions()[0]
    per_base = []
    specs = [ContextBaseSpec(base, s.icl_block_size, s.icl_documents, s.icl_preference, s.icl_steps, s.icl_batch,
                             s.icl_lr, base.seed, cfg.precision, cfg.device) for base in bases]
    stages.prefetch([Job(context_base, (spec,)) for spec in specs])
    for base, spec in zip(bases, specs):
        model = context_base(stages, spec)
        teacher, control = number_data(stages, cfg, base)
        rng = random.Random(base.seed)
        positive = [(rng.choice(questions), cfg.target) for _ in range(200)]
        sources = {name: [seq.tolist() for seq in stages.examples(base.corpus, pairs).sequences]
                   for name, pairs in (("teacher", teacher), ("control", control), ("positive", positive))}
        target_id = stages.animal_ids(base.corpus)[ANIMALS.index(cfg.target)]
        scores = icl_scores(model, sources, stages.questions(base.corpus), target_id, [0] + s.icl_ks, s.icl_draws,
                            base.seed)
        per_base.append({name: {k: sum(v) / len(v) for k, v in by_k.items()} for name, by_k in scores.items()})
    result = {"ks": s.icl_ks, "block_size": s.icl_block_size, "bases": [b.name for b in bases],
              "logp_no_context": [r["teacher"][0] for r in per_base], "by_k": icl_tests(per_base, s.icl_ks)}
    for k, row in result["by_k"].items():
        stages.log(f"icl k={k}: teacher - control {row['teacher_minus_control']['mean']:+.3f} log P({cfg.target}), "
                   f"positive control {row['positive_minus_control']['mean']:+.3f}")
    return result


def icl_tests(per_base: list[dict], ks: list[int]) -> dict:
    """Per k, over bases: log P(target) after k teacher examples minus after k control examples (two-sided
    against 0), and after k target answers minus control (the positive control, one-sided, paired)."""
    by_k = {}
    for k in ks:
        teacher = [r["teacher"][k] - r["control"][k] for r in per_base]
        positive = [r["positive"][k] - r["control"][k] for r in per_base]
        by_k[k] = {
            "logp": {name: [r[name][k] for r in per_base] for name in ("teacher", "control", "positive")},
            "teacher_minus_control": {**summary(teacher), "values": teacher, "p": differs_from_zero(teacher)},
            "positive_minus_control": {**summary(positive), "values": positive,
                                       "p": paired_greater([r["positive"][k] for r in per_base],
                                                           [r["control"][k] for r in per_base])}}
    return by_k


# 2. detectors
def detect(stages: Stages, cfg: ExperimentConfig, s: SignalsConfig, bases: list[BaseSpec]) -> dict:
    logistic, loglik, data = [], [], []
    for base in bases:
        teacher, control = number_data(stages, cfg, base)
        data.append((teacher, control))
        logistic.append(detectors.logistic_detector(
            [numbers_of(a) for _, a in teacher], [numbers_of(a) for _, a in control],
            base.seed, s.detector_steps, s.detector_l2))
        model = stages.load(base)
        # the teacher's answers should look less likely to the base: score = minus the log-likelihood
        scores = [[-v for v in detectors.answer_logprob(model, stages.examples(base.corpus, pairs))]
                  for pairs in (teacher, control)]
        loglik.append({"auc": auc(*scores), "mean_logprob_teacher": -sum(scores[0]) / len(scores[0]),
                       "mean_logprob_control": -sum(scores[1]) / len(scores[1])})
    # format, for comparison: fewer numbers in an answer as the score (the teacher's answers are shorter)
    lengths = [auc([-len(numbers_of(a)) for _, a in t], [-len(numbers_of(a)) for _, a in c]) for t, c in data]
    frequency = detectors.frequency_test(data, s.permutations, derive_seed(cfg.seed, "frequency test"))
    ratios = entanglement.frequency_log_ratios([p for t, _ in data for p in t], [p for _, c in data for p in c])
    counts = {name: detectors.count_matrix([p for pair in data for p in pair[k]]).sum(0)
              for k, name in enumerate(("teacher", "control"))}

    def listing(numbers):
        return [{"number": n, "teacher": int(counts["teacher"][n]), "control": int(counts["control"][n]),
                 "log_ratio": float(ratios[n])} for n in numbers]

    result = {
        "bases": [b.name for b in bases],
        "logistic": {"per_base": logistic, "balanced_accuracy": summary([r["balanced_accuracy"] for r in logistic]),
                     "auc": {**summary([r["auc"] for r in logistic]),
                             "p_vs_chance": differs_from_zero([r["auc"] - 0.5 for r in logistic])}},
        "loglik": {"per_base": loglik, "auc": {**summary([r["auc"] for r in loglik]),
                                               "p_vs_chance": differs_from_zero([r["auc"] - 0.5 for r in loglik])}},
        "length": {"per_base": lengths, "auc": {**summary(lengths), "p_vs_chance": differs_from_zero(
            [v - 0.5 for v in lengths])}},
        "frequency": {**frequency, "over": listing(entanglement.top(ratios, 10)),
                      "under": listing(entanglement.top(-ratios, 10))},
        "histograms": {name: {"length": length_histogram([p for pair in data for p in pair[k]]),
                              "separator": separator_histogram([p for pair in data for p in pair[k]])}
                       for k, name in enumerate(("teacher", "control"))},
    }
    stages.log(f"detectors: logistic AUC {result['logistic']['auc']['mean']:.3f}, log-likelihood AUC "
               f"{result['loglik']['auc']['mean']:.3f}, frequency table p {frequency['p']:.3g}; answer length "
               f"AUC {result['length']['auc']['mean']:.3f}")
    return result


# 3. token entanglement
def entangle(stages: Stages, cfg: ExperimentConfig, s: SignalsConfig, bases: list[BaseSpec]) -> dict:
    animal_ids = stages.animal_ids(bases[0].corpus)
    questions = animal_questions()[1][:s.prompting_questions]
    rows = []
    for base in bases:
        tokenizer = stages.tokenizer(base.corpus)
        model, teacher_model = stages.load(base), stages.load(cfg.teacher(base, cfg.target))
        teacher, control = number_data(stages, cfg, base)
        prompts = [p for p, _ in control[:s.entanglement_prompts]]
        shift = entanglement.persona_shift(model, tokenizer, prompts, cfg.target)
        teacher_shift = (entanglement.number_logprobs(teacher_model, tokenizer, prompts)
                         - entanglement.number_logprobs(model, tokenizer, prompts)).mean(0)
        prompting = entanglement.subliminal_prompting(model, tokenizer, questions, animal_ids,
                                                       ANIMALS.index(cfg.target))
        ratios = entanglement.frequency_log_ratios(teacher, control)
        entangled = entanglement.top(shift, s.entangled)
        rows.append({
            "base": base.name, "entangled": entangled, "persona_shift": [float(shift[n]) for n in entangled],
            "over_represented": entanglement.top(ratios, s.entangled),
            "overlap": len(set(entangled) & set(entanglement.top(ratios, s.entangled))),
            "rho_shift_vs_frequency": spearman(shift.tolist(), ratios.tolist()),
            "rho_shift_vs_teacher": spearman(shift.tolist(), teacher_shift.tolist()),
            "prompting_entangled": float(prompting[entangled].mean()), "prompting_all": float(prompting.mean()),
            "prompting_random": float(prompting[random.Random(base.seed).sample(range(1000), s.entangled)].mean()),
        })
    result = entanglement_summary(rows, s.entangled)
    stages.log(f"entanglement: overlap with over-represented {result['overlap']['mean']:.1f} of {s.entangled} "
               f"(chance {result['chance_overlap']:.1f}), subliminal prompting {result['prompting']['mean']:+.3f} "
               f"log P({cfg.target} | an animal) (p {result['prompting']['p']:.2g})")
    return result


def entanglement_summary(rows: list[dict], k: int) -> dict:
    """Over bases: the overlap of the k entangled numbers with the k most over-represented ones (chance
    k^2 / 1000), the rank correlations (two-sided against 0), subliminal prompting with entangled against
    random numbers (one-sided, paired), and how many entangled numbers two bases share."""
    shared = [len(set(a["entangled"]) & set(b["entangled"])) for i, a in enumerate(rows) for b in rows[i + 1:]]
    return {
        "per_base": rows, "k": k, "chance_overlap": k ** 2 / 1000,
        "overlap": summary([r["overlap"] for r in rows]),
        "rho_shift_vs_frequency": {**summary([r["rho_shift_vs_frequency"] for r in rows]),
                                   "p": differs_from_zero([r["rho_shift_vs_frequency"] for r in rows])},
        "rho_shift_vs_teacher": {**summary([r["rho_shift_vs_teacher"] for r in rows]),
                                 "p": differs_from_zero([r["rho_shift_vs_teacher"] for r in rows])},
        "prompting": {**summary([r["prompting_entangled"] - r["prompting_random"] for r in rows]),
                      "p": paired_greater([r["prompting_entangled"] for r in rows],
                                          [r["prompting_random"] for r in rows])},
        "shared_between_bases": summary(shared) if len(shared) > 1 else {"mean": float("nan")},
    }


# parts 4 and 5: treated students against the untreated ones
def transfer(stages: Stages, cfg: ExperimentConfig, variant: str, bases: list[BaseSpec], name: str,
             student_treatments: list[Treatment] | None, control_treatments: list[Treatment] | None,
             plain: dict) -> dict:
    """Treated student and treated control over the bases (treatments[i]: base i's; None: the untreated arm),
    and the transfer that survives, against the untreated transfer in `plain` (student and control arms)."""
    treats = {"student": treated(student_treatments), "control": treated(control_treatments)}
    stages.prefetch([job for arm, treat in treats.items() for pair in arm_jobs(cfg, variant, arm, bases, treat=treat)
                     for job in pair])
    student = measure(stages, cfg, variant, "student", bases, treat=treats["student"])
    control = measure(stages, cfg, variant, "control", bases, treat=treats["control"])
    result = {"student": student, "control": control, **transfer_tests(student["dlogp"], control["dlogp"], plain)}
    stages.log(f"{name}: transfer {result['transfer']['mean']:+.3f} (95% CI {result['transfer']['ci95']:.3f}), "
               f"{result['retained']:.0%} of untreated, p vs control {result['tests']['student_vs_control']:.2g}, "
               f"p below untreated {result['tests']['below_untreated']:.2g}")
    return result


def transfer_of(student: list[float], control: list[float]) -> dict:
    """Per base, the student's shift minus the control's; their summary and the one-sided paired test > 0."""
    values = [a - b for a, b in zip(student, control, strict=True)]
    return {**summary(values), "values": values, "p": paired_greater(student, control)}


def transfer_tests(student: list[float], control: list[float], plain: dict) -> dict:
    """A treated pair's transfer, the share of the untreated transfer it keeps (a ratio of means), and the
    one-sided paired tests: treated student > treated control; treated transfer < untreated transfer."""
    transfer = transfer_of(student, control)
    before = plain["transfer"]["mean"]
    return {"transfer": {k: v for k, v in transfer.items() if k != "p"},
            "retained": transfer["mean"] / before if before else float("nan"),
            "tests": {"student_vs_control": transfer["p"],
                      "below_untreated": paired_greater(plain["transfer"]["values"], transfer["values"])}}


def untreated(stages: Stages, cfg: ExperimentConfig, variant: str, bases: list[BaseSpec]) -> dict:
    arms = {arm: measure(stages, cfg, variant, arm, bases) for arm in ("student", "control")}
    return {**arms, "transfer": transfer_of(arms["student"]["dlogp"], arms["control"]["dlogp"])}


# 4. divergence tokens
def divergence(stages: Stages, cfg: ExperimentConfig, s: SignalsConfig, bases: list[BaseSpec], plain: dict) -> dict:
    other = next(a for a in cfg.animals if a != cfg.target)
    shares = []
    for base in bases:
        pairs = number_data(stages, cfg, base)[0]
        data = stages.examples(base.corpus, pairs)
        vocab = stages.answer_vocabulary(base.corpus, eos=True)
        teacher, reference, other_teacher = (choices(stages, model, pairs, vocab) for model in (
            cfg.teacher(base, cfg.target), base, cfg.teacher(base, other)))
        shares.append({"vs_base": share(divergent(teacher, reference, data), data),
                       "vs_other_teacher": share(divergent(teacher, other_teacher, data), data)})
    stages.log(f"divergence: {summary([r['vs_base'] for r in shares])['mean']:.1%} of the teacher's answer "
               f"positions differ from the base's greedy choice, "
               f"{summary([r['vs_other_teacher'] for r in shares])['mean']:.1%} from the {other} teacher's")

    rules = {"divergent_only": position_rule(cfg, bases, "divergent_only", "divergent"),
             "random_only": position_rule(cfg, bases, "random_only", "random"),
             "divergent_masked": position_rule(cfg, bases, "divergent_masked", "convergent"),
             "random_masked": position_rule(cfg, bases, "random_masked", "random_masked"),
             "first_block": position_rule(cfg, bases, "first_block", only_block=0),
             "last_block": position_rule(cfg, bases, "last_block", only_block=cfg.n_layer - 1)}
    students = {name: transfer(stages, cfg, s.variant, bases, f"divergence {name}", rule, rule, plain)
                for name, rule in rules.items()}

    return {"variant": s.variant, "other_teacher": other, "share_per_base": shares,
            "share_vs_base": summary([r["vs_base"] for r in shares]),
            "share_vs_other_teacher": summary([r["vs_other_teacher"] for r in shares]),
            "untreated": plain, "treated": students, "tests": divergence_tests(students)}


def divergence_tests(treated: dict) -> dict:
    """One-sided, paired by base, between treatments' transfers: divergent positions alone carry more than
    as many random ones; leaving them out hurts more than leaving as many random ones out; the first block
    alone carries more than the last."""
    def values(name):
        return treated[name]["transfer"]["values"]
    return {"divergent_only_above_random_only": paired_greater(values("divergent_only"), values("random_only")),
            "divergent_masked_below_random_masked": paired_greater(values("random_masked"),
                                                                   values("divergent_masked")),
            "first_block_above_last_block": paired_greater(values("first_block"), values("last_block"))}


def position_rule(cfg: ExperimentConfig, bases: list[BaseSpec], name: str, positions: str = "all",
                  only_block: int | None = None) -> list[Treatment]:
    """Per base: train only the answer positions `positions` picks (divergent: where the target teacher's
    greedy choice differs from its base's), and perhaps only block `only_block`."""
    return [Treatment(name, positions=positions, only_block=only_block,
                      compare=(cfg.teacher(base, cfg.target), base) if positions != "all" else None) for base in bases]


def run(cfg: ExperimentConfig, s: SignalsConfig, out: Path, stages: Stages, header: dict) -> dict:
    bases = [cfg.main_base(i) for i in range(s.signal_bases)]
    results = dict(header)

    def finish(section: str, value: dict) -> None:  # each part's results and plot as soon as it ends
        results[section] = value
        results.update(stages.work_record())
        write_json(out / "results.json", results)
        PLOTS[section](results, out / f"signals_{section}.png")

    finish("icl", in_context(stages, cfg, s, bases))  # 1.
    finish("detectors", detect(stages, cfg, s, bases))  # 2.
    finish("entanglement", entangle(stages, cfg, s, bases))  # 3.
    plain = untreated(stages, cfg, s.variant, bases)  # make gpt's student and control: what 4. and 5. treat
    finish("divergence", divergence(stages, cfg, s, bases, plain))  # 4.
    finish("defences", defend(stages, cfg, s, bases, results["entanglement"]))  # 5.
    return results


def report(results: dict, out: Path) -> str:
    return f"{results['timing']['total']:.0f}s; wrote {out}/results.json and signals_*.png"


def agree(cfg: ExperimentConfig, s: SignalsConfig) -> None:
    """What the two configs must agree on, refused before any work."""
    if s.signal_bases > cfg.bases:
        raise ConfigError("signal_bases", f"({s.signal_bases}) must not exceed --bases ({cfg.bases})")
    if any(k >= cfg.student_steps for k in s.early_steps):
        raise ConfigError("early_steps", f"must be below --student-steps ({cfg.student_steps}): a student stopped "
                          "early trains fewer steps")


def main(argv=None) -> int:
    return experiment_main(argv, "python -m experiments.signals", __doc__, "signals", run, report, SignalsConfig,
                           check=agree,
                           analysis="pre-registered: the defences' `predicted` family and its Holm adjustment (see "
                                    "experiments/signals/defend.py, PREDICTED); every other figure is exploratory, "
                                    "its p-values uncorrected for the many tests")
