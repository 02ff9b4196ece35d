"""Part 5 of `make signals`: every defence as a named treatment with one knob swept, the transfer it leaves, and
what it costs the data's use.

Each defence is a `Treatment` (experiments/signals/treated.py), applied alike to the teacher's side and the
control's (one exception: dilution mixes control answers into the teacher's data; the control diluted with
itself would stay the control, so it stays as it is):
- teacher side: temperature (0: greedy), top-p, min-p: how every writer samples;
- data side: shuffles within and across answers, re-rendered formats, dilution with control answers, the
  entangled numbers dropped, every answer rewritten by an unrelated base (its own answer to the same prompt),
  the answers a detector trained on the other bases' data rates most teacher-like
  dropped (experiments/signals/defences.py), the divergent positions left out of the loss (part 4's rule: where
  the teacher's greedy choice differs from its base's);
- student side: a KL penalty to the starting base, a pull toward the starting weights, early stopping, the first
  block frozen, and the teacher's own weight change projected out of every update (an *oracle*: a defender does
  not know it) (experiments/signals/tuning.py).

Measure: the preference among animals on the held-out paraphrases (experiments/core/analysis.py, `preference`),
the question set on which the teacher's trait passes its manipulation check; the check itself (teacher - base,
per base) comes first, then the untreated transfer (student - control) with its exact test. The same figures on
every other question set of the ladder (experiments/tasks/ladder.py), from the same students, are exploratory.
A defence's transfer is its treated student's shift minus its treated control's; per base, untreated minus
treated transfer is tested > 0 by exact sign-flip over bases. "Transfer left" is the ratio of the means over
bases, its interval the treated transfer's 95% CI over the untreated mean.

The price, on fresh prompts (another seed) that no student trained on (`held_out`): the student's loss on the
untreated teacher's answers to them, and its cost, the treated student's loss minus the untreated one's per base
(nats per token; not a share of the untreated student's fall below its base, which is too small beside the
bases' spread to divide by); the share of its own answers to them that pass the paper's filter, kept as a share
of the untreated student's; and, for the teacher-side knobs, the filter's pass rate on the teacher's data.

Fixed here before any data (`PREDICTED`): the defences the literature predicts to lower transfer, each at one
knob value; their tests form one family, Holm-corrected at `ALPHA`. Every other defence and knob value is
exploratory.
"""

from dataclasses import dataclass, replace

from experiments.core.analysis import over_units
from experiments.core.arms import arm_jobs
from experiments.core.specs import BaseSpec, NoData, WritingSpec
from experiments.core.stages import Stages
from experiments.core.zoo import ExperimentConfig, next_base
from experiments.gpt.ladder import shift as ladder_shift
from experiments.signals.treated import DetectorSpec, Treatment, price, treated
from experiments.tasks.ladder import RUNGS
from minisub.seeds import derive_seed
from minisub.stats import holm, summary

PREDICTED = {  # defence at its tested knob value -> who predicts it lowers transfer
    "shuffle_within": "Cloud et al. 2025, Fig. 16 (shuffled numbers remove most of the transfer)",
    "shuffle_across": "Cloud et al. 2025, Fig. 16",
    "top_p_0.8": "Zur et al. 2025 (top-p 0.8 lowered owl transfer in Qwen2.5-7B)",
    "min_p_0.1": "Zur et al. 2025 (a probability threshold at the teacher lowered it more)",
    "divergent_masked": "Schrodi et al. 2026 (masking the divergence tokens from the loss mostly removes transfer)",
    "dilute_0.75": "Schrodi et al. 2026 (data mixed from several teachers suppresses transfer); a 7k-row dataset "
                   "inside a larger blend no longer moved Qwen2.5-7B",
    "kl_to_start_1": "Kitkana and Arora, arXiv 2604.25779 (a KL penalty to the base attenuates transfer)",
    "oracle_projection": "Kitkana and Arora, arXiv 2604.25779 (projecting out the trait's direction suppresses it)",
}
ALPHA = 0.05
PRIMARY = "held_out"  # the question set the pre-registered family is measured on; every other one is exploratory


@dataclass(frozen=True)
class Defence:
    name: str  # "top_p_0.8": the treatment at one knob value
    side: str  # teacher, data or student
    knob: str  # what is swept ("" for a defence without a knob)
    value: float | None
    student: list[Treatment]  # per base
    control: list[Treatment] | None  # per base; None: the control as it is


def defence(side: str, treatments: list[Treatment], knob: str = "", value: float | None = None,
            control: bool = True) -> Defence:
    """A defence named after its treatments (one per base), given to the control too unless control is False."""
    return Defence(treatments[0].name, side, knob, value, treatments, treatments if control else None)


def defences(cfg: ExperimentConfig, s, bases: list[BaseSpec], entangled: dict) -> list[Defence]:
    """Every defence of the run, each knob value its own (s: the SignalsConfig; entangled: part 3's results)."""
    def every(t: Treatment) -> list[Treatment]:
        return [t] * len(bases)
    teacher = [defence("teacher", every(Treatment("greedy" if t == 0 else f"temperature_{t:g}", temperature=t)),
                       "temperature", t) for t in s.temperatures]
    teacher += [defence("teacher", every(Treatment(f"top_p_{p:g}", top_p=p)), "top_p", p) for p in s.top_ps]
    teacher += [defence("teacher", every(Treatment(f"min_p_{p:g}", min_p=p)), "min_p", p) for p in s.min_ps]

    data = [defence("data", every(Treatment(name, data=name))) for name in ("shuffle_within", "shuffle_across",
                                                                            "rerender")]
    numbers = {row["base"]: tuple(sorted(row["entangled"])) for row in entangled["per_base"]}
    data.append(defence("data", [Treatment("drop_entangled", data="drop", drop=numbers[b.name]) for b in bases]))
    data.append(defence("data", [Treatment("rewrite_unrelated", data="rewrite", mix_with=replace(
        cfg.numbers(bases[next_base(i, len(bases))]), seed=b.seed)) for i, b in enumerate(bases)]))  # same prompts
    data += [defence("data", [Treatment(f"detector_{part:g}", data="detector", share=part, detector=DetectorSpec(
        tuple((cfg.numbers(cfg.teacher(o, cfg.target)), cfg.numbers(o)) for o in bases if o != b),
        s.detector_steps, s.detector_l2, b.seed)) for b in bases], "share", part) for part in s.detector_drops]
    data.append(defence("data", [Treatment("divergent_masked", positions="convergent", compare=(
        cfg.teacher(b, cfg.target), b)) for b in bases]))  # part 4's: where teacher and base would choose apart
    data += [defence("data", [Treatment(f"dilute_{part:g}", data="dilute", share=part, mix_with=cfg.numbers(b))
                              for b in bases], "share", part, control=False) for part in s.dilutions]

    student = [defence("student", every(Treatment(f"kl_to_start_{w:g}", kl_to_start=w)), "kl_to_start", w)
               for w in s.kl_weights]
    student += [defence("student", every(Treatment(f"pull_to_start_{p:g}", pull_to_start=p)), "pull_to_start", p)
                for p in s.pulls]
    student += [defence("student", every(Treatment(f"early_stop_{k}", steps=k)), "steps", k) for k in s.early_steps]
    student.append(defence("student", every(Treatment("freeze_block_0", frozen_block=0))))
    student.append(defence("student", [Treatment("oracle_projection", project_out=cfg.teacher(b, cfg.target))
                                       for b in bases]))
    return teacher + data + student


def held_out(cfg: ExperimentConfig, s, base: BaseSpec) -> WritingSpec:
    """The target teacher of `base` answering fresh number prompts (its own seed): what every student is priced on."""
    return replace(cfg.numbers(cfg.teacher(base, cfg.target)), prompts=s.price_prompts,
                   seed=derive_seed(base.seed, "held-out numbers"))


def shifts(stages: Stages, cfg: ExperimentConfig, variant: str, arm: str, bases: list[BaseSpec], treat=None
           ) -> tuple[dict[str, list[float]], list[dict]]:
    """Per question set of the ladder (experiments/tasks/ladder.py), per base: the arm's shift of the target's
    preference among animals; and each base's stage record."""
    by_set, infos = {rung: [] for rung in RUNGS}, []
    for student, start in arm_jobs(cfg, variant, arm, bases, treat=treat):
        before, trained = stages.run(start), stages.run(student)
        for rung in RUNGS:
            by_set[rung].append(ladder_shift(before, trained["after"], rung, "preference", cfg.target))
        infos.append(trained)
    return by_set, infos


def with_exact(values: list[float]) -> dict:
    return {**over_units(dict(enumerate(values))), "values": values}


def manipulation_check(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec]) -> dict[str, dict]:
    """Per question set, per base: the target teacher's preference minus its base's, the students' measure."""
    scores = [[stages.scores(m, cfg.evaluation(b)) for m in (b, cfg.teacher(b, cfg.target))] for b in bases]
    return {rung: with_exact([ladder_shift(before, teacher, rung, "preference", cfg.target)
                              for before, teacher in scores]) for rung in RUNGS}


def base_prices(stages: Stages, cfg: ExperimentConfig, s, bases: list[BaseSpec]) -> list[dict]:
    """Each base's own price before any student training, measured as a student's is (`price`)."""
    vocab = [stages.answer_vocabulary(b.corpus, eos=True) for b in bases]  # a hard student's loss: with <eos>
    return [price(stages, stages.load(b), held_out(cfg, s, b), v)["price"] for b, v in zip(bases, vocab)]


def priced(untreated: list[dict], student: list[dict]) -> dict:
    """Per base, the treated student's task loss and valid share, the task-loss cost (treated - untreated, with
    its exact p of cost > 0) and the valid share kept (treated over untreated)."""
    loss = [p["price"]["task_loss"] for p in student]
    valid = [p["price"]["valid"] for p in student]
    cost = [t - u["price"]["task_loss"] for u, t in zip(untreated, loss)]
    valid_kept = [v / u["price"]["valid"] if u["price"]["valid"] else float("nan")  # nan: none to keep
                  for u, v in zip(untreated, valid)]
    return {"task_loss": {**summary(loss), "values": loss}, "valid": {**summary(valid), "values": valid},
            "task_loss_cost": with_exact(cost), "valid_kept": {**summary(valid_kept), "values": valid_kept}}


def learned(base: list[dict], untreated: list[dict]) -> dict:
    """Per base, how far the untreated student's task loss fell below its base's (nats per token), exact p > 0."""
    return with_exact([b["task_loss"] - u["price"]["task_loss"] for b, u in zip(base, untreated)])


def filter_pass(stages: Stages, cfg: ExperimentConfig, bases: list[BaseSpec], treatments: list[Treatment]) -> dict:
    """Per base: the share of the teacher's answers that passed the paper's filter, as the treatment samples them."""
    shares = []
    for base, t in zip(bases, treatments):
        info = stages.cache.info(stages.writing(t.sampled(cfg.numbers(cfg.teacher(base, cfg.target)))))
        shares.append(info["kept"] / info["generated"])
    return {**summary(shares), "values": shares}


def defend(stages: Stages, cfg: ExperimentConfig, s, bases: list[BaseSpec], entangled: dict) -> dict:
    variant, prices = s.variant, [held_out(cfg, s, b) for b in bases]
    listed = defences(cfg, s, bases, entangled)
    untreated_priced = treated([Treatment("untreated")] * len(bases), prices)
    hooks = [("student", None), ("control", None), ("student", untreated_priced)] + [
        hook for d in listed for hook in (("student", treated(d.student, prices)), ("control", treated(d.control)))]
    stages.prefetch([job for arm, treat in hooks for pair in arm_jobs(cfg, variant, arm, bases, treat=treat)
                     for job in pair])

    check = manipulation_check(stages, cfg, bases)
    student, _ = shifts(stages, cfg, variant, "student", bases)
    control, _ = shifts(stages, cfg, variant, "control", bases)
    plain = {rung: with_exact([a - b for a, b in zip(student[rung], control[rung])]) for rung in RUNGS}
    _, untreated_info = shifts(stages, cfg, variant, "student", bases, untreated_priced)
    base = base_prices(stages, cfg, s, bases)
    stages.log(f"defences: teacher - base {check[PRIMARY]['mean']:+.3f} (exact p {check[PRIMARY]['p_exact']:.2g}); "
               f"untreated transfer {plain[PRIMARY]['mean']:+.3f} (95% CI {plain[PRIMARY]['ci95']:.3f}, exact p "
               f"{plain[PRIMARY]['p_exact']:.2g})")

    results, beside = {}, {rung: {} for rung in RUNGS if rung != PRIMARY}
    for d in listed:
        about = {"side": d.side, "knob": d.knob, "value": d.value}
        try:
            treated_student, infos = shifts(stages, cfg, variant, "student", bases, treated(d.student, prices))
            treated_control = shifts(stages, cfg, variant, "control", bases, treated(d.control))[0]
        except NoData as err:  # a weak base may answer nothing but <eos> when greedy: say so, keep the rest
            results[d.name] = about | {"unavailable": str(err)}
            stages.log(f"defence {d.name}: unavailable ({err})")
            continue
        measured = {rung: evaluated(plain[rung], treated_student[rung], treated_control[rung]) for rung in RUNGS}
        results[d.name] = result = about | measured[PRIMARY]
        for rung, figures in beside.items():
            figures[d.name] = measured[rung]
        result["price"] = priced(untreated_info, infos)
        if d.side == "teacher":
            result["price"]["filter_pass"] = filter_pass(stages, cfg, bases, d.student)
        stages.log(f"defence {d.name}: transfer {result['transfer']['mean']:+.3f}, "
                   f"{result['transfer_left']['mean']:.0%} left (exact p below untreated "
                   f"{result['below_untreated']['p_exact']:.2g}), task loss "
                   f"{result['price']['task_loss_cost']['mean']:+.4f} nats")
    untreated_price = priced(untreated_info, untreated_info) | {
        "filter_pass": filter_pass(stages, cfg, bases, [Treatment("untreated")] * len(bases)),
        "task_loss_below_base": learned(base, untreated_info)}
    return {"variant": variant, "measure": "preference among animals, held-out paraphrases",
            "manipulation_check": check[PRIMARY], "untreated": {"student": student[PRIMARY],
                                                                "control": control[PRIMARY],
                                                                "transfer": plain[PRIMARY], "price": untreated_price},
            "base_price": base, "treated": results, "predicted": predicted(results),
            "question_sets": {rung: {"distance": RUNGS[rung][0], "manipulation_check": check[rung],
                                     "untreated": {"student": student[rung], "control": control[rung],
                                                   "transfer": plain[rung]}, "treated": figures}
                              for rung, figures in beside.items()}}


def question_sets(defences: dict) -> dict:
    """Part 5's figures per question set, in the ladder's order: the held-out paraphrases' (the primary, at the
    top level of the section) among the others'."""
    primary = {"distance": RUNGS[PRIMARY][0]} | {key: defences[key] for key in ("manipulation_check", "untreated",
                                                                               "treated")}
    sets = {PRIMARY: primary} | defences["question_sets"]
    return {rung: sets[rung] for rung in RUNGS if rung in sets}


def evaluated(plain: dict, student: list[float], control: list[float]) -> dict:
    """A defence's transfer per base, its exact tests (treated transfer > 0; untreated - treated > 0), and the
    transfer left: the ratio of the means, its interval the treated transfer's CI over the untreated mean."""
    transfer = [a - b for a, b in zip(student, control)]
    drop = [u - t for u, t in zip(plain["values"], transfer)]
    left = transfer_left(summary(transfer), plain["mean"])
    return {"student": student, "control": control, "transfer": with_exact(transfer),
            "below_untreated": with_exact(drop), "transfer_left": left}


def transfer_left(treated: dict, untreated_mean: float) -> dict:
    return {"mean": treated["mean"] / untreated_mean, "ci95": treated["ci95"] / abs(untreated_mean)}


def predicted(results: dict) -> dict:
    """The pre-registered family: each predicted defence's exact p of untreated - treated > 0, Holm over those run.
    complete: every predicted defence ran (a run with other knob values tests fewer, and says so)."""
    ran = [name for name in PREDICTED if "below_untreated" in results.get(name, {})]
    family = {name: {"p_exact": results[name]["below_untreated"]["p_exact"], "reference": PREDICTED[name]}
              for name in ran}
    for name, adjusted in zip(ran, holm([family[n]["p_exact"] for n in ran]) if ran else []):
        family[name] |= {"p_holm": adjusted, "rejects": adjusted <= ALPHA}
    return {"alpha": ALPHA, "complete": len(ran) == len(PREDICTED), "family": family}
