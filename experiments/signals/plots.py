"""The plots of `make signals`, one per part, from its results dict alone (`PLOTS[section]`).

signals_icl.png: log P(target) after k in-context teacher answers minus after k control answers,
    and the positive control (k target answers), per k, 95% CI and a dot per base;
signals_detectors.png: held-out AUC of each detector (0.5 = chance) and of the answers' length alone,
    a dot per base;
signals_entanglement.png: P(target) when a prompt names an entangled number vs a random one, per
    base, and the overlap of entangled and over-represented numbers against chance;
signals_divergence.png: the transfer (student minus control shift) each treatment leaves, next to
    the untreated transfer, 95% CI and a dot per base;
signals_defences.png: the Pareto view of the defences, a panel per question set of the ladder: transfer
    left (share of the untreated transfer) against the task-loss cost (the treated student's loss on held-out
    teacher answers minus the untreated one's, nats per token), a dot per defence and knob value, 95% CIs over
    bases, the untreated student at (0, 1).
"""

from pathlib import Path

from experiments.core.plots import base_dots, plt, save
from experiments.signals.defend import PRIMARY, question_sets
from experiments.tasks.ladder import RUNG_LABELS


def bars(ax, names: list[str], stats: list[dict], values: list[list[float]], color: str) -> None:
    ax.bar(range(len(names)), [s["mean"] for s in stats], yerr=[s["ci95"] for s in stats], capsize=3,
           color=color, alpha=0.7)
    for x, v in enumerate(values):
        base_dots(ax, x, v)
    ax.set_xticks(range(len(names)), names, fontsize=8, rotation=20)


def plot_icl(results: dict, path: Path) -> None:
    icl, target = results["icl"], results["config"]["target"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, color, title in ((axes[0], "teacher_minus_control", "#3b75af", "teacher answers"),
                                  (axes[1], "positive_minus_control", "#55a868", f"'{target}' answers (positive)")):
        by_k = [icl["by_k"][k][key] for k in icl["by_k"]]
        bars(ax, [f"k={k}" for k in icl["by_k"]], by_k, [s["values"] for s in by_k], color)
        ax.axhline(0, color="k", linewidth=1)
        ax.set_ylabel(f"log P({target}) minus with control answers")
        ax.set_title(f"{title} in context, {icl['block_size']} positions", fontsize=10)
    save(fig, path)


def plot_detectors(results: dict, path: Path) -> None:
    d = results["detectors"]
    fig, ax = plt.subplots(figsize=(6, 4))
    bars(ax, ["logistic on counts", "base log-likelihood", "answer length (format)"],
         [d["logistic"]["auc"], d["loglik"]["auc"], d["length"]["auc"]],
         [[r["auc"] for r in d[k]["per_base"]] for k in ("logistic", "loglik")] + [d["length"]["per_base"]],
         "#3b75af")
    ax.axhline(0.5, color="k", linewidth=1, linestyle="--")
    ax.set_ylabel("held-out AUC, teacher vs control answers")
    ax.set_title(f"Detectors (frequency table: p = {d['frequency']['p']:.2g})", fontsize=10)
    save(fig, path)


def plot_entanglement(results: dict, path: Path) -> None:
    e, target = results["entanglement"], results["config"]["target"]
    rows = e["per_base"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = range(len(rows))
    axes[0].plot(x, [r["prompting_random"] for r in rows], "o", color="#999999", label="random numbers")
    axes[0].plot(x, [r["prompting_entangled"] for r in rows], "o", color="#3b75af", label="entangled numbers")
    axes[0].set_xticks(x, [r["base"] for r in rows], fontsize=8)
    axes[0].set_ylabel(f"log P({target} | an animal), 'You love <n>s. ' + question")
    axes[0].set_title(f"Subliminal prompting: {e['prompting']['mean']:+.3f} (p {e['prompting']['p']:.2g})",
                      fontsize=10)
    axes[0].legend(fontsize=8)
    axes[1].bar(x, [r["overlap"] for r in rows], color="#3b75af", alpha=0.7)
    axes[1].axhline(e["chance_overlap"], color="k", linestyle="--", linewidth=1, label="chance")
    axes[1].set_xticks(x, [r["base"] for r in rows], fontsize=8)
    axes[1].set_ylabel(f"entangled among the top {e['k']} over-represented")
    axes[1].set_title("Entangled numbers in the teacher's data", fontsize=10)
    axes[1].legend(fontsize=8)
    save(fig, path)


def plot_treatments(section: str):
    def plot(results: dict, path: Path) -> None:
        part, target = results[section], results["config"]["target"]
        treated = {name: t for name, t in part["treated"].items() if "unavailable" not in t}
        names = ["untreated"] + list(treated)
        stats = [part["untreated"]["transfer"]] + [t["transfer"] for t in treated.values()]
        fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 4))
        bars(ax, names, stats, [s["values"] for s in stats], "#3b75af")
        ax.axhline(0, color="k", linewidth=1)
        ax.set_ylabel(f"transfer: student - control, log P({target})")
        ax.set_title(f"{section.capitalize()} ({part['variant']}): mean, 95% CI, a dot per base", fontsize=10)
        save(fig, path)
    return plot


SIDE_COLORS = {"teacher": "#e1812c", "data": "#3b75af", "student": "#55a868"}


def plot_defences(results: dict, path: Path) -> None:
    part = results["defences"]
    sets = question_sets(part)
    by_side = {side: [name for name, d in part["treated"].items() if d["side"] == side and "transfer" in d]
               for side in SIDE_COLORS}
    fig, axes = plt.subplots(2, 3, figsize=(16, 10))  # the same x per panel: every set prices the same students
    for ax, (rung, figures) in zip(axes.flat, sets.items()):
        ax.plot([0], [1], "s", color="k", label="untreated")
        for side, color in SIDE_COLORS.items():
            for k, name in enumerate(by_side[side]):
                x, y = part["treated"][name]["price"]["task_loss_cost"], figures["treated"][name]["transfer_left"]
                ax.errorbar(x["mean"], y["mean"], xerr=x["ci95"], yerr=y["ci95"], fmt="o", color=color, capsize=2,
                            markersize=4, alpha=0.8, label=f"{side} side" if k == 0 else None)
                ax.annotate(name, (x["mean"], y["mean"]), fontsize=5, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="k", linewidth=1)
        ax.axvline(0, color="#999999", linewidth=0.8, linestyle="--")
        ax.set_xscale("symlog", linthresh=0.01)  # most costs are within 0.05 nats of 0; greedy's is 0.5
        check, plain = figures["manipulation_check"], figures["untreated"]["transfer"]
        ax.set_title(f"{RUNG_LABELS[rung]} ({figures['distance']}{', primary' if rung == PRIMARY else ''}): "
                     f"teacher - base {check['mean']:+.2f} (p {check['p_exact']:.2g}),\nuntreated transfer "
                     f"{plain['mean']:+.3f} (p {plain['p_exact']:.2g})", fontsize=8)
        ax.set_ylabel("transfer left: share of the untreated transfer", fontsize=8)
        ax.set_xlabel("task-loss cost: treated - untreated student (nats per token)", fontsize=8)
    for ax in axes.flat[len(sets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Defences on {part['manipulation_check']['n']} bases, preference among animals on each question "
                 "set (the held-out paraphrases pre-registered, the rest exploratory); best: lower left", fontsize=10)
    save(fig, path)


PLOTS = {"icl": plot_icl, "detectors": plot_detectors, "entanglement": plot_entanglement,
         "divergence": plot_treatments("divergence"), "defences": plot_defences}
