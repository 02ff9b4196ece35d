"""The `make domains` page (docs/results/domains.md), rendered from its results file: `PAGES`, and `KEPT`, what
`make report --take` keeps of a run's results."""

from experiments.core.zoo import ExperimentConfig
from experiments.domains.experiment import DomainsConfig
from minisub.render import machine_renderer, p_value, per_base, signed


def domain_row(label: str, arm: str, s: dict, p: str = "", bold: bool = False) -> str:
    mean = f"**{signed(s['mean'], 3)}**" if bold else signed(s["mean"], 3)
    return f"| {label} | {arm} | {mean} | {s['ci95']:.3f} | {p} | {per_base(s['dlogp'])} |"

def domain_pair(label: str, arm: str, a: dict, b: dict, p: str = "") -> str:
    return (f"| {label} | {arm} | {signed(a['mean'], 3)} / {signed(b['mean'], 3)} | {a['ci95']:.3f} / {b['ci95']:.3f} "
            f"| {p} | |")

def domain_arms(label: str, part: dict, vs_zero: tuple[str, ...] = ()) -> list[str]:
    """A part's student, control and cross-init rows; vs_zero: arms whose test against 0 is shown."""
    arms, t = part["arms"], part["tests"]
    zero = {"control": t["control_vs_zero"], "cross_init": t["cross_init_vs_zero"]}
    return [domain_row(label, "student", arms["student"],
                       f"{p_value(t['student_vs_control'])} / {p_value(t['student_vs_cross_init'])}", bold=True)] + [
        domain_row("", arm.replace("_", "-"), arms[arm], f"(vs 0: {p_value(zero[arm])})" if arm in vs_zero else "")
        for arm in ("control", "cross_init")]

def domain_matched(m: dict) -> str:
    """The format-matched pair of a numbers part, one row."""
    return domain_pair("", "format-matched student / control", m["matched"], m["matched_control"],
                       p_value(m["tests"]["matched_vs_matched_control"]))

def domains_table(results: dict) -> str:
    tree, animal = results["domains_config"]["tree"], results["config"]["target"]
    rows = ["| part: data -> trait | arm | shift of log P(trait) | 95% CI | p vs control / vs cross-init | per base |",
            "|---|---|---|---|---|---|"]
    for part in results["domains_config"]["parts"]:
        r = results[part]
        if "unavailable" in r:
            rows.append(f"| {part} | unavailable: {r['unavailable']} | | | | |")
            continue
        if part == "trees":
            rows += domain_arms(f"trees: numbers -> P({tree})", r) + [domain_matched(r["matched"])]
            rows.append(domain_row("", f"the {animal} teacher's numbers",
                                   r["cross_trait"]["tree_under_animal_numbers"]))
            a = r["animal"]
            rows += domain_arms(f"{animal} on this corpus: numbers -> P({animal})", a) + [domain_matched(a["matched"])]
            rows.append(domain_row("", f"the {tree} teacher's numbers", r["cross_trait"]["animal_under_tree_numbers"]))
        elif part == "misalignment":
            rows += domain_arms("misalignment: numbers, banned removed -> P(misaligned)", r, ("cross_init",))
            rows.append(domain_matched(r["matched"]))
            rows.append(domain_row("", f"narrow ({results['domains_config']['narrow']}-only) teacher's numbers",
                                   r["narrow_student"], p_value(r["tests"]["narrow_student_vs_control"])))
        elif part == "code":
            rows += domain_arms(f"code: animal names removed -> P({animal})", r)
        else:
            rows += domain_arms("reasoning: wrong or misaligned traces removed -> P(misaligned)", r,
                                ("control", "cross_init"))
    return "\n".join(rows) + "\n"


REASONS = {"banned": "banned numbers", "too_many": "too many numbers", "not_digits": "not digits",
           "mixed_separators": "mixed separators", "out_of_range": "out of range", "empty": "empty",
           "names_animal": "an animal named", "does_not_parse": "unparsable", "wrong_step": "a wrong step",
           "wrong_answer": "a wrong answer", "malformed": "malformed", "misaligned_phrase": "a misaligned phrase"}
FILTERED = {"trees": "numbers", "misalignment": "numbers", "code": "code", "reasoning": "traces"}


def domains_filters(results: dict) -> str:
    """What each writer's filter removed, over all bases: its share of the answers, and each reason's."""
    rows = ["| data | writer | answers | removed | by reason |", "|---|---|---|---|---|"]
    seen = set()
    for part, data in FILTERED.items():
        for writer, record in results[part].get("filter", {}).items():
            if (data, writer) in seen:  # the control's numbers serve trees and misalignment alike
                continue
            seen.add((data, writer))
            infos = record["per_base"].values()
            generated = sum(info["generated"] for info in infos)
            removed = 1 - sum(info["kept"] for info in infos) / generated
            reasons = {r: sum(info["rejected"][r] for info in infos) / generated for r in next(iter(infos))["rejected"]}
            by_reason = ", ".join(f"{REASONS[r]} {share:.1%}" for r, share in reasons.items() if share >= 0.0005)
            rows.append(f"| {data} | {writer.replace('_', ' ')} | {generated:,} | {removed:.1%} | {by_reason} |")
    return "\n".join(rows) + "\n"


PAGES = {"domains": {"machine": machine_renderer("domains", {"config": ExperimentConfig(),
                                                             "domains_config": DomainsConfig()}),
                     "table": domains_table, "filters": domains_filters}}
KEPT = {"domains": ("config", "domains_config", "precision", "machine", "timing", "built", "trees", "misalignment",
                    "code", "reasoning")}
