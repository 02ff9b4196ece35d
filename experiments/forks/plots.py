"""forks_curve.png (`make forks`), from its results dict alone: transfer against how much two models share.

Left: self, sibling and unrelated transfer (student - control, the preference among animals on
the held-out paraphrases) and, on its own axis, the teacher's own shift, mean and 95% CI over
pairs, against the fork point. Middle: the sibling's share of self transfer, a dot per pair (clipped to the axes,
marked where clipped), the ratio of the means beside. Right: the cosines of
experiments/forks/geometry.py, mean and 95% CI over pairs.
"""

from pathlib import Path

from experiments.core.plots import base_dots, plt, save

ARMS = {"teacher": "#444444", "self": "#3b75af", "sibling": "#b05fa8", "unrelated": "#e1812c"}
COSINES = {"children": "#444444", "self": "#3b75af", "sibling": "#b05fa8", "unrelated": "#e1812c"}
SHARE_LIMITS = (-1.5, 2.5)


def plot_forks(results: dict, path: Path) -> None:
    points = results["fork_points"]
    xs = list(range(len(points)))
    labels = [f"{p['fork_point']:g}" for p in points]
    n = points[0]["self"]["n"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    teacher_ax = ax.twinx()  # the teachers' shift is ten times the students': its own scale
    for k, (arm, color) in enumerate(ARMS.items()):
        shifted = [x + (k - 1.5) * 0.08 for x in xs]
        on = teacher_ax if arm == "teacher" else ax
        on.errorbar(shifted, [p[arm]["mean"] for p in points], yerr=[p[arm]["ci95"] for p in points],
                    fmt="o--" if arm == "teacher" else "o-", color=color, capsize=3,
                    label="teacher - base (right axis)" if arm == "teacher" else f"{arm} (student - control)")
    ax.axhline(0, color="k", linewidth=1)
    ax.set_ylabel("change of log P(target | an animal)")
    teacher_ax.set_ylabel("teacher - base", color=ARMS["teacher"])
    teacher_ax.set_ylim(bottom=0)
    ax.set_title(f"Transfer by fork point: mean, 95% CI over {n} pairs", fontsize=10)
    handles = [h for a in (ax, teacher_ax) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=7)
    ax = axes[1]
    low, high = SHARE_LIMITS
    for x, p in zip(xs, points):
        shares = list(p["share"]["per_pair"].values())
        base_dots(ax, x, [min(high, max(low, s)) for s in shares])
        clipped = [min(high, max(low, s)) for s in shares if not low <= s <= high]
        ax.plot([x] * len(clipped), clipped, "x", color="r", markersize=6)
        ratio = p["sibling"]["mean"] / p["self"]["mean"]
        ax.plot(x + 0.15, min(high, max(low, ratio)), "D", color="#b05fa8", markersize=5)
    ax.axhline(0, color="k", linewidth=1)
    ax.axhline(1, color="k", linewidth=0.5, linestyle=":")
    ax.set_ylim(low - 0.1, high + 0.1)
    ax.set_ylabel("sibling / self")
    ax.set_title("Share of self transfer a sibling gets: a dot per pair (x: clipped),\n"
                 "diamond: mean sibling / mean self", fontsize=10)
    ax = axes[2]
    for k, (kind, color) in enumerate(COSINES.items()):
        shifted = [x + (k - 1.5) * 0.08 for x in xs]
        label = "children since the fork" if kind == "children" else f"b-teacher change vs {kind} step"
        ax.errorbar(shifted, [p["cosines"][kind]["mean"] for p in points],
                    yerr=[p["cosines"][kind]["ci95"] for p in points], fmt="o-", color=color, capsize=3, label=label)
    ax.axhline(0, color="k", linewidth=1)
    ax.set_ylabel("cosine")
    ax.set_title("In weights: mean, 95% CI over pairs", fontsize=10)
    ax.legend(fontsize=7)
    for ax in axes:
        ax.set_xticks(xs, labels)
        ax.set_xlabel("fork point (share of pretraining the two children have in common)")
    save(fig, path)
