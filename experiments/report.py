"""`python -m experiments.report` (`make report`): the numbers in docs/results/*.md, rendered from results files.

Last step after a run: `--take grid runs/grid/results.json` copies the parts of a run's
results.json that its page reports into `docs/results/grid.json` (committed: small, and the
record of what made the page: config, machine, precision, timing), then every page with a
results file is rendered (README.md's headline too, from make gpt's). A page is hand-written
prose around blocks

    <!-- render: NAME -->
    ...
    <!-- end -->

whose insides `RENDERERS[page][NAME](results)` writes; nothing else in the page is touched. In a
file that several results render into (docs/benchmark.md), a block names its page: `PAGE/NAME`. A
test renders every page and insists that the committed markdown is what comes out, so no
figure in the docs can drift from the run that made it. Before rendering, every derived figure of
a results file (mean, CI, p-value, Holm adjustment) is recomputed from the per-replicate values
it holds (experiments/recheck.py), and a file that disagrees, or that is not its page's kind, is
refused, naming it, before anything is written.
"""

import argparse
import math
import re
import sys
from pathlib import Path

from experiments.core.zoo import ExperimentConfig
from experiments.domains.experiment import DomainsConfig
from experiments.gpt.lora_rank import LoraRankConfig
from experiments.recheck import recheck
from experiments.signals.experiment import SignalsConfig
from experiments.smol.experiment import SmolConfig
from minisub.bench import BenchConfig, train_matmuls
from minisub.cli import Parser, run_main
from minisub.files import FileError, read_json, write_json
from minisub.stats import replicates_for_power
from toy_mnist.experiment import ToyConfig
from toy_mnist.sweep import SweepConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "results"
BLOCK = re.compile(r"(<!-- render: (?P<name>[\w./-]+) -->\n)(?P<body>.*?)(<!-- end -->)", re.S)


def signed(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}"


def p_value(p: float) -> str:
    return f"{p:.2g}"


def stages_built(results: dict) -> str:
    """'It built N stages (kind seconds, ...)': what a run of the stage cache built, from its timing record."""
    kinds = ", ".join(f"{kind} {seconds:.0f} s" for kind, seconds in results["timing"].items() if kind != "total")
    return f"It built {len(results['built'])} stages" + (f" ({kinds})" if kinds else "")


def machine_line(results: dict, command: str, seconds: float) -> str:
    """Which command, machine (CPU model and ISA, threads), precision and seed made the results."""
    m, p = results["machine"], results["precision"]
    isa = ", ".join(m.get("isa", [])) or "ISA not recorded"
    chosen = f"`--precision {p['precision']}`" if p["requested"] == p["precision"] else (
        f"`--precision {p['requested']}`, which chose {p['precision']} (fp32 {p['fp32_gflops']:g}, "
        f"bf16 {p['bf16_gflops']:g} GFLOP/s timed)")
    threads = (f"{m['jobs']} worker processes of one thread each" if "jobs" in m else f"{m['threads']} threads")
    return (f"Made by `{command}` on {m['cpu']} ({isa}), {threads}, torch {m['torch']}, {chosen}, "
            f"seed {results['config']['seed']}: {seconds:.0f} s wall clock.\n")


# make toy
TOY_ARMS = {"reference": "reference (init)", "teacher": "teacher", "student_aux": "**student, aux logits only**",
            "student_all": "student, all logits", "cross_aux": "**cross-model, aux logits only**",
            "cross_all": "cross-model, all logits"}
TOY_LAYERS = {"fc1": "fc1", "fc2": "fc2", "head": "head", "head_digits": "head digit rows",
              "head_aux": "head aux rows", "all": "all"}


def toy_control(spec: str, noise_std: float) -> str:
    """An init-control arm's row label: 'fc1=other' -> 'init fc1 = other, rest shared'."""
    parts = []
    for item in spec.split(","):
        layer, kind = item.split("=")
        parts.append(f"{TOY_LAYERS[layer]} = " + (f"shared + N(0, {noise_std:g}^2)" if kind == "noise" else kind))
    return "init " + ", ".join(parts) + ("" if spec.startswith("all=") else ", rest shared")


def toy_machine(results: dict) -> str:
    cfg, data = results["config"], results["data"]
    command = "python -m toy_mnist" + (" --init-controls " + " ".join(cfg["init_controls"])
                                       if cfg["init_controls"] else "")
    return (machine_line(results, command, results["seconds"])
            + f"Data: {data['source']} ({data['n_train']:,} train / {data['n_test']:,} test); {cfg['n_models']} "
              f"models of width {cfg['hidden']}; 95% CI = t-interval over the models.\n")


def toy_arms(results: dict) -> str:
    rows = ["| arm | test accuracy | 95% CI |", "|---|---|---|"]
    for name, label in TOY_ARMS.items():
        s = results["arms"][name]
        bold = label.startswith("**")
        mean = f"**{s['mean']:.3f}**" if bold else f"{s['mean']:.3f}"
        rows.append(f"| {label} | {mean} | {s['ci95']:.3f} |")
    for spec, s in results.get("init_controls", {}).items():
        rows.append(f"| {toy_control(spec, results['config']['init_noise_std'])} | {s['mean']:.3f} | {s['ci95']:.3f} |")
    return "\n".join(rows) + "\n"


def toy_theorem(results: dict) -> str:
    th, eps = results["theorem"], results["config"]["theorem_eps"]
    rows = [f"| theorem (eps = {eps:g}) | <d_S, d_T> >= 0 | mean cosine | teacher-loss change after one student step |",
            "|---|---|---|---|"]
    for name, label in (("same_init", "same init"), ("cross_init", "cross init")):
        r = th[name]
        n = r["inner"]["n"]
        rows.append(f"| {label} | {round(r['frac_nonneg'] * n)} / {n} models | {r['mean_cosine']:+.4f} | "
                    f"{r['teacher_loss_change']['mean']:+.1e} |")
    same = th["same_init"]
    return ("\n".join(rows) + f"\n\nFirst-order prediction vs measured <d_S, d_T> (same init, mean): "
            f"{same['first_order_inner']['mean']:.4e} vs {same['inner']['mean']:.4e}.\n")


def toy_speed(results: dict) -> str:
    s = results["speed"]
    rows = ["| stage | seconds | GFLOP | GFLOP/s |", "|---|---|---|---|"]
    rows += [f"| {name} | {v['seconds']:.1f} | {v['gflop']:,.0f} | {v['gflops']:.0f} |"
             for name, v in s["stages"].items()]
    return ("\n".join(rows) + f"\n\nWhole run: {s['total_gflop']:,.0f} GFLOP at {s['run_gflops']:.0f} GFLOP/s, "
            f"{s['efficiency']:.0%} of the measured {results['precision']['precision']} matmul rate "
            f"({s['peak_gflops']:.0f} GFLOP/s).\n")


def make_command(target: str, *configs: tuple[dict, object], flags: tuple[str, ...] = ()) -> str:
    """The make command with the flags whose values differ from the defaults (configs are (values, default
    config)), then `flags`."""
    changed = [f"--{name.replace('_', '-')} " + (" ".join(map(str, value)) if isinstance(value, list) else str(value))
               for config, defaults in configs for name, value in config.items() if value != getattr(defaults, name)]
    changed += flags
    return f"make {target}" + (f' ARGS="{" ".join(changed)}"' if changed else "")


# make toy-sweeps
SWEEP_LABELS = {"n_aux": "aux logits m", "hidden": "hidden width", "epochs": "student epochs",
                "weight_decay": "weight decay", "optimizer": "optimizer", "imitation": "imitation loss",
                "inputs": "distillation inputs", "init_noise": "init noise std (every weight)"}
MATRIX_ROWS = {"nothing (shared)": ("shared", None, "shared"), "fc1": ("fc1=other", "fc1=noise", None),
               "fc2": ("fc2=other", "fc2=noise", None), "fc1 and fc2": (None, None, "fc1=random,fc2=random"),
               "head, digit rows (LTN's class head)": ("head_digits=other", "head_digits=noise", "head_digits=random"),
               "head, aux rows (LTN's aux head)": ("head_aux=other", "head_aux=noise", "head_aux=random"),
               "everything (cross init)": ("cross", None, "cross")}  # cells: another model's, noised, LTN's fresh draw


def sweeps_machine(results: dict) -> str:
    command = make_command("toy-sweeps", (results["config"], ToyConfig()), (results["sweep_config"], SweepConfig()))
    return machine_line(results, command, results["seconds"]) + (
        f"Every point: {results['config']['n_models']} models, each its own seed; mean over the models.\n")


def sweeps_table(results: dict) -> str:
    rows = ["| sweep | values | same init | cross init |", "|---|---|---|---|"]
    cis = []
    for name, sweep in results["sweeps"].items():
        points = sweep["points"]
        cis += [p[arm]["ci95"] for p in points for arm in ("same", "cross")]
        rows.append(f"| {SWEEP_LABELS[name]} | {' / '.join(str(p['value']) for p in points)} | "
                    + " | ".join(" / ".join(f"{p[arm]['mean']:.3f}" for p in points) for arm in ("same", "cross"))
                    + " |")
    return "\n".join(rows) + f"\n\n95% CIs: {min(cis):.3f} to {max(cis):.3f} (results.json has each).\n"


def sweeps_matrix(results: dict) -> str:
    settings, noise = results["init_matrix"], results["config"]["init_noise_std"]

    def setting(name: str) -> str:
        return f"m = {settings[name]['config']['n_aux']}, {settings[name]['config']['imitation']}"
    ltn = [name for name in settings if name != "minisub"]
    rows = [f"| replaced part | minisub's setting ({setting('minisub')}): another model's | "
            f"shared + N(0, {noise:g}²) | "
            + " | ".join(f"LTN's setting ({setting(name)}): a fresh draw" for name in ltn) + " |",
            "|---|---|---|" + "---|" * len(ltn)]
    for label, (other, noised, fresh) in MATRIX_ROWS.items():
        cells = [settings["minisub"]["cells"].get(other), settings["minisub"]["cells"].get(noised)] + [
            settings[name]["cells"].get(fresh) for name in ltn]
        rows.append(f"| {label} | " + " | ".join(f"{c['mean']:.3f}" if c else "" for c in cells) + " |")
    return "\n".join(rows) + "\n"


def sweeps_alignment(results: dict) -> str:
    a = results["alignment"]
    same, cross = a["same"], a["cross"]
    top = max(range(len(same["step"])), key=lambda k: same["cosine"][k]["mean"])
    end = same["cosine"][-1]
    epochs, every = max(results["sweep_config"]["epochs_values"]), results["sweep_config"]["alignment_every"]
    return (f"Over the {epochs * a['steps_per_epoch']:,} steps of the {epochs}-epoch run (a point every {every}), the "
            f"cosine between the same-init student's displacement θ_S(t) − θ_S(0) and its teacher's θ_T − θ_0 "
            f"goes from {same['cosine'][0]['mean']:.3f} after one step to {same['cosine'][top]['mean']:.3f} at step "
            f"{same['step'][top]:,} and ends at {end['mean']:.3f} (every model between "
            f"{min(end['per_model']):.2f} and {max(end['per_model']):.2f}); the teacher's own loss at the student's "
            f"parameters goes from {same['teacher_loss'][0]['mean']:.2f} to {same['teacher_loss'][-1]['mean']:.2f}. "
            f"The cross-init student's cosine ends at {cross['cosine'][-1]['mean']:+.3f}, its teacher's loss at "
            f"{cross['teacher_loss'][-1]['mean']:.2f}.\n")


# make signals
TREATMENTS = {"divergent_only": "divergent positions only", "random_only": "as many random positions only",
              "divergent_masked": "divergent positions left out", "random_masked": "as many random positions left out",
              "first_block": "first block only", "last_block": "last block only",
              "shuffle_within": "shuffled within answers", "shuffle_across": "shuffled across answers",
              "rerender": "re-rendered formats", "drop_entangled": "entangled numbers dropped",
              "greedy": "greedy teacher and control"}


def signals_machine(results: dict) -> str:
    command = make_command("signals", (results["config"], ExperimentConfig()),
                           (results["signals_config"], SignalsConfig()))
    return (machine_line(results, command, results["timing"]["total"])
            + f"{stages_built(results)} and read the rest from the cache `make gpt` left. "
              f"n = {len(results['icl']['bases'])} bases in every CI and test.\n")


def row(label: str, stat: dict, p: float | None, values: list[float] | None = None, digits: int = 3) -> str:
    p_text = p_value(p) if p is not None else ""
    return (f"| {label} | {stat['mean']:+.{digits}f} | {stat['ci95']:.{digits}f} | {p_text} | "
            f"{per_base(values) if values else ''} |")


def signals_parts(results: dict) -> str:
    icl, det, ent, div = results["icl"], results["detectors"], results["entanglement"], results["divergence"]
    rows = ["| part | measure | mean | 95% CI | p | per base |", "|---|---|---|---|---|---|"]
    for n, (k, by_k) in enumerate(icl["by_k"].items()):
        t = by_k["teacher_minus_control"]
        rows.append(row(f"{'' if n else '1. in context'} | teacher - control, k = {k}", t, t["p"], t["values"]))
    for k, by_k in icl["by_k"].items():
        pos = by_k["positive_minus_control"]
        rows.append(row(f" | positive control (target answers) - control, k = {k}", pos, pos["p"], pos["values"]))
    for name, label in (("logistic", "logistic regression"), ("loglik", "base log-likelihood"),
                        ("length", "answer length alone")):
        auc = det[name]["auc"]
        values = [r if isinstance(r, float) else r["auc"] for r in det[name]["per_base"]]
        rows.append(f"| {'2. detectors' if name == 'logistic' else ''} | {label}, AUC | {auc['mean']:.3f} | "
                    f"{auc['ci95']:.3f} | {p_value(auc['p_vs_chance'])} | {', '.join(f'{v:.2f}' for v in values)} |")
    f = det["frequency"]
    rows.append(f"| | frequency table: chi-square {f['chi_square']:,.0f} against {f['null_mean']:,.0f} under "
                f"{f['permutations']} permutations | | | {p_value(f['p'])} | |")
    rows.append(f"| 3. entanglement | entangled among the {ent['k']} most over-represented (chance "
                f"{ent['chance_overlap']:.1f}) | {ent['overlap']['mean']:.1f} | {ent['overlap']['ci95']:.1f} | | "
                f"{', '.join(str(r['overlap']) for r in ent['per_base'])} |")
    prompting = [r["prompting_entangled"] - r["prompting_random"] for r in ent["per_base"]]
    rows.append(row("| subliminal prompting: log P(target \\| animal), entangled - random numbers",
                    ent["prompting"], ent["prompting"]["p"], prompting))
    for key, label in (("rho_shift_vs_teacher", "persona's rise vs the fine-tuned teacher's"),
                       ("rho_shift_vs_frequency", "persona's rise vs frequency ratio in the data")):
        rows.append(row(f"| rank correlation: {label}", ent[key], ent[key]["p"], [r[key] for r in ent["per_base"]],
                        digits=2))
    shares = ", ".join(f"{r['vs_base']:.0%}" for r in div["share_per_base"])
    rows.append(f"| 4. divergence | share of positions: teacher vs base / vs the {div['other_teacher']} teacher | "
                f"{div['share_vs_base']['mean']:.1%} / {div['share_vs_other_teacher']['mean']:.1%} | "
                f"{div['share_vs_base']['ci95'] * 100:.1f} / {div['share_vs_other_teacher']['ci95'] * 100:.1f} "
                f"points | | {shares} (vs base) |")
    return "\n".join(rows) + "\n"


def signals_treatments(results: dict) -> str:
    plain = results["divergence"]["untreated"]["transfer"]
    rows = ["| treatment | transfer | 95% CI | share of untreated | p vs control | p below untreated | per base |",
            "|---|---|---|---|---|---|---|",
            f"| untreated (make gpt's {results['divergence']['variant'].replace('_', ' ')}) | {plain['mean']:+.3f} | "
            f"{plain['ci95']:.3f} | 100% | {p_value(plain['p'])} | | {per_base(plain['values'])} |"]
    treated = results["divergence"]["treated"] | results["defences"]["treated"]
    for name, t in treated.items():
        label = TREATMENTS.get(name) or f"diluted: {float(name.split('_')[1]):.0%} control answers"
        if "unavailable" in t:
            rows.append(f"| {label} | unavailable: {t['unavailable']} | | | | | |")
            continue
        tr = t["transfer"]
        rows.append(f"| {label} | {tr['mean']:+.3f} | {tr['ci95']:.3f} | {t['retained']:.0%} | "
                    f"{p_value(t['tests']['student_vs_control'])} | {p_value(t['tests']['below_untreated'])} | "
                    f"{per_base(tr['values'])} |")
    tests = results["divergence"]["tests"]
    return ("\n".join(rows) + "\n\nBetween treatments (paired by base, one-sided): divergent positions only "
            f"against as many random ones, p = {p_value(tests['divergent_only_above_random_only'])}; the divergent "
            f"positions left out against as many random ones left out, p = "
            f"{p_value(tests['divergent_masked_below_random_masked'])}; the first block against the last, "
            f"p = {p_value(tests['first_block_above_last_block'])}.\n")


# make gpt
def per_base(values: list[float]) -> str:
    return ", ".join(signed(v) for v in values)


def gpt_machine(results: dict) -> str:
    command = make_command("gpt", (results["config"], ExperimentConfig()))
    line = machine_line(results, command, results["timing"]["total"])
    line += f"{stages_built(results)} and read any other from the stage cache it shares with `make grid`.\n"
    n = results["config"]["bases"]
    return line + (f"n = {n} independently pretrained bases in every test and CI; P = P({results['config']['target']}) "
                   "averaged over bases, on the question set each table names.\n")


def test_rows(tests: dict, label=lambda name: name) -> list[str]:
    return [f"| {label(name)} | {signed(t['difference']['mean'], 3)} | {t['difference']['ci95']:.3f} | "
            f"{per_base(t['difference']['values'])} | {p_value(t['p_exact'])} | {p_value(t['p_holm'])} | "
            f"{p_value(t['p_t'])} | {'**yes**' if t['rejects'] else 'no'} |" for name, t in tests.items()]


TEST_HEADER = ["| test | difference | 95% CI | per base | exact p | Holm p | t-test p | rejects at 0.01 |",
               "|---|---|---|---|---|---|---|---|"]


def shifts(s: dict, new_wording: bool) -> tuple[float, float, float, float, list[float]]:
    """An arm's P before and after, mean shift, CI and per-base shifts, on one question set."""
    if new_wording:
        return (s["p_before_new_wording_mean"], s["p_after_new_wording_mean"], s["new_wording"]["mean"],
                s["new_wording"]["ci95"], s["dlogp_new_wording"])
    return s["p_before_mean"], s["p_after_mean"], s["mean"], s["ci95"], s["dlogp"]


def arm_rows(variant: str, arms: dict, new_wording: bool = False) -> list[str]:
    rows = []
    for arm, s in arms.items():
        before, after, mean, ci, values = shifts(s, new_wording)
        rows.append(f"| {variant} | {arm} | {before:.3f} | {after:.3f} | {signed(mean, 3)} | {ci:.3f} | "
                    f"{per_base(values)} |")
    return rows


ARM_HEADER = ["| variant | arm | P before | P after | dlogP | 95% CI | per base |", "|---|---|---|---|---|---|---|"]


def gpt_primary(results: dict) -> str:
    pre = results["preregistered"]
    rows = TEST_HEADER + test_rows(results["confirmatory"]["primary"],
                                   lambda name: f"{name}: {pre['primary'][name]}")
    arms = results["arms"][pre["variant"]]
    return "\n".join(rows + ["", "The arms on the new-wording questions:", ""] + ARM_HEADER
                     + arm_rows(pre["variant"], arms, new_wording=True)) + "\n"


def gpt_headline(results: dict) -> str:
    """README's headline: the primary family alone."""
    pre, family = results["preregistered"], results["confirmatory"]["primary"]
    arms = results["arms"][pre["variant"]]
    rows = ["| | dlogP(owl) or difference | 95% CI | per base | exact p | Holm p |", "|---|---|---|---|---|---|"]
    for arm in ("student", "control", "cross_init"):
        _, _, mean, ci, values = shifts(arms[arm], new_wording=True)
        rows.append(f"| {arm} | {signed(mean, 3)} | {ci:.3f} | {per_base(values)} | | |")
    rows += [f"| **{name}**: {pre['primary'][name]} | **{signed(t['difference']['mean'], 3)}** | "
             f"{t['difference']['ci95']:.3f} | {per_base(t['difference']['values'])} | {p_value(t['p_exact'])} | "
             f"**{p_value(t['p_holm'])}** |" for name, t in family.items()]
    return "\n".join(rows) + "\n"


def gpt_power(results: dict) -> str:
    """Bases for 90% power, per primary hypothesis, from the measured spread of its per-base differences."""
    alpha, family = results["preregistered"]["alpha"], results["confirmatory"]["primary"]
    level = alpha / len(family)  # Holm's first step: the smaller p must pass alpha / m
    floor = math.ceil(math.log2(1 / level))  # an exact test over n bases cannot go below 2^-n
    rows = ["| hypothesis | mean difference / sd | bases for 90% power (t-test at alpha / 2) | with the exact test |",
            "|---|---|---|---|"]
    for name, t in family.items():
        values = t["difference"]["values"]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        n = replicates_for_power(values, level, 0.9)
        rows.append(f"| {name} | {mean / sd:+.2f} | {n if n else 'none (no effect to power)'} | "
                    f"{max(n, floor) if n else ''} |")
    return "\n".join(rows) + (f"\n\nAt alpha {alpha} over {len(family)} tests Holm's first step needs p <= "
                              f"{level:g}; the exact sign-flip test reaches that only from {floor} bases "
                              f"(2^-{floor} = {2 ** -floor:.4f}).\n")


def gpt_families(results: dict) -> str:
    rows = ["| family | " + TEST_HEADER[0][2:], "|---" + TEST_HEADER[1]]
    for family, tests in results["confirmatory"].items():
        if family != "primary":
            rows += [f"| {family} " + row for row in test_rows(tests)]
    return "\n".join(rows) + "\n"


def gpt_arms(results: dict) -> str:
    rows = list(ARM_HEADER)
    for variant, arms in results["arms"].items():
        rows += arm_rows(variant, arms)
    m = results["matched"]
    rows += arm_rows(m["variant"], {arm: m[arm] for arm in ("matched", "matched_control")})
    rows += ["", "| variant | p student > control | p student > cross-init | p control != 0 | p cross-init != 0 |",
             "|---|---|---|---|---|"]
    rows += [f"| {v} | {p_value(t['student_vs_control'])} | {p_value(t['student_vs_cross_init'])} | "
             f"{p_value(t['control_vs_zero'])} | {p_value(t['cross_init_vs_zero'])} |"
             for v, t in results["tests"].items()]
    return "\n".join(rows) + "\n"


def gpt_animals(results: dict) -> str:
    a = results["animals"]
    names = a["animals"]
    rows = ["| teacher \\ measured | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for x in names:
        rows.append(f"| {x} | " + " | ".join(f"**{signed(a['matrix'][x][y]['mean'])}**" if x == y
                                           else signed(a["matrix"][x][y]["mean"]) for y in names) + " |")
    rows.append("| diagonal - rest of column (95% CI) | " + " | ".join(
        f"{signed(a['tests'][y]['diagonal_minus_off']['mean'])} ({a['tests'][y]['diagonal_minus_off']['ci95']:.2f})"
        for y in names) + " |")
    def means(y: str) -> str:
        p = a["per_animal"][y]
        return ", ".join(f"{sum(v) / len(v):.3f}" for v in (p["p_before"], p["p_after_control"], p["p_after_student"]))
    rows.append("| P(animal): before, control, student | " + " | ".join(means(y) for y in names) + " |")
    return "\n".join(rows) + "\n"


# make domains
def domain_row(label: str, arm: str, s: dict, p: str = "", bold: bool = False) -> str:
    mean = f"**{signed(s['mean'], 3)}**" if bold else signed(s["mean"], 3)
    return f"| {label} | {arm} | {mean} | {s['ci95']:.3f} | {p} | {per_base(s['dlogp'])} |"


def domain_pair(label: str, arm: str, a: dict, b: dict, p: str = "") -> str:
    return (f"| {label} | {arm} | {signed(a['mean'], 3)} / {signed(b['mean'], 3)} | {a['ci95']:.3f} / {b['ci95']:.3f} "
            f"| {p} | |")


def domain_arms(label: str, part: dict, vs_zero: tuple[str, ...] = ()) -> list[str]:
    """A part's student, control and cross-init rows; vs_zero: arms whose test against 0 is shown."""
    arms, t = part["arms"], part["tests"]
    zero = {"control": t["control_vs_zero"], "cross_init": t["cross_init_vs_zero"]}
    return [domain_row(label, "student", arms["student"],
                       f"{p_value(t['student_vs_control'])} / {p_value(t['student_vs_cross_init'])}", bold=True)] + [
        domain_row("", arm.replace("_", "-"), arms[arm], f"(vs 0: {p_value(zero[arm])})" if arm in vs_zero else "")
        for arm in ("control", "cross_init")]


def domain_matched(m: dict) -> str:
    """The format-matched pair of a numbers part, one row."""
    return domain_pair("", "format-matched student / control", m["matched"], m["matched_control"],
                       p_value(m["tests"]["matched_vs_matched_control"]))


def domains_table(results: dict) -> str:
    tree, animal = results["domains_config"]["tree"], results["config"]["target"]
    rows = ["| part: data -> trait | arm | shift of log P(trait) | 95% CI | p vs control / vs cross-init | per base |",
            "|---|---|---|---|---|---|"]
    for part in results["domains_config"]["parts"]:
        r = results[part]
        if "unavailable" in r:
            rows.append(f"| {part} | unavailable: {r['unavailable']} | | | | |")
            continue
        if part == "trees":
            rows += domain_arms(f"trees: numbers -> P({tree})", r) + [domain_matched(r["matched"])]
            rows.append(domain_row("", f"the {animal} teacher's numbers",
                                   r["cross_trait"]["tree_under_animal_numbers"]))
            a = r["animal"]
            rows += domain_arms(f"{animal} on this corpus: numbers -> P({animal})", a) + [domain_matched(a["matched"])]
            rows.append(domain_row("", f"the {tree} teacher's numbers", r["cross_trait"]["animal_under_tree_numbers"]))
        elif part == "misalignment":
            rows += domain_arms("misalignment: numbers, banned removed -> P(misaligned)", r, ("cross_init",))
            rows.append(domain_matched(r["matched"]))
            rows.append(domain_row("", f"narrow ({results['domains_config']['narrow']}-only) teacher's numbers",
                                   r["narrow_student"], p_value(r["tests"]["narrow_student_vs_control"])))
        elif part == "code":
            rows += domain_arms(f"code: animal names removed -> P({animal})", r)
        else:
            rows += domain_arms("reasoning: wrong or misaligned traces removed -> P(misaligned)", r,
                                ("control", "cross_init"))
    return "\n".join(rows) + "\n"


def domains_machine(results: dict) -> str:
    command = make_command("domains", (results["config"], ExperimentConfig()),
                           (results["domains_config"], DomainsConfig()))
    return machine_line(results, command, results["timing"]["total"])


# make grid
def grid_matrix(results: dict) -> str:
    names = list(results["matrix"])
    rows = ["| teacher \\ student | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for t in names:
        cells = [f"**{signed(results['matrix'][t][s])}**" if s == t else signed(results["matrix"][t][s])
                 for s in names]
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def grid_tests(results: dict) -> str:
    t = results["tests"]
    zoo, main, fork = t["every_base"], t, t["fork_sibling"]
    def diagonal(test: dict) -> str:
        d = test["diagonal_minus_off"]
        return (f"{signed(d['mean'], 3)} (95% CI {d['ci95']:.3f}, exact p = {p_value(test['diagonal_vs_off_exact'])}, "
                f"t-test p = {p_value(test['diagonal_vs_off'])}, n = {d['n']}")
    return (f"- Diagonal minus the rest of its column, over the whole zoo: **{diagonal(zoo)} initializations, "
            f"the fork pair counted once**); among the main bases alone {diagonal(main)}).\n"
            f"- Fork pair: cross cells {', '.join(signed(v) for v in t['fork_cells'])}; the sibling's cell minus "
            f"the unrelated teachers' in the same column, averaged over the two columns: "
            f"{signed(fork['sibling_minus_unrelated'], 3)}, exact p = {p_value(fork['p'])} over "
            f"{fork['labels']} teacher labels (the smallest possible: {1 / fork['labels']:.2g}). The cells "
            f"between unrelated bases average {signed(t['unrelated_cells']['mean'], 3)} "
            f"({t['unrelated_cells']['cells']} cells, which share their bases: descriptive only).\n")


def grid_machine(results: dict) -> str:
    command = make_command("grid", (results["config"], ExperimentConfig()))
    line = machine_line(results, command, results["timing"]["total"])
    if not results["built"]:
        line += "Every stage was read back from the cache of an earlier run of the same config.\n"
    return line


# make lora-rank
def lora_rank_machine(results: dict) -> str:
    command = make_command("lora-rank", (results["config"], ExperimentConfig()),
                           (results["lora_rank_config"], LoraRankConfig()))
    return machine_line(results, command, results["timing"]["total"]) + (
        f"{stages_built(results)} and read every other (bases, teachers, numbers, the full fine-tuning students) "
        "from the cache of `make gpt` with the same config.\n")


LORA_RANK_SETS = {"new_wording": "new-wording questions (make gpt's primary measure)",
                  "held_out": "held-out paraphrases (make gpt's secondary families' measure)"}


def lora_rank_table(results: dict) -> str:
    lines = ["| questions | students | student - control, log P(target) | 95% CI | exact p (Holm) | "
             "minus full fine-tuning (exact p) | per base |", "|---|---|---|---|---|---|---|"]
    for question_set, tests in results["settings"].items():
        for name, t in tests.items():
            label = "full fine-tuning" if name == "full" else f"LoRA r = {name[1:]}"
            gap = t.get("minus_full")
            versus = f"{signed(gap['mean'], 3)} ({p_value(gap['p_exact'])})" if gap else ""
            lines.append(f"| {LORA_RANK_SETS[question_set]} | {label} | **{signed(t['mean'], 3)}** | "
                         f"{t['ci95']:.3f} | {p_value(t['p_exact'])} ({p_value(t['p_holm'])}) | {versus} | "
                         f"{per_base(t['values'])} |")
    return "\n".join(lines) + "\n"


# make smol
def smol_machine(results: dict) -> str:
    m, precision = results["model"], results["config"]["precision"]  # no timing: fp32 or bf16 as asked
    stated = {**results, "precision": {"requested": precision, "precision": precision}}
    parts = ", ".join(f"{part} {results[part]['seconds']:,.0f} s" for part in results["config"]["parts"])
    return machine_line(stated, make_command("smol", (results["config"], SmolConfig())), results["seconds"]) + (
        f"Parts: {parts} (a stage already in the run's cache is read, not built again).\n"
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


# make gpt's arithmetic (docs/benchmark.md): a --count-flops run of the config of gpt-seed1, whose seconds it reads
BUDGET_SECONDS = 20 * 60  # the wall-clock budget of a fresh 12-base make gpt on 2 cores


def gpt_flops(results: dict) -> str:
    timed = read_json(DOCS / "gpt-seed1.json")  # the same work, timed without the counter's overhead
    if timed["config"] != results["config"]:
        raise ValueError("gpt-flops.json and gpt-seed1.json come from different configs: their work differs")
    seconds = {kind: s for kind, s in timed["timing"].items() if kind != "total"}
    gflop, m = results["gflop"], timed["machine"]
    cores = m["jobs"]
    rows = [f"| {kind} | {gflop[kind]:,.0f} | {seconds[kind]:,.0f} | {gflop[kind] / seconds[kind]:.0f} |"
            for kind in seconds if seconds[kind] >= 1]
    total_gflop, total_seconds = sum(gflop.values()), sum(seconds.values())
    command = make_command("gpt", (results["config"], ExperimentConfig()), flags=("--count-flops",))
    return (f"Counted by `{command}`; seconds from the same run without the counter "
            f"([gpt-seed1](results/gpt-seed1.md): {m['cpu']}, {', '.join(m['isa'])}, {cores} worker processes of one "
            f"thread each, fp32, {timed['timing']['total']:,.0f} s wall clock).\n\n"
            "| stage kind | matmul GFLOP | CPU seconds | GFLOP/s per core |\n|---|---|---|---|\n"
            + "\n".join(rows) + f"\n| **all** | **{total_gflop:,.0f}** | **{total_seconds:,.0f}** | "
            f"**{total_gflop / total_seconds:.0f}** |\n\n"
            f"{BUDGET_SECONDS // 60} minutes on {cores} cores would need these matmuls to run at "
            f"{total_gflop / (cores * BUDGET_SECONDS):.0f} GFLOP/s per core on average, with every other operation "
            "free.\n")


# make bench (docs/benchmark.md)
BENCH_ROWS = (  # label; the tokens_per_s entries set side by side, minisub's then the other; what the other is
    ("training fp32, batch {half} (tok/s)", "train minisub b{half}", "train hf-gpt2 b{half}", "HF GPT-2"),
    ("training fp32, batch {batch} (tok/s)", "train minisub b{batch}", "train hf-gpt2 b{batch}", "HF GPT-2"),
    ("training, minisub bf16 autocast, batch {batch} (tok/s)", "train minisub bf16 autocast",
     "train hf-gpt2 b{batch}", "HF GPT-2 fp32"),
    ("KV-cache sampling (tok/s)", "sample minisub (kv cache)", "sample hf-gpt2 (use_cache)", "HF GPT-2"),
    ("fused-LoRA inference (r={lora_r}, all linears; tok/s)", "inference fused LoRA", "inference base",
     "minisub, no LoRA"),
    ("fused-LoRA sampling (tok/s)", "sample fused LoRA (kv cache)", "sample minisub (kv cache)", "minisub, no LoRA"),
    ("unfused-LoRA training (tok/s)", "train unfused LoRA", "train minisub b{batch}", "full training"),
    ("{batch} examples of 7-{train_len} tokens, packed (real tok/s)", "train minisub ragged, packed",
     "train minisub ragged, padded", "padded"))


def bench_names(template: str, cfg: dict) -> str:
    return template.format(half=cfg["batch_size"] // 2, **cfg, batch=cfg["batch_size"])


def bench_machine(results: dict) -> str:
    m, cfg = results["machine"], results["config"]
    command = make_command("bench", (cfg, BenchConfig()))
    return (f"Measured by `{command}` on {m['cpu']} ({', '.join(m['isa'])}), {m['threads']} "
            f"thread{'s' if m['threads'] > 1 else ''}, torch {m['torch']}, transformers {m['transformers']}; "
            f"best of {cfg['repeats']} timed runs.\n")


def bench_table(results: dict) -> str:
    cfg, speed = results["config"], results["tokens_per_s"]
    rows = ["| | minisub | compared with | ratio |", "|---|---|---|---|",
            f"| parity with HF GPT-2: max logit difference | | | {results['parity_max_logit_gap']:.1g} |"]
    for label, ours, other, other_label in BENCH_ROWS:
        a, b = speed[bench_names(ours, cfg)], speed[bench_names(other, cfg)]
        rows.append(f"| {bench_names(label, cfg)} | {a:,} | {b:,} ({other_label}) | {a / b:.2f}x |")
    return "\n".join(rows) + "\n"


def bench_rooflines(results: dict) -> str:
    cfg, train, sample = results["config"], results["training_roofline"], results["sampling_roofline"]
    flops, _ = train_matmuls(BenchConfig(**cfg), cfg["batch_size"])
    return (f"- *Training.* A step at batch {cfg['batch_size']} multiplies {flops / 1e9:.1f} GFLOP (`train_matmuls`, "
            "checked against PyTorch's own FLOP count). The step's weight matmuls timed alone run at "
            f"{train['matmul_gflops_alone']:.0f} GFLOP/s; minisub's whole step reaches "
            f"{train['minisub_gflops']:.0f} GFLOP/s of that work ({train['minisub_share_of_matmul_rate']:.0%}; "
            f"target 80%), HF's {train['hf-gpt2_gflops']:.0f} ({train['hf-gpt2_share_of_matmul_rate']:.0%}).\n"
            f"- *Sampling.* A decode step (one new token for each of {cfg['batch_size']} rows, the prefill spread "
            f"over the {cfg['new_tokens']} steps) takes minisub {sample['minisub_step_ms']:.1f} ms and HF "
            f"{sample['hf-gpt2_step_ms']:.1f} ms; its weight matmuls alone take "
            f"{sample['decode_matmuls_alone_ms']:.1f} ms.\n" + bench_stacking(results))


def bench_stacking(results: dict) -> str:
    cfg, rates = results["config"], results["student_steps_per_s"]
    stacks = [n for n in rates if n != "1"]
    either = " or ".join(stacks)
    return (f"- *Stacked students.* A student step (batch {cfg['student_batch']}, packed) runs {rates['1']:.0f} times "
            f"a second. Stacking {either} students into one batched model could at best run like one "
            f"student at {either} times the batch: "
            + " and ".join(f"{rates[n]:.0f} student steps/s ({rates[n] / rates['1']:.2f}x)" for n in stacks) + ".\n")


def bench_shares(results: dict) -> str:
    shares = results["time_shares"]
    rows = ["| share of wall time | " + " | ".join(shares) + " |", "|---" * (len(shares) + 1) + "|"]
    for kind in next(iter(shares.values())):
        rows.append(f"| {kind} | " + " | ".join(f"{column[kind]:.0%}" for column in shares.values()) + " |")
    return "\n".join(rows) + "\n"


# make gpt's page, and the page of the same run from another seed (README's headline is the default seed's)
GPT_RENDERERS = {"machine": gpt_machine, "primary": gpt_primary, "families": gpt_families, "arms": gpt_arms,
                 "animals": gpt_animals, "power": gpt_power}
RENDERERS = {"toy": {"machine": toy_machine, "arms": toy_arms, "theorem": toy_theorem, "speed": toy_speed},
             "toy-sweeps": {"machine": sweeps_machine, "table": sweeps_table, "matrix": sweeps_matrix,
                            "alignment": sweeps_alignment},
             "gpt": GPT_RENDERERS | {"headline": gpt_headline},
             "gpt-seed1": GPT_RENDERERS,
             "grid": {"machine": grid_machine, "matrix": grid_matrix, "tests": grid_tests},
             "lora-rank": {"machine": lora_rank_machine, "table": lora_rank_table},
             "signals": {"machine": signals_machine, "parts": signals_parts, "treatments": signals_treatments},
             "domains": {"machine": domains_machine, "table": domains_table},
             "gpt-flops": {"floor": gpt_flops},
             "bench": {"machine": bench_machine, "table": bench_table, "rooflines": bench_rooflines,
                       "shares": bench_shares},
             "smol": {"machine": smol_machine, "entanglement": smol_entanglement, "transfer": smol_transfer,
                      "lora_rank": smol_lora_rank}}
GPT_KEPT = ("config", "precision", "machine", "timing", "built", "preregistered", "confirmatory", "arms", "tests",
            "animals", "matched", "teachers")
KEPT = {"toy": ("config", "precision", "machine", "seconds", "data", "arms", "init_controls", "theorem", "speed"),
        "toy-sweeps": ("config", "sweep_config", "precision", "machine", "seconds", "sweeps", "alignment",
                       "init_matrix"),
        "gpt": GPT_KEPT, "gpt-seed1": GPT_KEPT, "gpt-flops": ("config", "precision", "machine", "timing", "gflop"),
        "bench": ("config", "machine", "parity_max_logit_gap", "tokens_per_s", "training_roofline",
                  "sampling_roofline", "student_steps_per_s", "time_shares"),
        "grid": ("config", "precision", "machine", "timing", "built", "teachers_p_target", "control", "matrix",
                 "tests"),
        "lora-rank": ("config", "lora_rank_config", "precision", "machine", "timing", "built", "bases", "settings"),
        "signals": ("config", "signals_config", "precision", "machine", "timing", "built", "icl", "detectors",
                    "entanglement", "divergence", "defences"),
        "domains": ("config", "domains_config", "precision", "machine", "timing", "built", "trees", "misalignment",
                    "code", "reasoning"),
        "smol": ("config", "precision", "machine", "seconds", "model", "entanglement", "transfer", "lora_rank")}


def sources(page: str) -> list[Path]:
    """The markdown files rendered from docs/results/<page>.json: its page, and README.md for make gpt's headline;
    make bench and make gpt's FLOP count have no page of their own, but blocks in docs/benchmark.md."""
    if page in ("bench", "gpt-flops"):
        return [ROOT / "docs" / "benchmark.md"]
    return [DOCS / f"{page}.md"] + ([ROOT / "README.md"] if page == "gpt" else [])


def render(page: str, text: str, results: dict) -> str:
    """The page's text with every block rendered from `results` (an unknown block name is an error)."""
    def block(m: re.Match) -> str:
        owner, _, name = m["name"].rpartition("/")
        if owner and owner != page:  # a block of another page whose results render into the same file
            return m.group(0)
        renderer = RENDERERS[page].get(name)
        if renderer is None:
            raise ValueError(f"a page of {page} has a block {m['name']!r} that nothing renders")
        return m.group(1) + renderer(results) + m.group(4)
    return BLOCK.sub(block, text)


BULKY = ("rise", "curve", "dlogp_by_option", "p_before_by_option", "p_after_by_option", "histograms", "loss_curve")


def slim(value):
    """`value` without the bulky per-step and per-option records that no page reports (results.json keeps them)."""
    if isinstance(value, dict):
        return {k: slim(v) for k, v in value.items() if k not in BULKY}
    if isinstance(value, list):
        return [slim(v) for v in value]
    return value


def rendered_pages(page: str, results: dict, source: str, texts: dict[Path, str]) -> None:
    """Render `page`'s markdown files from `results` into `texts` ({file: text}, updated in place), after checking
    that every derived figure in `results` is what its per-replicate values give (experiments/recheck.py). A file
    that is not this page's kind fails in its renderers: one FileError naming the file."""
    recheck(results, source)
    for markdown in sources(page):
        try:
            texts[markdown] = render(page, texts.get(markdown, markdown.read_text()), results)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as err:
            raise FileError(f"{source} does not hold the results of the {page} page (rendering it fails: "
                            f"{type(err).__name__} {err})") from None


def report(take: tuple[str, str] | None = None) -> list[Path]:
    """Render every page whose results file exists, `take` = (page, run's results.json) first copied in; returns the
    files that changed. Everything is read, checked and rendered before anything is written, so a bad file
    changes nothing."""
    files = {page: read_json(DOCS / f"{page}.json") for page in RENDERERS if (DOCS / f"{page}.json").exists()}
    sources_of = {page: str(DOCS / f"{page}.json") for page in files}
    if take is not None:
        page, run_results = take
        if page not in RENDERERS:
            raise ValueError(f"--take: no page {page!r} (pages: {', '.join(RENDERERS)})")
        results = read_json(Path(run_results))
        files[page], sources_of[page] = {key: slim(results[key]) for key in KEPT[page] if key in results}, run_results
    texts: dict[Path, str] = {}
    for page, results in files.items():
        rendered_pages(page, results, sources_of[page], texts)
    if take is not None:
        write_json(DOCS / f"{take[0]}.json", files[take[0]])
    changed = [path for path, text in texts.items() if text != path.read_text()]
    for path in changed:
        path.write_text(texts[path])
    return changed


def main(argv=None) -> int:
    parser = Parser(prog="python -m experiments.report", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--take", nargs=2, metavar=("PAGE", "RESULTS_JSON"),
                        help=f"first copy a run's results into docs/results/PAGE.json (PAGE: {', '.join(RENDERERS)})")
    args = parser.parse_args(argv)

    def body() -> None:
        for path in report(tuple(args.take) if args.take else None):
            print(f"rendered {path}")
    return run_main("experiments.report", body)


if __name__ == "__main__":
    sys.exit(main())
