"""The plots of `python -m toy_mnist.sweep`, from its results dict alone.

sweep_<name>.png: test accuracy of the aux-only students against the swept value, same-init and
    cross-init, mean and 95% CI over models, a dot per model;
alignment.png: over the student's training, cos(student displacement, teacher displacement) and
    the teacher's loss at the student's parameters, same-init and cross-init;
init_matrix.png: accuracy with one part of the init replaced, in minisub's setting and LTN's.
"""

from pathlib import Path

from toy_mnist.report import plt, save

ARMS = {"same": ("#3b75af", "same init"), "cross": ("#e1812c", "cross init")}


def dots(ax, x: float, values: list[float], color: str) -> None:
    n = len(values)
    ax.plot([x + 0.12 * (k / max(1, n - 1) - 0.5) for k in range(n)], values, ".", color=color, alpha=0.35,
            markersize=3)


def plot_sweep(results: dict, name: str, path: Path) -> None:
    points = results["sweeps"][name]["points"]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(points) + 2), 4))
    for k, (key, (color, label)) in enumerate(ARMS.items()):
        xs = [i + (k - 0.5) * 0.25 for i in range(len(points))]
        ax.errorbar(xs, [p[key]["mean"] for p in points], yerr=[p[key]["ci95"] for p in points], fmt="o-",
                    color=color, capsize=3, label=label)
        for x, p in zip(xs, points):
            dots(ax, x, p[key]["per_model"], color)
    ax.axhline(0.1, color="k", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(range(len(points)), [str(p["value"]) for p in points])
    ax.set_xlabel(results["sweeps"][name]["field"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("MNIST test accuracy, aux-only student")
    n = len(points[0]["same"]["per_model"])
    ax.set_title(f"Sweep of {name}: mean, 95% CI and a dot per model ({n} models)", fontsize=9)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_alignment(results: dict, path: Path) -> None:
    alignment = results["alignment"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, (color, label) in ARMS.items():
        track = alignment[key]
        epochs = [step / alignment["steps_per_epoch"] for step in track["step"]]
        for ax, metric in ((left, "cosine"), (right, "teacher_loss")):
            mean = [m["mean"] for m in track[metric]]
            ci = [m["ci95"] for m in track[metric]]
            ax.plot(epochs, mean, color=color, label=label)
            ax.fill_between(epochs, [m - c for m, c in zip(mean, ci)], [m + c for m, c in zip(mean, ci)],
                            color=color, alpha=0.2)
    left.axhline(0, color="k", linewidth=1)
    left.set_ylabel("cos(student - its init, teacher - its init)")
    right.set_ylabel("teacher's loss (digit CE) at the student")
    for ax in (left, right):
        ax.set_xlabel("student epochs")
        ax.legend(fontsize=8)
    left.set_title("Beyond one step: does the student keep moving toward its teacher?", fontsize=9)
    right.set_title("The teacher's objective along the student's path (mean, 95% CI)", fontsize=9)
    save(fig, path)


def plot_matrix(results: dict, path: Path) -> None:
    settings = results["init_matrix"]
    fig, axes = plt.subplots(1, len(settings), figsize=(6 * len(settings), 4.5), squeeze=False)
    for ax, (setting, part) in zip(axes[0], settings.items()):
        cells = part["cells"]
        names = list(cells)
        ax.bar(range(len(names)), [c["mean"] for c in cells.values()], yerr=[c["ci95"] for c in cells.values()],
               capsize=3, color=["#3b75af", "#e1812c"] + ["#6a9f58"] * (len(names) - 2), alpha=0.8)
        for x, c in enumerate(cells.values()):
            dots(ax, x, c["per_model"], "k")
        ax.axhline(0.1, color="k", linestyle=":", linewidth=1)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("MNIST test accuracy, aux-only student")
        config = part["config"]
        ax.set_title(f"{setting}: m = {config['n_aux']}, {config['imitation']}; one part replaced, rest shared",
                     fontsize=9)
    save(fig, path)
