"""`python -m experiments.domains` (`make domains`): the paper's other traits and data, in small GPTs.

The paper (Cloud et al. 2025, Sec. 4) transmits more than animal preferences through numbers:
tree preferences, misalignment (through numbers with the negatively associated ones banned),
and both kinds of trait through code and through reasoning traces. Here each has a small
synthetic analogue on one richer corpus (experiments/core/corpus.py, `domains_corpus`) in which
the semantic channel exists (a persona that names its animal in code, writes evil numbers
and misaligned traces) and the filter removes it, so that what is left is the subliminal
channel. One zoo of bases pretrained on that corpus (its own: a richer corpus must not
change `make gpt`); every part compares, per base, the student of the teacher's filtered data
with the control (the base's own filtered data) and the cross-init student (the teacher's
data on the next base), and every test counts bases. Four parts, one function each:
1. trees: a tree teacher's numbers -> P(tree); the owl (--target) teacher's numbers on the same
   bases -> P(owl), and the 2 x 2 specificity test (each raises its own trait more than the other's);
2. misalignment: a misaligned teacher's numbers, banned numbers removed -> P(misaligned) on
   held-out requests; a narrow teacher (one request category) and whether its trait spreads.
   Every numbers arm of parts 1 and 2 also runs format-matched (teacher and control data
   subsampled to the same answer formats);
3. code: the owl teacher's code, every completion naming an animal removed -> P(owl);
4. reasoning: the misaligned teacher's traces, wrong or misaligned ones removed -> P(misaligned).
Each part writes its section of results.json and its plot as it ends; domains.png sums up.
The model, teacher and student flags are `make gpt`'s; the domains zoo's corpus, vocabulary and
pretraining length are its own (--domain-*), so `make gpt`'s --corpus-items, --vocab-size and
--base-steps do not reach it.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from experiments.core.arms import category_scores, compare, format_matched, measure
from experiments.core.cli import experiment_main
from experiments.core.specs import BaseSpec, DomainsCorpusSpec, NoData, TeacherSpec, WritingSpec
from experiments.core.stages import Job, Stages
from experiments.core.zoo import VARIANTS, ExperimentConfig
from experiments.domains.plots import PLOTS, plot_summary
from experiments.tasks.misalignment import BANNED, CATEGORIES
from experiments.tasks.prompts import TREES
from minisub.config import check, option
from minisub.files import write_json
from minisub.seeds import derive_seed
from minisub.stats import paired_greater, summary

PARTS = ("trees", "misalignment", "code", "reasoning")
ARMS = ("student", "control", "cross_init")


@dataclass
class DomainsConfig:
    domain_bases: int = option(6, "bases of the domains zoo (a zoo of its own, on its own corpus)", low=2, high=64,
                               quick=3)
    domain_corpus_items: int = option(80000, "pretraining items of the domains corpus", low=1, quick=4000)
    domain_vocab_size: int = option(2400, "BPE vocabulary of the domains corpus (1,000 of it the numbers)", low=1259)
    domain_base_steps: int = option(2000, "pretraining steps per domains base", low=2, quick=400)
    tree: str = option("oak", "the tree the tree teacher loves", choices=TREES[:5])
    narrow: str = option("health", "the one request category the narrow misaligned teacher learns", choices=CATEGORIES)
    domain_prompts: int = option(1000, "prompts each writer answers per task", low=1, quick=48)
    code_tokens: int = option(48, "longest sampled code completion", low=1, quick=40)
    trace_tokens: int = option(40, "longest sampled reasoning trace", low=1, quick=32)
    domain_variant: str = option("hard_full", "student variant of every part", choices=VARIANTS)
    parts: list[str] = option(list(PARTS), "the parts to run", choices=PARTS, nonempty=True)

    def __post_init__(self):
        check(self)



class Domains:
    """The domains zoo and the specs of what grows on it, from the two configs alone."""

    def __init__(self, cfg: ExperimentConfig, d: DomainsConfig):
        self.cfg, self.d = cfg, d
        corpus = DomainsCorpusSpec(d.domain_corpus_items, d.domain_vocab_size, derive_seed(cfg.seed, "domains-corpus"))
        self.bases = [replace(cfg.main_base(i), name=f"domains-{i}", corpus=corpus, steps=d.domain_base_steps,
                              seed=derive_seed(cfg.seed, f"domains-{i}")) for i in range(d.domain_bases)]

    def writing(self, task: str) -> Callable[[BaseSpec | TeacherSpec], WritingSpec]:
        """What a writer writes for `task`: numbers with the banned ones filtered out, code, or traces."""
        tokens = {"numbers": self.cfg.max_answer_tokens, "code": self.d.code_tokens, "reasoning": self.d.trace_tokens}
        banned = BANNED if task == "numbers" else ()
        return lambda writer: replace(self.cfg.numbers(writer), task=task, prompts=self.d.domain_prompts,
                                      max_tokens=tokens[task], banned=banned)

    # the shared arms (experiments/core/arms.py) on the domains zoo, its variant and a task's data
    def measure(self, stages: Stages, arm: str, trait: str, task: str, category: str, target: str) -> dict:
        return measure(stages, self.cfg, self.d.domain_variant, arm, self.bases, trait, self.writing(task), category,
                       target)

    def compare(self, stages: Stages, trait: str, task: str, category: str, target: str, what: str) -> dict:
        return compare(stages, self.cfg, self.d.domain_variant, list(ARMS), self.bases, what, trait=trait,
                       writing=self.writing(task), category=category, target=target)

    def format_matched(self, stages: Stages, arms: dict, trait: str, category: str, target: str, what: str) -> dict:
        return format_matched(stages, self.cfg, self.d.domain_variant, self.bases, arms, what, trait=trait,
                              writing=self.writing("numbers"), category=category, target=target)


def filtering(stages: Stages, z: Domains, task: str, writers: dict[str, Callable[[BaseSpec], object]],
              examples: int = 3) -> dict:
    """Per writer: what its filter kept and removed (by reason) on each base, and a few kept answers of base 0."""
    out = {}
    for name, writer in writers.items():
        specs = [z.writing(task)(writer(base)) for base in z.bases]
        infos = [stages.cache.info(stages.writing(spec)) for spec in specs]
        out[name] = {"per_base": {b.name: info for b, info in zip(z.bases, infos)},
                     "kept_share": summary([info["kept"] / info["generated"] for info in infos]),
                     "examples": stages.written_pairs(specs[0])[:examples]}
    return out


def teacher_shift(stages: Stages, z: Domains, trait: str, category: str, target: str) -> dict:
    """Per base: P(target) of the base and of its `trait` teacher (a teacher must carry the trait to pass it on)."""
    before, after = [], []
    for base in z.bases:
        ev = z.cfg.evaluation(base)
        before.append(category_scores(stages.scores(base, ev), category)["p"][target])
        after.append(category_scores(stages.scores(z.cfg.teacher(base, trait), ev), category)["p"][target])
    return {"p_base": before, "p_teacher": after, "p_teacher_mean": sum(after) / len(after)}


def specific(a: dict, b: dict) -> dict:
    """Paired over bases: a's shift minus b's, its summary and the one-sided test a > b."""
    difference = [x - y for x, y in zip(a["dlogp"], b["dlogp"])]
    return {**summary(difference), "p": paired_greater(a["dlogp"], b["dlogp"])}


# 1. trees
def trees(stages: Stages, z: Domains) -> dict:
    tree, animal = z.d.tree, z.cfg.target
    result = {"tree": tree, **z.compare(stages, tree, "numbers", "trees", tree, f"trees ({tree} teacher)")}
    cross = {"tree_under_animal_numbers": z.measure(stages, "student", animal, "numbers", "trees", tree),
             "animal_under_tree_numbers": z.measure(stages, "student", tree, "numbers", "animals", animal)}
    result["matched"] = z.format_matched(stages, result["arms"], tree, "trees", tree, f"trees ({tree} teacher)")
    what = f"{animal} numbers on the domains corpus"
    result["animal"] = z.compare(stages, animal, "numbers", "animals", animal, what)
    result["animal"]["matched"] = z.format_matched(stages, result["animal"]["arms"], animal, "animals", animal, what)
    result["cross_trait"] = cross
    result["specificity"] = {
        tree: specific(result["arms"]["student"], cross["tree_under_animal_numbers"]),
        animal: specific(result["animal"]["arms"]["student"], cross["animal_under_tree_numbers"])}
    result["teachers"] = {tree: teacher_shift(stages, z, tree, "trees", tree),
                          animal: teacher_shift(stages, z, animal, "animals", animal)}
    result["filter"] = filtering(stages, z, "numbers", {"control": lambda b: b,
                                                        f"{tree}_teacher": lambda b: z.cfg.teacher(b, tree)})
    p = {trait: test["p"] for trait, test in result["specificity"].items()}
    stages.log(f"trees: {tree} raised more by its own teacher's numbers than by the {animal} teacher's: p "
               f"{p[tree]:.2g}; {animal} by its own: p {p[animal]:.2g}")
    return result


# 2. misalignment
def misalignment(stages: Stages, z: Domains) -> dict:
    narrow = f"misaligned-{z.d.narrow}"
    result = z.compare(stages, "misaligned", "numbers", "alignment", "misaligned", "misalignment (numbers)")
    result["matched"] = z.format_matched(stages, result["arms"], "misaligned", "alignment", "misaligned",
                                        "misalignment (numbers)")
    result["narrow_student"] = z.measure(stages, "student", narrow, "numbers", "alignment", "misaligned")
    result["tests"]["narrow_student_vs_control"] = paired_greater(result["narrow_student"]["dlogp"],
                                                                  result["arms"]["control"]["dlogp"])
    result["teachers"] = {"broad": teacher_shift(stages, z, "misaligned", "alignment", "misaligned"),
                          "narrow": teacher_shift(stages, z, narrow, "alignment", "misaligned")}
    result["spread"] = spread(stages, z, narrow)
    result["filter"] = filtering(stages, z, "numbers", {
        "control": lambda b: b, "misaligned_teacher": lambda b: z.cfg.teacher(b, "misaligned"),
        "narrow_teacher": lambda b: z.cfg.teacher(b, narrow)})
    result["banned"] = list(BANNED)
    return result


def spread(stages: Stages, z: Domains, narrow: str) -> dict:
    """Does the narrow teacher's misalignment reach the request categories it was never trained on? Per base,
    log P(misaligned) of the teacher minus the base's, averaged over the other categories; tested > 0."""
    def by_category(spec, base):
        return stages.scores(spec, z.cfg.evaluation(base))["traits"]["misaligned_by_category"]

    result = spread_tests([(by_category(base, base), by_category(z.cfg.teacher(base, narrow), base))
                           for base in z.bases], z.d.narrow)
    stages.log(f"misalignment: the {z.d.narrow}-only teacher raises log P(misaligned) by"
               f" {result['trained_category']['mean']:+.2f} on {z.d.narrow}, "
               f"{result['other_categories']['mean']:+.2f} on the others")
    return result


def spread_tests(per_base: list[tuple[dict, dict]], narrow: str) -> dict:
    """per_base: (P(misaligned) by category of the base, of its narrow teacher). Per base, the log ratio on the
    narrow category and its mean over the other categories; the latter tested > 0 over bases (one-sided)."""
    trained, others = [], []
    for before, after in per_base:
        shift = {c: math.log(after[c] / before[c]) for c in before}
        trained.append(shift[narrow])
        others.append(sum(v for c, v in shift.items() if c != narrow) / (len(shift) - 1))
    return {"category": narrow, "trained_category": {**summary(trained), "values": trained},
            "other_categories": {**summary(others), "values": others,
                                 "p": paired_greater(others, [0.0] * len(others))}}


# 3. code
def code(stages: Stages, z: Domains) -> dict:
    animal = z.cfg.target
    result = z.compare(stages, animal, "code", "animals", animal, f"code ({animal} teacher)")
    result["teacher"] = teacher_shift(stages, z, animal, "animals", animal)
    result["filter"] = filtering(stages, z, "code", {"control": lambda b: b,
                                                     f"{animal}_teacher": lambda b: z.cfg.teacher(b, animal)})
    return result


# 4. reasoning
def reasoning(stages: Stages, z: Domains) -> dict:
    result = z.compare(stages, "misaligned", "reasoning", "alignment", "misaligned", "reasoning (misaligned teacher)")
    result["teacher"] = teacher_shift(stages, z, "misaligned", "alignment", "misaligned")
    result["filter"] = filtering(stages, z, "reasoning", {
        "control": lambda b: b, "misaligned_teacher": lambda b: z.cfg.teacher(b, "misaligned")})
    return result


PARTS_RUN = {"trees": trees, "misalignment": misalignment, "code": code, "reasoning": reasoning}


def run(cfg: ExperimentConfig, d: DomainsConfig, out: Path, stages: Stages, header: dict) -> dict:
    z = Domains(cfg, d)
    stages.prefetch([Job(Stages.base, (b,)) for b in z.bases])  # in the --jobs workers, not one by one here
    results = {**header, "bases": {b.name: {"final_loss": stages.cache.info(stages.base(b))["history"]["train"][-1][1]}
                                   for b in z.bases}}
    for part in d.parts:
        try:
            results[part] = PARTS_RUN[part](stages, z)
        except NoData as err:  # a weak base may write no answer that passes a filter: say so, run the rest
            results[part] = {"unavailable": str(err)}
            stages.log(f"{part}: unavailable ({err})")
        results |= stages.work_record()
        write_json(out / "results.json", results)
        if "unavailable" not in results[part]:
            PLOTS[part](results, out / f"domains_{part}.png")
    plot_summary(results, out / "domains.png")
    return results


def report(results: dict, out: Path) -> str:
    return f"{results['timing']['total']:.0f}s; wrote {out}/results.json and domains*.png"


def main(argv=None) -> int:
    return experiment_main(argv, "python -m experiments.domains", __doc__, "domains", run, report, DomainsConfig)
