"""Plots and the summary table of the language experiment, from its results dict alone.

gpt_arms.png: the shift of log P(target) per arm and variant, 95% CIs, a dot per replicate;
gpt_matrix.png: data source x measured animal, mean shift of log P (best variant);
gpt_curves.png: P(target) over student training steps, mean over replicates (best variant);
gpt_bases.png: the pretraining loss curves of the bases.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments.prompts import ANIMALS  # noqa: E402

BASE_MARKERS = ("o", "s", "^", "D", "v", "P")
ARM_COLORS = {"student": "#3b75af", "control": "#999999", "cross_init": "#e1812c",
              "specificity": "#6a9f58", "prompted": "#b05fa8"}


def save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_arms(results: dict, path: Path) -> None:
    target = results["config"]["target"]
    variants = list(results["arms"])
    fig, ax = plt.subplots(figsize=(2.6 * len(variants) + 1.5, 4))
    width = 0.16
    for j, arm in enumerate(ARM_COLORS):
        xs = [i + (j - 2) * width for i, v in enumerate(variants) if arm in results["arms"][v]]
        stats = [results["arms"][v][arm] for v in variants if arm in results["arms"][v]]
        if stats:
            ax.bar(xs, [s["mean"] for s in stats], width, yerr=[s["ci95"] for s in stats], capsize=3,
                   color=ARM_COLORS[arm], label=arm, alpha=0.7)
        for x, s in zip(xs, stats):  # every replicate, marked by the base its teacher came from
            for value, base in zip(s["dlogp"], s["base"]):
                ax.plot(x, value, BASE_MARKERS[base % len(BASE_MARKERS)], color="k", markersize=3)
    ax.axhline(0, color="k", linewidth=1)
    ax.set_xticks(range(len(variants)), variants)
    ax.set_ylabel(f"change of log P({target}) vs own start")
    student = results["arms"][variants[0]]["student"]
    ax.set_title(f"Students trained on numbers only: mean, 95% CI and each of {len(student['dlogp'])} replicates "
                 f"(o / s: base 0 / 1; {len(set(student['base']))} bases)", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_matrix(results: dict, path: Path) -> None:
    best = results["best_variant"]
    arms = results["arms"][best]
    rows = list(arms)
    values = [[arms[arm]["dlogp_by_animal"][animal]["mean"] for animal in ANIMALS] for arm in rows]
    bound = max(abs(v) for row in values for v in row) or 1.0
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.5))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_xticks(range(len(ANIMALS)), ANIMALS, rotation=45, ha="right")
    target, other = results["config"]["target"], results["config"]["other_animal"]
    labels = {"student": f"{target} teacher", "specificity": f"{other} teacher", "control": "base (control)",
              "cross_init": f"{target} teacher, cross-init", "prompted": "prompted teacher"}
    ax.set_yticks(range(len(rows)), [labels[arm] for arm in rows])
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, label="mean change of log P(animal)")
    ax.set_title(f"Which animal moves, by data source ({best})", fontsize=10)
    save(fig, path)


def plot_curves(results: dict, path: Path) -> None:
    best = results["best_variant"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, stats in results["arms"][best].items():
        steps, p = zip(*stats["curve"])
        ax.plot(steps, p, "o-", markersize=3, color=ARM_COLORS[arm], label=arm)
    ax.set_xlabel("student training step")
    ax.set_ylabel(f"P({results['config']['target']}), mean over replicates")
    ax.set_title(f"P(target) during student training ({best})", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_bases(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for b, base in results["bases"].items():
        steps, loss = zip(*base["loss_curve"])
        ax.plot(steps, loss, "o-", markersize=3, label=f"base {b}")
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("training loss (answers only)")
    ax.set_title("Bases: same data and config, different seeds", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, path)


def table(results: dict) -> str:
    target = results["config"]["target"]
    lines = [f"{'variant':<10} {'arm':<12} {'P before':>9} {'P after':>8} {'dlogP':>8} {'95% CI':>7} "
             f"{'sampled':>8} {'mass':>6}"]
    for variant, arms in results["arms"].items():
        for arm, s in arms.items():
            sampled = sum(s["sampled_after"]) / len(s["sampled_after"])
            mass = sum(s["mass_after"]) / len(s["mass_after"])
            lines.append(f"{variant:<10} {arm:<12} {s['p_before_mean']:>9.3f} {s['p_after_mean']:>8.3f} "
                         f"{s['mean']:>+8.3f} {s['ci95']:>7.3f} {sampled:>8.3f} {mass:>6.3f}")
        t = results["tests"][variant]
        lines.append(f"{'':<10} one-sided paired p: student>control {t['student_vs_control']:.2g}, "
                     f"student>cross-init {t['student_vs_cross_init']:.2g}; control vs 0 "
                     f"{t['control_vs_zero']:.2g}, cross-init vs 0 {t['cross_init_vs_zero']:.2g}")
    lines.append(f"best variant (smallest p against both control and cross-init): {results['best_variant']}; "
                 f"P = P({target}) on held-out questions, sampled = share of sampled answers")
    return "\n".join(lines)
