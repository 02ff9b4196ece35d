"""`python -m experiments.forks` (`make forks`): how much shared pretraining does transfer need?

The paper's cross-model grid (Cloud et al. 2025, Sec. 5) transfers only between models of one
base, and between GPT-4.1 and GPT-4o, which it attributes to a shared checkpoint. Here the
shared part is swept. The story, one step per function below `run`:
1. pairs (`family`): each of --pairs parents is one pretraining run of a main base's recipe,
   stopped at every fork point (a share of the main bases' steps; 0 is the initialization) and
   its state kept (experiments/core/specs.py, ForkSpec). At each point child b goes on from that
   state with a data order of its own to the full step count; child a is the parent's run itself,
   gone on to the end: every child has a main base's training, schedule and all, and a pair's
   children share exactly the steps before the fork. The parent's run is trained once, each stop
   on from the one before. Each pair's unrelated base is a main base of make gpt (main-<pair>):
   independent of every pair and used by one pair only, so pairs stay independent units;
2. arms (`point_record`), on make gpt's primary variant (hard labels, full fine-tuning): each
   child's owl teacher and its numbers; students from a child on its own teacher's numbers (self),
   on its sibling's (sibling), the unrelated base on both (unrelated), and every start on its own
   base's numbers (its control). Per pair, self, sibling and unrelated are student - control,
   averaged over the pair's two directions; share = sibling / self. The teacher's own shift
   (teacher - base) is the manipulation check, on the same measure and pairs;
3. the measure: the preference among animals on the held-out paraphrases, the question set whose
   manipulation check passed in make gpt's pre-registration v2 (raw log P beside it);
4. the tests, fixed here before any data (`PREREGISTERED`): per fork point, sibling > unrelated,
   one-sided exact sign-flip over pairs; Holm over the points; and, because Holm over m points
   with n pairs cannot reject below m / 2^n, a fixed sequence from the latest fork point to the
   earliest, each at alpha, stopping at the first that does not reject;
5. why, in weights (experiments/forks/geometry.py): the children's cosine since the fork, and the
   theorem's teacher-step cosine from self, sibling and unrelated starts.
Everything else (self > 0, share, cosines against transfer) is exploratory.
"""

from dataclasses import dataclass, fields, replace
from pathlib import Path

from experiments.core.analysis import over_units, replicate_record, shift_field
from experiments.core.cli import experiment_main
from experiments.core.specs import BaseSpec, EvalSpec, ForkSpec, TeacherSpec, base_of
from experiments.core.stages import Job, Stages
from experiments.core.zoo import ExperimentConfig
from experiments.forks.geometry import AlignmentSpec, alignment, cosine, model_vector, state_vector
from experiments.forks.plots import plot_forks
from experiments.gpt.ladder import shift as ladder_shift
from experiments.gpt.preregistration import PRIMARY_VARIANT
from minisub.config import ConfigError, check, option
from minisub.files import write_json
from minisub.seeds import derive_seed
from minisub.stats import holm, spearman, summary

ALPHA = 0.05
PREREGISTERED = {
    "alpha": ALPHA,
    "hypothesis": "a student from a fork's sibling moves toward the teacher's animal more than one from an unrelated "
                  "base does (student - control, averaged over the pair's two directions)",
    "measure": "shift of log P(target | an animal) on the held-out paraphrases",
    "test": "per fork point, one-sided exact sign-flip test over pairs of sibling - unrelated",
    "family": "Holm over the fork points; and a fixed sequence from the latest fork point to the earliest, each at "
              "alpha, stopping at the first non-rejection (Holm's floor with m points and n pairs is m / 2^n)",
    "exploratory": "self > 0, share = sibling / self, the cosines and their rank correlation with the transfer",
}


@dataclass
class ForksConfig:
    pairs: int = option(6, "independent parents, each with its two children at every fork point: the replicates of "
                        "every test (an exact test over n pairs cannot give p below 2^-n)", low=2, high=64, quick=2)
    fork_points: list[float] = option([0.0, 0.5, 0.8, 0.9, 0.95, 0.99], "fork points: the share of the main bases' "
                                      "pretraining steps a pair's two children have in common, each in [0, 1)",
                                      low=0.0, nonempty=True, quick=[0.0, 0.5])

    def __post_init__(self):
        check(self)
        if any(point >= 1 for point in self.fork_points):
            raise ConfigError("fork_points", f"must each be below 1 (1 would be one model twice), not "
                              f"{max(self.fork_points)}")
        if len(set(self.fork_points)) != len(self.fork_points):
            raise ConfigError("fork_points", "must each be given once")


@dataclass(frozen=True)
class Family:
    """One pair's models: the parent's stopped run at each fork step, child a, child b at each fork step, and
    the pair's unrelated base."""
    states: dict[int, ForkSpec]
    a: BaseSpec
    b: dict[int, BaseSpec]
    unrelated: BaseSpec


def fork_steps(cfg: ExperimentConfig, forks: ForksConfig) -> list[int]:
    """The fork points as steps of the main bases' schedule, earliest first; two points on one step are refused."""
    steps = sorted(round(point * cfg.base_steps) for point in forks.fork_points)
    if len(set(steps)) != len(steps):
        raise ValueError(f"--fork-points: two points fall on one step of the {cfg.base_steps}-step pretraining")
    return steps


def family(cfg: ExperimentConfig, steps: list[int], pair: int) -> Family:
    run = cfg.pretraining(f"forks{pair}", derive_seed(cfg.seed, f"forks-{pair}"), cfg.n_layer, cfg.n_embd,
                          cfg.base_steps)
    recipe = {f.name: getattr(run, f.name) for f in fields(BaseSpec)}
    states, previous = {}, None
    for step in steps:
        previous = states[step] = ForkSpec(**recipe, step=step, previous=previous)
    a = BaseSpec(**recipe | {"name": f"forks{pair}-a", "parent": previous})
    b = {step: BaseSpec(**recipe | {"name": f"forks{pair}-b{step}", "parent": states[step],
                                    "seed": derive_seed(cfg.seed, f"forks-{pair}-b{step}")}) for step in steps}
    return Family(states, a, b, cfg.main_base(pair))


def held_out_only(cfg: ExperimentConfig, base: BaseSpec) -> EvalSpec:
    """make gpt's scoring, on the held-out paraphrases alone: the question set the measure is on."""
    return replace(cfg.evaluation(base), question_sets=())


def student(cfg: ExperimentConfig, init: BaseSpec, writer: BaseSpec | TeacherSpec) -> Job:
    """The primary variant's student from `init` on `writer`'s numbers."""
    spec = cfg.student(PRIMARY_VARIANT, init, cfg.numbers(writer))
    return Job(Stages.student, (replace(spec, eval=held_out_only(cfg, init)),))


def plan(cfg: ExperimentConfig, families: list[Family]) -> list[Job]:
    """Every stage `run` reads: the children (the longest-trained first), the teachers' scores, every student and
    every teacher-step cosine."""
    jobs = []
    for fam in families:
        jobs += [Job(Stages.base, (b,)) for b in fam.b.values()] + [Job(Stages.base, (fam.a,))]
    for fam in families:
        teacher_a = cfg.teacher(fam.a, cfg.target)
        jobs += [student(cfg, fam.a, teacher_a), student(cfg, fam.a, fam.a), student(cfg, fam.unrelated, teacher_a),
                 student(cfg, fam.unrelated, fam.unrelated)]
        for b in fam.b.values():
            teacher_b = cfg.teacher(b, cfg.target)
            jobs += [student(cfg, b, teacher_b), student(cfg, b, b), student(cfg, fam.a, teacher_b),
                     student(cfg, b, teacher_a), student(cfg, fam.unrelated, teacher_b)]
        models = [fam.a, fam.unrelated, teacher_a, *fam.b.values(),
                  *(cfg.teacher(b, cfg.target) for b in fam.b.values())]
        jobs += [Job(Stages.scores, (m, held_out_only(cfg, base_of(m)))) for m in models]
        jobs += [Job(alignment, (spec,)) for step in fam.b for spec in alignments(cfg, fam, step).values()]
    return jobs


def shift(stages: Stages, cfg: ExperimentConfig, init: BaseSpec, writer: BaseSpec | TeacherSpec, measure: str) -> float:
    """The student's shift from `init` on `writer`'s numbers, against `init`: preference or raw log P."""
    job = student(cfg, init, writer)
    before = stages.scores(init, job.args[0].eval)
    return replicate_record(init.name, init.name, before, stages.run(job), cfg.target)[shift_field("held_out", measure)]


def teacher_shift(stages: Stages, cfg: ExperimentConfig, base: BaseSpec, measure: str) -> float:
    """The base's owl teacher against the base: the manipulation check."""
    evaluation = held_out_only(cfg, base)
    return ladder_shift(stages.scores(base, evaluation), stages.scores(cfg.teacher(base, cfg.target), evaluation),
                        "held_out", measure, cfg.target)


def pair_values(stages: Stages, cfg: ExperimentConfig, fam: Family, step: int, measure: str) -> dict[str, float]:
    """One pair at one fork point: teacher, self, sibling and unrelated, each averaged over the pair's two
    directions (a's teacher and b's); students net of the control of the base they start from."""
    a, b, u = fam.a, fam.b[step], fam.unrelated
    teacher = {a: cfg.teacher(a, cfg.target), b: cfg.teacher(b, cfg.target)}
    control = {m: shift(stages, cfg, m, m, measure) for m in (a, b, u)}

    def net(init: BaseSpec, writer: BaseSpec) -> float:
        return shift(stages, cfg, init, teacher[writer], measure) - control[init]
    return {"teacher": (teacher_shift(stages, cfg, a, measure) + teacher_shift(stages, cfg, b, measure)) / 2,
            "self": (net(a, a) + net(b, b)) / 2, "sibling": (net(a, b) + net(b, a)) / 2,
            "unrelated": (net(u, a) + net(u, b)) / 2}


def cosines(stages: Stages, cfg: ExperimentConfig, fam: Family, step: int) -> dict[str, float]:
    """One pair at one fork point, in weights (experiments/forks/geometry.py)."""
    a, b = fam.a, fam.b[step]
    fork = state_vector(stages, fam.states[step])
    return {"children": cosine(model_vector(stages.load(a)) - fork, model_vector(stages.load(b)) - fork),
            **{name: alignment(stages, spec) for name, spec in alignments(cfg, fam, step).items()}}


def alignments(cfg: ExperimentConfig, fam: Family, step: int) -> dict[str, AlignmentSpec]:
    """The teacher-step cosines of one pair at one fork point: child b's teacher against self, sibling and
    unrelated starts."""
    teacher_b = cfg.teacher(fam.b[step], cfg.target)
    return {name: AlignmentSpec(teacher_b, start, cfg.numbers(teacher_b), cfg.numbers(start))
            for name, start in (("self", fam.b[step]), ("sibling", fam.a), ("unrelated", fam.unrelated))}


def over_pairs(values: dict[str, float], test: bool = True) -> dict:
    """A per-pair figure with its mean and 95% CI over pairs (and, where `test`, its exact one-sided p of > 0)."""
    return {"per_pair": values, **(over_units(values) if test else summary(list(values.values())))}


def point_record(stages: Stages, cfg: ExperimentConfig, families: list[Family], point: float, step: int) -> dict:
    """One fork point over the pairs: the manipulation check, the arms on both measures, the share, the test
    sibling > unrelated, the cosines, and each pair's child b's final pretraining loss."""
    names = [fam.a.name.removesuffix("-a") for fam in families]
    measured = {measure: [pair_values(stages, cfg, fam, step, measure) for fam in families]
                for measure in ("preference", "raw")}

    def figure(measure: str, arm: str) -> dict:
        return over_pairs({n: v[arm] for n, v in zip(names, measured[measure])})
    pref = measured["preference"]
    geometry = [cosines(stages, cfg, fam, step) for fam in families]
    return {
        "fork_point": point, "step": step,
        **{arm: figure("preference", arm) for arm in ("teacher", "self", "sibling", "unrelated")},
        "share": over_pairs({n: v["sibling"] / v["self"] for n, v in zip(names, pref)}, test=False),
        "sibling_minus_unrelated": over_pairs({n: v["sibling"] - v["unrelated"] for n, v in zip(names, pref)}),
        "raw": {arm: figure("raw", arm) for arm in ("teacher", "self", "sibling", "unrelated")},
        "cosines": {kind: over_pairs({n: g[kind] for n, g in zip(names, geometry)}, test=False)
                    for kind in ("children", "self", "sibling", "unrelated")},
        "final_loss_b": {n: final_loss(stages, fam.b[step]) for n, fam in zip(names, families)},
    }


def final_loss(stages: Stages, base: BaseSpec) -> float:
    return stages.cache.info(stages.base(base))["history"]["train"][-1][1]


def sibling_tests(points: list[dict]) -> list[dict]:
    """Holm over the points, and the fixed sequence from the latest point to the earliest (`PREREGISTERED`)."""
    adjusted = holm([p["sibling_minus_unrelated"]["p_exact"] for p in points])
    sequence, open_ = [], True
    for p, p_holm in sorted(zip(points, adjusted), key=lambda item: -item[0]["step"]):
        p["sibling_minus_unrelated"]["p_holm"] = p_holm
        p_exact = p["sibling_minus_unrelated"]["p_exact"]
        rejects = open_ and p_exact <= ALPHA
        sequence.append({"fork_point": p["fork_point"], "p_exact": p_exact, "tested": open_, "rejects": rejects})
        open_ = rejects
    return sequence


def run(cfg: ExperimentConfig, forks: ForksConfig, out: Path, stages: Stages, header: dict) -> dict:
    steps = fork_steps(cfg, forks)
    points = dict(zip(steps, sorted(forks.fork_points)))
    families = [family(cfg, steps, pair) for pair in range(forks.pairs)]  # 1.
    stages.prefetch(plan(cfg, families))
    records = [point_record(stages, cfg, families, points[step], step) for step in steps]  # 2., 3., 5.
    sequence = sibling_tests(records)  # 4.
    for r in records:
        stages.log(f"fork point {r['fork_point']:g} (step {r['step']}): teacher {r['teacher']['mean']:+.3f}, self "
                   f"{r['self']['mean']:+.3f}, sibling {r['sibling']['mean']:+.3f}, unrelated "
                   f"{r['unrelated']['mean']:+.3f}; sibling - unrelated exact p "
                   f"{r['sibling_minus_unrelated']['p_exact']:.2g} (Holm {r['sibling_minus_unrelated']['p_holm']:.2g})")
    units = [(r["cosines"]["sibling"]["per_pair"][n], r["sibling"]["per_pair"][n]) for r in records
             for n in r["sibling"]["per_pair"]]
    results = {
        **header, **stages.work_record(), "preregistered": PREREGISTERED, "fork_points": records,
        "sequence": sequence,
        "cosine_vs_sibling": {"rho": spearman(*zip(*units)), "units": len(units),
                              "note": "Spearman over every (pair, fork point); units share pairs: descriptive, no p"},
        "pairs": {fam.a.name.removesuffix("-a"): {"parent_seed": fam.a.seed, "unrelated": fam.unrelated.name,
                                                  "final_loss_a": final_loss(stages, fam.a),
                                                  "final_loss_unrelated": final_loss(stages, fam.unrelated)}
                  for fam in families},
    }
    write_json(out / "results.json", results)
    plot_forks(results, out / "forks_curve.png")
    return results


def verdict(step: dict) -> str:
    """What the sequence did at one fork point."""
    return "rejects" if step["rejects"] else "does not reject" if step["tested"] else "not tested"


def report(results: dict, out: Path) -> str:
    """The pre-registered sequence, one line per fork point, and what was written."""
    lines = [f"sibling > unrelated at fork point {s['fork_point']:g}: exact p {s['p_exact']:.2g}, {verdict(s)}"
             for s in results["sequence"]]
    return "\n".join(lines + [f"{results['timing']['total']:.0f}s; wrote {out}/results.json, forks_curve.png"])


def main(argv=None) -> int:
    return experiment_main(argv, "python -m experiments.forks", __doc__, "forks", run, report, extra=ForksConfig,
                           check=fork_steps,
                           analysis="pre-registered: the sibling > unrelated tests in `sequence` and their Holm "
                                    "adjustment (see `preregistered`); every other figure is exploratory")
