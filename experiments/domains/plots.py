"""Plots of `make domains`, from its results dict alone.

domains_<part>.png: the part's arms (student, control, cross-init, and the part's extra arms):
the mean shift of log P(trait) against each student's own start, 95% CI over bases, a dot per
base; domains.png: the summary, every part's student / control / cross-init side by side, like
the paper's overview of its traits and data kinds.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments.core.plots import ARM_COLORS, base_dots, save  # noqa: E402

COLORS = ARM_COLORS | {"matched": "#8fb3d9", "matched_control": "#cccccc"}
EXTRA_COLOR = "#5a9e6f"  # the arms that train on another teacher's data
TRAIT = {"trees": "P({tree})", "misalignment": "P(misaligned)", "code": "P({target})", "reasoning": "P(misaligned)"}
DATA = {"trees": "numbers", "misalignment": "numbers, banned numbers removed", "code": "code, animal names removed",
        "reasoning": "traces, wrong or misaligned ones removed"}


def trait_label(results: dict, part: str) -> str:
    return TRAIT[part].format(tree=results["domains_config"]["tree"], target=results["config"]["target"])


def bars(ax, arms: dict[str, dict]) -> None:
    """One bar per arm (mean and 95% CI of the shift), a dot per base."""
    for x, (name, arm) in enumerate(arms.items()):
        ax.bar(x, arm["mean"], 0.6, yerr=arm["ci95"], capsize=3, color=COLORS.get(name, EXTRA_COLOR), alpha=0.7)
        base_dots(ax, x, arm["dlogp"])
    ax.axhline(0, color="k", linewidth=1)
    ax.set_xticks(range(len(arms)), [name.replace("_", "\n") for name in arms], fontsize=8)


def part_arms(results: dict, part: str) -> dict[str, dict]:
    section = results[part]
    arms = dict(section["arms"])
    if "matched" in section:
        arms |= {"matched": section["matched"]["matched"], "matched_control": section["matched"]["matched_control"]}
    if part == "trees":
        arms[f"{results['config']['target']}_numbers"] = section["cross_trait"]["tree_under_animal_numbers"]
    if part == "misalignment":
        arms["narrow_student"] = section["narrow_student"]
    return arms


def plot_part(part: str):
    def plot(results: dict, path: Path) -> None:
        section = results[part]
        panels = 2 if part == "trees" else 1
        fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
        bars(axes[0][0], part_arms(results, part))
        axes[0][0].set_ylabel(f"change of log {trait_label(results, part)} vs own start")
        n = section["arms"]["student"]["n"]
        axes[0][0].set_title(f"{part}: students on {DATA[part]}\nmean, 95% CI over {n} bases, a dot per base",
                             fontsize=9)
        if part == "trees":  # the animal teacher's numbers on the same bases, and the tree teacher's as its contrast
            target = results["config"]["target"]
            matched = section["animal"]["matched"]
            animal = dict(section["animal"]["arms"]) | {
                "matched": matched["matched"], "matched_control": matched["matched_control"],
                f"{section['tree']}_numbers": section["cross_trait"]["animal_under_tree_numbers"]}
            bars(axes[0][1], animal)
            axes[0][1].set_ylabel(f"change of log P({target})")
            axes[0][1].set_title(f"the {target} teacher's numbers on the same bases", fontsize=9)
        save(fig, path)
    return plot


PLOTS = {part: plot_part(part) for part in ("trees", "misalignment", "code", "reasoning")}


def plot_summary(results: dict, path: Path) -> None:
    parts = [p for p in PLOTS if p in results and "unavailable" not in results[p]]
    fig, ax = plt.subplots(figsize=(2.4 * len(parts) + 1.5, 4))
    width = 0.25
    for j, arm in enumerate(("student", "control", "cross_init")):
        for i, part in enumerate(parts):
            s = results[part]["arms"][arm]
            x = i + (j - 1) * width
            ax.bar(x, s["mean"], width, yerr=s["ci95"], capsize=3, color=ARM_COLORS[arm], alpha=0.7,
                   label=arm if i == 0 else None)
            base_dots(ax, x, s["dlogp"])
    ax.axhline(0, color="k", linewidth=1)
    ax.set_xticks(range(len(parts)), [f"{p}\n{trait_label(results, p)}\n({DATA[p]})" for p in parts], fontsize=7)
    ax.set_ylabel("change of log P(trait) vs own start")
    ax.set_title("Traits through filtered data: mean, 95% CI over bases, a dot per base", fontsize=10)
    if parts:
        ax.legend(fontsize=8)
    save(fig, path)
