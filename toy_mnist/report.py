"""Turns the toy experiment's results dict into accuracy.png and theorem.png.

Last stage of `python -m toy_mnist`: reads only the results dict, so a saved results.json can
be re-plotted without rerunning anything.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

ARM_LABELS = {
    "reference": "reference\n(init)", "teacher": "teacher",
    "student_aux": "student\naux only", "student_all": "student\nall logits",
    "cross_aux": "cross-model\naux only", "cross_all": "cross-model\nall logits",
}


def save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def all_arms(results: dict) -> dict[str, dict]:
    arms = {ARM_LABELS[name]: stats for name, stats in results["arms"].items()}
    arms.update({f"init\n{spec}": stats for spec, stats in results["init_controls"].items()})
    return arms


def plot_accuracy(results: dict, path: Path) -> None:
    arms = all_arms(results)
    fig, ax = plt.subplots(figsize=(1.3 * len(arms) + 2, 4))
    means = [s["mean"] for s in arms.values()]
    cis = [s["ci95"] for s in arms.values()]
    ax.bar(range(len(arms)), means, yerr=cis, capsize=4,
           color=["#999999", "#444444"] + ["#3b75af"] * 2 + ["#e1812c"] * 2 + ["#6a9f58"] * (len(arms) - 6))
    for i, (m, ci) in enumerate(zip(means, cis)):
        ax.text(i, m + ci + 0.02, f"{m:.2f}", ha="center", fontsize=8)
    ax.axhline(0.1, color="k", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(range(len(arms)), list(arms), fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("MNIST test accuracy")
    n = len(results["arms"]["teacher"]["per_model"])
    ax.set_title(f"Students learn digits from auxiliary logits on noise ({n} models, 95% CI)\n"
                 f"data: {results['data']['source']}", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    save(fig, path)


def plot_theorem(results: dict, path: Path) -> None:
    theorem = results["theorem"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for i, name in enumerate(("same_init", "cross_init")):
        cosines = theorem[name]["cosine"]["per_model"]
        left.scatter([i] * len(cosines), cosines, alpha=0.6, s=14)
    left.axhline(0, color="k", linewidth=1)
    left.set_xticks([0, 1], ["same init", "cross init"])
    left.set_xlim(-0.5, 1.5)
    left.set_ylabel("cos(student step, teacher step)")
    left.set_title(f"One student step (eps={results['config']['theorem_eps']:g}), one dot per model", fontsize=9)

    sweep = theorem["eps_sweep"]
    eps = [row["eps"] for row in sweep]
    right.loglog(eps, [row["measured"] for row in sweep], "o-", label="measured <dS, dT>")
    right.loglog(eps, [row["predicted"] for row in sweep], "--", label="first order eps E||M^1/2 J dT||^2")
    right.loglog(eps, [row["abs_error"] for row in sweep], "s-", label="|measured - first order|")
    scale = sweep[-1]["abs_error"] / eps[-1] ** 2
    right.loglog(eps, [scale * e**2 for e in eps], ":", color="gray", label="slope 2 (eps^2)")
    right.set_xlabel("teacher step size eps")
    right.set_title("Same init: the error of the first-order formula shrinks like eps^2", fontsize=9)
    right.legend(fontsize=7)
    save(fig, path)


DEFENCE_COLORS = {"kl": "tab:blue", "oracle": "tab:red", "estimated": "tab:orange"}


def plot_defences(results: dict, path: Path) -> None:
    """Transfer left against utility kept, a dot per defence and knob (mean, 95% CI over models)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([1], [1], "ks")
    ax.annotate("untreated", (1, 1), fontsize=7, xytext=(4, 4), textcoords="offset points")
    placed: dict[str, int] = {}  # labels of one defence stacked, so that knobs with one outcome stay readable
    for name, r in results["defences"].items():
        x, y = r["utility_kept"], r["transfer_left"]
        ax.errorbar(x["mean"], y["mean"], xerr=x["ci95"], yerr=y["ci95"], fmt="o", color=DEFENCE_COLORS[r["defence"]],
                    capsize=3)
        k = placed[r["defence"]] = placed.get(r["defence"], -1) + 1
        ax.annotate(name, (x["mean"], y["mean"]), fontsize=7, xytext=(-60, -10 - 9 * k), textcoords="offset points")
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_xlabel("utility kept: share of the untreated student's aux-logit imitation (held-out noise)")
    ax.set_ylabel("transfer left: share of the untreated student's digit gain")
    ax.set_title("Defences against the MNIST transfer: mean, 95% CI over models", fontsize=9)
    save(fig, path)

