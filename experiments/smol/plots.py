"""Plots of `make smol`, from its results dict alone.

smol_entanglement.png: per animal, log P(animal) after "You love {n}" for its own numbers minus
    for random numbers, a dot per number; and the numbers-by-animal matrix;
smol_transfer.png: the five-animal matrix of log P shifts against the control student, and the
    teachers' own P(animal) against the base's (system-prompted, and fine-tuned where asked);
smol_lora_rank.png: the owl shift against the control student per LoRA rank and full fine-tuning.
"""

from pathlib import Path

from experiments.core.plots import base_dots, plt, save


def matrix_panel(ax, matrix: dict, animals: list[str], rows: str, title: str) -> None:
    values = [[matrix[t][a] for a in animals] for t in animals]
    bound = max(abs(v) for row in values for v in row) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(animals)), animals, fontsize=7)
    ax.set_yticks(range(len(animals)), [f"{t} {rows}" for t in animals], fontsize=7)
    ax.set_xlabel("measured animal")
    ax.set_title(title, fontsize=9)
    plt.colorbar(image, ax=ax, label="change of log P(animal)")


def plot_entanglement(results: dict, path: Path) -> None:
    e = results["entanglement"]
    animals = list(e["top"])
    column = {a: i for i, a in enumerate(animals)}
    random = [e["prompted_logp"][str(n)] for n in e["random"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for x, a in enumerate(animals):
        baseline = sum(r[column[a]] for r in random) / len(random)
        own = [e["prompted_logp"][str(n)][column[a]] - baseline for n in e["top"][a]]
        left.bar(x, sum(own) / len(own), color="tab:purple", alpha=0.6)
        base_dots(left, x, own)
    left.axhline(0, color="k", linewidth=1)
    left.set_xticks(range(len(animals)), animals)
    left.set_ylabel('log P(animal) after "You love n": own numbers - random')
    left.set_title(f"Subliminal prompting, a dot per number (p {e['vs_random']['p']:.2g} over animals)", fontsize=9)
    matrix_panel(right, e["matrix"], animals, "numbers", f"Numbers x animal (diagonal p {e['diagonal']['p']:.2g})")
    save(fig, path)


def plot_transfer(results: dict, path: Path) -> None:
    t = results["transfer"]
    animals = list(t["matrix"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    matrix_panel(left, t["matrix"], animals, "teacher",
                 f"Students vs control student (diagonal p {t['diagonal']['p']:.2g})")
    xs = range(len(animals))
    right.bar([x - 0.27 for x in xs], [t["base"]["p"][a] for a in animals], 0.27, label="base", color="tab:gray")
    right.bar(xs, [t["teachers"][a]["p"][a] for a in animals], 0.27, label="teacher (system prompt)",
              color="tab:purple")
    finetuned = t.get("finetuned", {}).get("per_animal", {})
    if finetuned:
        right.bar([animals.index(a) + 0.27 for a in finetuned],
                  [arm["teacher"]["p"][a] for a, arm in finetuned.items()], 0.27, label="teacher (fine-tuned)",
                  color="tab:orange")
    right.set_xticks(list(xs), animals)
    right.set_ylabel("P(animal), mean over questions")
    right.set_title("The teachers carry the trait", fontsize=9)
    right.legend(fontsize=8)
    save(fig, path)


def plot_lora_rank(results: dict, path: Path) -> None:
    settings = results["lora_rank"]["settings"]
    names = list(settings)
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 4))
    for x, name in enumerate(names):
        s = settings[name]
        ax.bar(x, s["mean"], yerr=0 if s["n"] < 2 else s["ci95"], capsize=3, color="tab:purple", alpha=0.6)
        base_dots(ax, x, [v for vs in s["per_animal"].values() for v in vs])
    ax.axhline(0, color="k", linewidth=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("log P(animal): student - control student")
    ax.set_title(f"LoRA rank and full fine-tuning ({', '.join(results['lora_rank']['animals'])}), a dot per replicate",
                 fontsize=9)
    save(fig, path)
