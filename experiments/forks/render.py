"""The `make forks` page (docs/results/forks.md), rendered from its results file: `PAGES`, and `KEPT`, what
`make report --take` keeps of a run's results."""

from experiments.core.zoo import ExperimentConfig
from experiments.forks.experiment import ForksConfig, verdict
from minisub.render import machine_renderer, p_value, signed, stages_built


def cell(figure: dict) -> str:
    return f"{signed(figure['mean'], 3)} ± {figure['ci95']:.3f}"


def forks_points(results: dict) -> str:
    """Per fork point: the teacher's shift (the manipulation check), self, sibling and unrelated transfer, the
    share, and the pre-registered test of sibling > unrelated."""
    rows = ["| fork point (step) | teacher - base | self | sibling | unrelated | sibling / self (per-pair mean; "
            "ratio of means) | sibling - unrelated | exact p | Holm | sequence |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    sequence = {s["fork_point"]: s for s in results["sequence"]}
    for p in results["fork_points"]:
        test = p["sibling_minus_unrelated"]
        rows.append(f"| {p['fork_point']:g} ({p['step']}) | {cell(p['teacher'])} | {cell(p['self'])} | "
                    f"{cell(p['sibling'])} | {cell(p['unrelated'])} | {signed(p['share']['mean'])} ± "
                    f"{p['share']['ci95']:.2f}; {signed(p['sibling']['mean'] / p['self']['mean'])} | "
                    f"{cell(test)} | {p_value(test['p_exact'])} | {p_value(test['p_holm'])} | "
                    f"{verdict(sequence[p['fork_point']])} |")
    n = results["fork_points"][0]["self"]["n"]
    return ("\n".join(rows) + f"\n\nMean ± 95% CI half-width over {n} pairs; every figure a shift of log P(owl | an "
            "animal) on the held-out paraphrases, student - control, each pair's two directions averaged. Exact p: "
            "one-sided sign-flip over pairs. Sequence: the pre-registered fixed sequence from the latest point.\n")


def forks_raw(results: dict) -> str:
    """The same arms on raw log P(owl)."""
    rows = ["| fork point | teacher - base | self | sibling | unrelated |", "|---|---|---|---|---|"]
    for p in results["fork_points"]:
        raw = p["raw"]
        rows.append(f"| {p['fork_point']:g} | " + " | ".join(cell(raw[arm]) for arm in
                                                              ("teacher", "self", "sibling", "unrelated")) + " |")
    return "\n".join(rows) + "\n"


def forks_cosines(results: dict) -> str:
    """The weight cosines per fork point, and their rank correlation with the sibling's transfer."""
    rows = ["| fork point | children since the fork | teacher change vs self step | vs sibling step | "
            "vs unrelated step |", "|---|---|---|---|---|"]
    for p in results["fork_points"]:
        c = p["cosines"]
        rows.append(f"| {p['fork_point']:g} | " + " | ".join(cell(c[k]) for k in
                                                              ("children", "self", "sibling", "unrelated")) + " |")
    rho = results["cosine_vs_sibling"]
    return ("\n".join(rows) + f"\n\nSpearman's rho of the sibling-step cosine with the sibling's transfer over every "
            f"(pair, fork point), {rho['units']} of them: {signed(rho['rho'])} (they share pairs: descriptive, no "
            "p).\n")


def span(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def forks_losses(results: dict) -> str:
    """Every child's final pretraining loss: forks leave the training budget alone."""
    a = [pair["final_loss_a"] for pair in results["pairs"].values()]
    unrelated = [pair["final_loss_unrelated"] for pair in results["pairs"].values()]
    b = [loss for p in results["fork_points"] for loss in p["final_loss_b"].values()]
    return (f"Final pretraining loss (last logged step): children a {span(a)}, children b {span(b)}, unrelated bases "
            f"{span(unrelated)}. {stages_built(results)}.\n")


PAGES = {"forks": {"machine": machine_renderer("forks", {"config": ExperimentConfig(),
                                                         "forks_config": ForksConfig()}),
                   "points": forks_points, "raw": forks_raw, "cosines": forks_cosines, "losses": forks_losses}}
KEPT = {"forks": ("config", "forks_config", "precision", "machine", "timing", "built", "preregistered", "fork_points",
                  "sequence", "cosine_vs_sibling", "pairs")}
