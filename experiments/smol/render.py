"""The `make smol` page (docs/results/smol.md), rendered from its results file: `PAGES`, and `KEPT`, what
`make report --take` keeps of a run's results."""

from experiments.smol.experiment import SmolConfig
from minisub.render import machine_renderer, p_value, per_base, signed, stages_built


def smol_note(results: dict) -> str:
    m = results["model"]
    return (f"{stages_built(results)}; a stage already in the run's cache is read, not built again.\n"
            f"Model: {m['file']} ({m['parameters']:,} parameters, dequantized to fp32), SHA-256 {m['sha256'][:16]}...\n")


def smol_entanglement(results: dict) -> str:
    e = results["entanglement"]
    lines = ["| animal | its numbers (largest rise first) | log P(animal): own numbers - random | "
             "own - other animals' numbers |", "|---|---|---|---|"]
    for a, top in e["top"].items():
        lines.append(f"| {a} | {', '.join(map(str, top))} | {signed(e['vs_random']['per_animal'][a], 3)} | "
                     f"{signed(e['diagonal']['per_animal'][a], 3)} |")
    for name, label in (("vs_random", "own numbers - random"), ("diagonal", "own - other animals' numbers")):
        t = e[name]
        lines.append(f"| **mean over animals** | {label} | **{signed(t['mean'], 3)}** (CI {t['ci95']:.3f}) | "
                     f"exact sign-flip p {p_value(t['p'])} |")
    return "\n".join(lines) + "\n"

def smol_transfer(results: dict) -> str:
    t = results["transfer"]
    animals = list(t["matrix"])
    lines = ["| teacher | P(animal): base -> teacher | answers kept | " + " | ".join(animals) + " |",
             "|---|---|---|" + "---|" * len(animals)]
    for teacher in animals + ["control"]:
        kept = ", ".join(f"{n['kept_share']:.0%} of {n['generated']}" for n in t["numbers"][teacher])
        if teacher == "control":
            row = [signed(sum(v) / len(v), 3) + " (vs base)" for v in t["control_shift"].values()]
            lines.append(f"| control (no system prompt) | | {kept} | " + " | ".join(row) + " |")
            continue
        cells = [(f"**{signed(t['matrix'][teacher][a], 3)}**" if a == teacher else signed(t['matrix'][teacher][a], 3))
                 for a in animals]
        lines.append(f"| {teacher} | {t['base']['p'][teacher]:.4f} -> {t['teachers'][teacher]['p'][teacher]:.4f} | "
                     f"{kept} | " + " | ".join(cells) + " |")
    for animal, arm in t.get("finetuned", {}).get("per_animal", {}).items():
        kept = ", ".join(f"{n['kept_share']:.0%} of {n['generated']}" for n in arm["numbers"])
        cells = [f"**{signed(sum(arm['shift']) / len(arm['shift']), 3)}**" if a == animal else "" for a in animals]
        lines.append(f"| {animal}, fine-tuned teacher | {t['base']['p'][animal]:.4f} -> "
                     f"{arm['teacher']['p'][animal]:.4f} | {kept} | " + " | ".join(cells) + " |")
    own, diag = t["own_shift"], t["diagonal"]
    return "\n".join(lines) + (
        f"\n\nOwn teacher's numbers against the control's, over the {own['n']} animals: {signed(own['mean'], 3)} "
        f"(CI {own['ci95']:.3f}), exact sign-flip p {p_value(own['p'])}; diagonal minus the rest of its column: "
        f"{signed(diag['mean'], 3)} (CI {diag['ci95']:.3f}), p {p_value(diag['p'])}.\n")

def smol_lora_rank(results: dict) -> str:
    r = results["lora_rank"]
    lines = [f"| students | log P({', '.join(r['animals'])}): student - control student | 95% CI | per replicate |",
             "|---|---|---|---|"]
    for name, s in r["settings"].items():
        label = "full fine-tuning" if s["rank"] == 0 else f"LoRA r = {s['rank']}"
        values = [v for vs in s["per_animal"].values() for v in vs]
        ci = "" if s["n"] < 2 else f"{s['ci95']:.3f}"
        lines.append(f"| {label} | {signed(s['mean'], 3)} | {ci} | {per_base(values)} |")
    return "\n".join(lines) + "\n"


PAGES = {"smol": {"machine": machine_renderer("smol", {"config": SmolConfig()}, smol_note),
                  "entanglement": smol_entanglement, "transfer": smol_transfer, "lora_rank": smol_lora_rank}}
KEPT = {"smol": ("config", "precision", "machine", "timing", "built", "model", "entanglement", "transfer", "lora_rank")}
