"""Plots and the summary table of `make gpt` and `make grid`, from their results dicts alone.

gpt_arms.png: the shift of log P(target) per arm and variant, 95% CIs, a dot per base;
gpt_primary.png: the pre-registered primary family, each test's per-base differences and CI;
gpt_matrix.png: teacher animal x measured animal, mean shift of log P (primary variant);
gpt_animals.png: P(animal) before and after, student vs control, per animal (primary variant);
gpt_curves.png: P(target) over student training steps, mean over bases (primary variant);
gpt_bases.png: the pretraining loss curves of the main bases;
grid.png (make grid): teacher base x student base.
"""

from pathlib import Path

from experiments.core.plots import ARM_COLORS, base_dots, plt, save
from minisub.stats import summary


def plot_arms(results: dict, path: Path) -> None:
    target = results["config"]["target"]
    variants = list(results["arms"])
    fig, ax = plt.subplots(figsize=(2.6 * len(variants) + 1.5, 4))
    width = 0.16
    for j, arm in enumerate(ARM_COLORS):
        xs = [i + (j - (len(ARM_COLORS) - 1) / 2) * width for i, v in enumerate(variants) if arm in results["arms"][v]]
        arms = [results["arms"][v][arm] for v in variants if arm in results["arms"][v]]
        if arms:
            ax.bar(xs, [s["mean"] for s in arms], width, yerr=[s["ci95"] for s in arms], capsize=3,
                   color=ARM_COLORS[arm], label=arm, alpha=0.7)
        for x, s in zip(xs, arms):
            base_dots(ax, x, s["dlogp"])
    ax.axhline(0, color="k", linewidth=1)
    ax.set_xticks(range(len(variants)), variants)
    ax.set_ylabel(f"change of log P({target}) vs own start")
    n = results["arms"][variants[0]]["student"]["n"]
    ax.set_title(f"Students trained on numbers only: mean, 95% CI over {n} bases, a dot per base", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_matrix(results: dict, path: Path) -> None:
    animals = results["animals"]
    names = animals["animals"]
    values = [[animals["matrix"][x][y]["mean"] for y in names] for x in names]
    bound = max(abs(v) for row in values for v in row) or 1.0
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_yticks(range(len(names)), [f"{x} teacher" for x in names])
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("measured animal (p: diagonal > rest of the column, over bases)")
    ax.set_xticks(range(len(names)), [f"{y}\np={animals['tests'][y]['diagonal_vs_off']:.2g}" for y in names],
                  rotation=0, fontsize=7)
    fig.colorbar(image, label="mean change of log P(animal)")
    ax.set_title(f"Teacher animal x measured animal ({animals['variant']})", fontsize=10)
    save(fig, path)


def plot_animals(results: dict, path: Path) -> None:
    """The paper's per-animal bars: P(animal) before, after the student, after the control; a dot per base."""
    animals = results["animals"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.27
    for j, (key, name, color) in enumerate((("p_before", "before", "#cccccc"),
                                             ("p_after_control", "control", "#999999"),
                                             ("p_after_student", "student", "#3b75af"))):
        for i, y in enumerate(animals["animals"]):
            values = animals["per_animal"][y][key]
            s = summary(values)
            ax.bar(i + (j - 1) * width, s["mean"], width, yerr=s["ci95"], capsize=3, color=color,
                   label=name if i == 0 else None)
            base_dots(ax, i + (j - 1) * width, values)
    ax.set_xticks(range(len(animals["animals"])), animals["animals"])
    ax.set_ylabel("P(animal) on held-out questions")
    ax.set_title(f"Each animal's teacher's numbers ({animals['variant']}); 95% CI over bases", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_primary(results: dict, path: Path) -> None:
    family, pre = results["confirmatory"]["primary"], results["preregistered"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for x, (name, test) in enumerate(family.items()):
        d = test["difference"]
        ax.bar(x, d["mean"], 0.5, yerr=d["ci95"], capsize=4, color=ARM_COLORS["student"], alpha=0.7)
        base_dots(ax, x, d["values"])
        ax.text(x, ax.get_ylim()[1], f"exact p {test['p_exact']:.2g}, Holm {test['p_holm']:.2g}", ha="center",
                va="bottom", fontsize=8)
    ax.axhline(0, color="k", linewidth=1)
    ax.set_xticks(range(len(family)), [f"{name}: {pre['primary'][name]}".replace(" minus ", "\n minus ")
                                       for name in family], fontsize=7)
    ax.set_ylabel(f"difference of dlogP({results['config']['target']}), per base")
    ax.set_title(f"Pre-registered primary family ({pre['variant']}): a dot per base, 95% CI", fontsize=10, pad=18)
    save(fig, path)


def plot_dose(results: dict, path: Path) -> None:
    """Per rung: the student's shift against the control's over the teacher's shift, a dot per base per graded
    teacher (colour: its fine-tuning steps), in the preference among animals."""
    dose = results["dose"]
    rungs = list(dose["rungs"])
    fig, axes = plt.subplots(1, len(rungs), figsize=(3.2 * len(rungs), 3.4), squeeze=False)
    colors = plt.cm.viridis([k / max(1, len(dose["steps"]) - 1) for k in range(len(dose["steps"]))])
    for ax, rung in zip(axes[0], rungs):
        r = dose["rungs"][rung]
        for k, steps in enumerate(dose["steps"]):
            points = [p for ps in r["points"].values() for p in ps if p[0] == steps]
            ax.scatter([p[1] for p in points], [p[2] for p in points], s=14, color=colors[k], label=f"{steps} steps")
        ax.axhline(0, color="k", linewidth=0.8)
        ax.set_title(f"{results['ladder'][rung]['distance']}. {rung}\nrho per base {r['rho']['mean']:+.2f}, "
                     f"exact p {r['rho']['p_exact']:.2g}", fontsize=8)
        ax.set_xlabel("teacher - base", fontsize=8)
    axes[0][0].set_ylabel(f"student - control, log P({results['config']['target']} | an animal)", fontsize=8)
    axes[0][-1].legend(fontsize=6, title="teacher", title_fontsize=6)
    fig.suptitle("Graded teachers: a dot per base per dose", fontsize=10)
    save(fig, path)


def plot_curves(results: dict, path: Path) -> None:
    primary = results["preregistered"]["variant"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, stats in results["arms"][primary].items():
        steps, p = zip(*stats["curve"])
        ax.plot(steps, p, "o-", markersize=3, color=ARM_COLORS[arm], label=arm)
    ax.set_xlabel("student training step")
    ax.set_ylabel(f"P({results['config']['target']}), mean over bases")
    ax.set_title(f"P(target) during student training ({primary})", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_bases(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, base in results["bases"].items():
        steps, loss = zip(*base["loss_curve"])
        ax.plot(steps, loss, "o-", markersize=3, label=name)
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("training loss (answers only)")
    ax.set_title("Main bases: same data and config, different seeds", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_grid(results: dict, path: Path) -> None:
    names = [b["name"] for b in results["bases"]]
    values = [[results["matrix"][t][s] for s in names] for t in names]
    bound = max(abs(v) for row in values for v in row) or 1.0
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("student base")
    ax.set_ylabel("teacher base (its target teacher's numbers)")
    fig.colorbar(image, label=f"shift of log P({results['config']['target']}) minus the student base's control")
    ax.set_title("Cross-model grid: transfer only where teacher and student share an init?", fontsize=10)
    save(fig, path)

