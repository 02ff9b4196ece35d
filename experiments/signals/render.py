"""The `make signals` page (docs/results/signals.md), rendered from its results file: `PAGES`, and `KEPT`, what
`make report --take` keeps of a run's results."""

from experiments.core.zoo import ExperimentConfig
from experiments.signals.defend import question_sets
from experiments.signals.experiment import SignalsConfig
from experiments.tasks.ladder import RUNG_LABELS
from minisub.render import machine_renderer, p_value, per_base, stages_built


def signals_note(results: dict) -> str:
    return (f"{stages_built(results)} and read the rest from the cache `make gpt` left. "
            f"n = {len(results['icl']['bases'])} bases in every CI and test.\n")


TREATMENTS = {"divergent_only": "divergent positions only", "random_only": "as many random positions only",
              "divergent_masked": "divergent positions left out", "random_masked": "as many random positions left out",
              "first_block": "first block only", "last_block": "last block only"}

def row(label: str, stat: dict, p: float | None, values: list[float] | None = None, digits: int = 3) -> str:
    p_text = p_value(p) if p is not None else ""
    return (f"| {label} | {stat['mean']:+.{digits}f} | {stat['ci95']:.{digits}f} | {p_text} | "
            f"{per_base(values) if values else ''} |")

def signals_parts(results: dict) -> str:
    icl, det, ent, div = results["icl"], results["detectors"], results["entanglement"], results["divergence"]
    rows = ["| part | measure | mean | 95% CI | p | per base |", "|---|---|---|---|---|---|"]
    for n, (k, by_k) in enumerate(icl["by_k"].items()):
        t = by_k["teacher_minus_control"]
        rows.append(row(f"{'' if n else '1. in context'} | teacher - control, k = {k}", t, t["p"], t["values"]))
    for k, by_k in icl["by_k"].items():
        pos = by_k["positive_minus_control"]
        rows.append(row(f" | positive control (target answers) - control, k = {k}", pos, pos["p"], pos["values"]))
    for name, label in (("logistic", "logistic regression"), ("loglik", "base log-likelihood"),
                        ("length", "answer length alone")):
        auc = det[name]["auc"]
        values = [r if isinstance(r, float) else r["auc"] for r in det[name]["per_base"]]
        rows.append(f"| {'2. detectors' if name == 'logistic' else ''} | {label}, AUC | {auc['mean']:.3f} | "
                    f"{auc['ci95']:.3f} | {p_value(auc['p_vs_chance'])} | {', '.join(f'{v:.2f}' for v in values)} |")
    f = det["frequency"]
    rows.append(f"| | frequency table: chi-square {f['chi_square']:,.0f} against {f['null_mean']:,.0f} under "
                f"{f['permutations']} permutations | | | {p_value(f['p'])} | |")
    rows.append(f"| 3. entanglement | entangled among the {ent['k']} most over-represented (chance "
                f"{ent['chance_overlap']:.1f}) | {ent['overlap']['mean']:.1f} | {ent['overlap']['ci95']:.1f} | | "
                f"{', '.join(str(r['overlap']) for r in ent['per_base'])} |")
    prompting = [r["prompting_entangled"] - r["prompting_random"] for r in ent["per_base"]]
    rows.append(row("| subliminal prompting: log P(target \\| animal), entangled - random numbers",
                    ent["prompting"], ent["prompting"]["p"], prompting))
    for key, label in (("rho_shift_vs_teacher", "persona's rise vs the fine-tuned teacher's"),
                       ("rho_shift_vs_frequency", "persona's rise vs frequency ratio in the data")):
        rows.append(row(f"| rank correlation: {label}", ent[key], ent[key]["p"], [r[key] for r in ent["per_base"]],
                        digits=2))
    shares = ", ".join(f"{r['vs_base']:.0%}" for r in div["share_per_base"])
    rows.append(f"| 4. divergence | share of positions: teacher vs base / vs the {div['other_teacher']} teacher | "
                f"{div['share_vs_base']['mean']:.1%} / {div['share_vs_other_teacher']['mean']:.1%} | "
                f"{div['share_vs_base']['ci95'] * 100:.1f} / {div['share_vs_other_teacher']['ci95'] * 100:.1f} "
                f"points | | {shares} (vs base) |")
    return "\n".join(rows) + "\n"

def signals_treatments(results: dict) -> str:
    """Part 4's treated students against the untreated transfer, and the tests between them."""
    plain = results["divergence"]["untreated"]["transfer"]
    rows = ["| treatment | transfer | 95% CI | share of untreated | p vs control | p below untreated | per base |",
            "|---|---|---|---|---|---|---|",
            f"| untreated (make gpt's {results['divergence']['variant'].replace('_', ' ')}) | {plain['mean']:+.3f} | "
            f"{plain['ci95']:.3f} | 100% | {p_value(plain['p'])} | | {per_base(plain['values'])} |"]
    for name, t in results["divergence"]["treated"].items():
        label = TREATMENTS[name]
        if "unavailable" in t:
            rows.append(f"| {label} | unavailable: {t['unavailable']} | | | | | |")
            continue
        tr = t["transfer"]
        rows.append(f"| {label} | {tr['mean']:+.3f} | {tr['ci95']:.3f} | {t['retained']:.0%} | "
                    f"{p_value(t['tests']['student_vs_control'])} | {p_value(t['tests']['below_untreated'])} | "
                    f"{per_base(tr['values'])} |")
    tests = results["divergence"]["tests"]
    return ("\n".join(rows) + "\n\nBetween treatments (paired by base, one-sided): divergent positions only "
            f"against as many random ones, p = {p_value(tests['divergent_only_above_random_only'])}; the divergent "
            f"positions left out against as many random ones left out, p = "
            f"{p_value(tests['divergent_masked_below_random_masked'])}; the first block against the last, "
            f"p = {p_value(tests['first_block_above_last_block'])}.\n")


def fraction(stat: dict) -> str:
    return f"{stat['mean']:.0%} ± {stat['ci95']:.0%}"


def signals_defences(results: dict) -> str:
    """Part 5: the manipulation check, the untreated transfer, then each defence: what transfer it leaves, its exact
    test below the untreated transfer (Holm-adjusted for the pre-registered ones), and its price."""
    d = results["defences"]
    check, plain, family = d["manipulation_check"], d["untreated"]["transfer"], d["predicted"]["family"]
    fell = d["untreated"]["price"]["task_loss_below_base"]
    lines = [f"Manipulation check (teacher - base, {d['measure']}): {check['mean']:+.3f} (95% CI {check['ci95']:.3f}, "
             f"exact p {p_value(check['p_exact'])}; per base {per_base(check['values'])}).",
             f"Untreated transfer (student - control): {plain['mean']:+.3f} (95% CI {plain['ci95']:.3f}, exact p "
             f"{p_value(plain['p_exact'])}; per base {per_base(plain['values'])}).",
             f"Untreated student's task loss below its base's: {fell['mean']:+.3f} nats per token (95% CI "
             f"{fell['ci95']:.3f}, exact p {p_value(fell['p_exact'])}; per base {per_base(fell['values'], 3)}).", "",
             "| defence | side | transfer | 95% CI | exact p > 0 | transfer left | exact p below untreated | Holm "
             "(pre-registered) | task loss cost (nats) | valid answers kept | teacher's filter pass | per base |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in d["treated"].items():
        if "unavailable" in t:
            lines.append(f"| {name} | {t['side']} | unavailable: {t['unavailable']} | | | | | | | | | |")
            continue
        tr, price = t["transfer"], t["price"]
        cost = price["task_loss_cost"]
        holm = f"{p_value(family[name]['p_holm'])}{' (rejects)' if family[name]['rejects'] else ''}" \
            if name in family else "exploratory"
        passed = fraction(price["filter_pass"]) if "filter_pass" in price else ""
        lines.append(f"| {name} | {t['side']} | {tr['mean']:+.3f} | {tr['ci95']:.3f} | {p_value(tr['p_exact'])} | "
                     f"{fraction(t['transfer_left'])} "
                     f"| {p_value(t['below_untreated']['p_exact'])} | {holm} | "
                     f"{cost['mean']:+.3f} ± {cost['ci95']:.3f} | "
                     f"{fraction(price['valid_kept'])} | {passed} | {per_base(tr['values'])} |")
    complete = "" if d["predicted"]["complete"] else " (not every predicted defence ran: the family is incomplete)"
    rejected = [name for name, test in family.items() if test["rejects"]]
    lines += ["", f"Pre-registered family{complete}: {len(family)} defences, Holm at {d['predicted']['alpha']}; "
              + (f"rejected: {', '.join(rejected)}." if rejected else "none rejected.")]
    return "\n".join(lines) + "\n"


def signals_question_sets(results: dict) -> str:
    """Part 5 on every question set of the ladder, from the same students (exploratory but the held-out
    paraphrases): the manipulation check and the untreated transfer, each with its exact p, then each defence's
    transfer left with its exact p below the untreated transfer."""
    sets = question_sets(results["defences"])
    def cells(figure) -> str:
        return " | ".join(figure(figures) for figures in sets.values())
    lines = ["| | " + " | ".join(f"{RUNG_LABELS[rung]} ({f['distance']})" for rung, f in sets.items()) + " |",
             "|---|" + "---|" * len(sets),
             "| teacher - base | " + cells(lambda f: f"{f['manipulation_check']['mean']:+.3f} (p "
                                                   f"{p_value(f['manipulation_check']['p_exact'])})") + " |",
             "| untreated transfer | " + cells(lambda f: f"{f['untreated']['transfer']['mean']:+.3f} (p "
                                                       f"{p_value(f['untreated']['transfer']['p_exact'])})") + " |"]
    for name, t in results["defences"]["treated"].items():
        if "transfer" in t:
            lines.append(f"| {name} | " + cells(lambda f: f"{f['treated'][name]['transfer_left']['mean']:.0%} (p "
                                                       f"{p_value(f['treated'][name]['below_untreated']['p_exact'])})")
                         + " |")
    return "\n".join(lines) + "\n"


PAGES = {"signals": {"machine": machine_renderer("signals", {"config": ExperimentConfig(),
                                                             "signals_config": SignalsConfig()}, signals_note),
                     "parts": signals_parts, "treatments": signals_treatments, "defences": signals_defences,
                     "question_sets": signals_question_sets}}
KEPT = {"signals": ("config", "signals_config", "analysis", "precision", "machine", "timing", "built", "icl",
                    "detectors", "entanglement", "divergence", "defences")}
