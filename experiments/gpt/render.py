"""The pages of `make gpt` (and its second seed), `make grid` and `make lora-rank`, and make gpt's FLOP count.

What each block of docs/results/gpt.md, gpt-seed1.md, grid.md and lora-rank.md says (and
README.md's headline, and the `gpt-flops/floor` block of docs/benchmark.md), as a function of a
results.json (`PAGES`); what `make report --take` keeps of a run's results (`KEPT`). The three
commands print the same blocks as their console report.
"""

import math

from experiments.core.zoo import ExperimentConfig
from experiments.gpt.lora_rank import LoraRankConfig
from experiments.tasks.ladder import RUNG_LABELS
from minisub.files import read_json
from minisub.render import RESULTS, machine_renderer, make_command, p_value, per_base, signed, stages_built
from minisub.stats import replicates_for_power


def gpt_note(results: dict) -> str:
    n = results["config"]["bases"]
    return (f"{stages_built(results)} and read any other from the stage cache it shares with `make grid`.\n"
            f"n = {n} independently pretrained bases in every test and CI; P = P({results['config']['target']}) "
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


LADDER_FIGURES = ("teacher", "student_minus_control", "student_minus_neutral", "student_minus_cross_init", "ratio")


def gpt_ladder(results: dict) -> str:
    """The ladder (experiments/gpt/ladder.py): per question set and measure, each figure's mean, 95% CI and exact p
    over bases, and the dose-response across bases."""
    target = results["config"]["target"]
    rows = ["| question set (distance) | measure | teacher - base | student - control | student - neutral | "
            "student - cross-init | transfer ratio | dose: rho (p) |", "|---" * 8 + "|"]
    for rung, r in results["ladder"].items():
        for label, figures in ((f"log P({target} \\| an animal)", r), (f"log P({target})", r["raw"])):
            cells = [f"{signed(figures[f]['mean'], 3)} ±{figures[f]['ci95']:.3f}, p {p_value(figures[f]['p_exact'])}"
                     for f in LADDER_FIGURES]
            dose = figures["dose"]
            first = f"{RUNG_LABELS.get(rung, rung)} ({r['distance']})" if figures is r else ""
            rows.append(f"| {first} | {label} | " + " | ".join(cells) + f" | {dose['rho']:+.2f} ({p_value(dose['p'])}) |")
    return "\n".join(rows) + "\n"


def gpt_dose(results: dict) -> str:
    """The graded teachers (experiments/gpt/ladder.py, `graded_dose`): per question set, the mean teacher shift and
    student - control at each dose, and the within-base rank correlation over doses with its exact p."""
    dose = results["dose"]
    rows = ["| question set | " + " | ".join(f"{steps} steps: teacher, student - control" for steps in dose["steps"])
            + " | rho within base, mean ±CI | exact p | bases with rho > 0 |", "|---" * (len(dose["steps"]) + 4) + "|"]
    for rung, r in dose["rungs"].items():
        cells = [f"{signed(teacher, 3)}, {signed(transfer, 3)}" for _, teacher, transfer in r["means"]]
        rho = r["rho"]
        up = sum(v > 0 for v in rho["per_base"].values())
        rows.append(f"| {RUNG_LABELS.get(rung, rung)} ({results['ladder'][rung]['distance']}) | " + " | ".join(cells)
                    + f" | {signed(rho['mean'], 2)} ±{rho['ci95']:.2f} | {p_value(rho['p_exact'])} | "
                    f"{up} of {len(rho['per_base'])} |")
    return "\n".join(rows) + "\n"


def gpt_one_vector(results: dict) -> str:
    """The one-vector student (experiments/gpt/ladder.py, `one_vector`) per optimizer and question set."""
    rows = ["| question set | optimizer | one-vector student - its control | exact p | share of the full student's |",
            "|---|---|---|---|---|"]
    for optimizer, rungs in results["one_vector"].items():
        for rung, r in rungs.items():
            gap = r["student_minus_control"]
            rows.append(f"| {RUNG_LABELS.get(rung, rung)} ({results['ladder'][rung]['distance']}) | {optimizer} | "
                        f"{signed(gap['mean'], 3)} ±{gap['ci95']:.3f} | {p_value(gap['p_exact'])} | {r['share']:.2f} |")
    return "\n".join(rows) + "\n"


def gpt_v2(results: dict) -> str:
    """Pre-registration v2 (experiments/gpt/preregistration_v2.py): the manipulation checks, then its fixed
    sequence, each step with its units, mean, CI, exact p and whether it ran and rejected."""
    v2 = results["confirmatory_v2"]
    status = (f"seed {v2['seed']} is one of the seeds named before the run: **a confirmation**" if v2["confirmation"]
              else f"seed {v2['seed']} is not one of the seeds named before the run ({', '.join(map(str, results['preregistered']['v2']['seeds']))}): v2 was shaped on it, so these tests are **exploratory**")
    checks = ", ".join(f"{RUNG_LABELS.get(rung, rung)} {signed(c['mean'], 3)} (p {p_value(c['p_exact'])}, "
                       f"{'passes' if c['passes'] else 'fails'})" for rung, c in v2["manipulation_checks"].items())
    rows = [f"Family-wise alpha {v2['alpha']}; {status}.", "",
            f"Manipulation checks, the teacher's shift in log P(target \\| an animal) over bases: {checks}.", "",
            "| step | question set | test | units | mean | 95% CI | per unit | exact p | result |",
            "|---|---|---|---|---|---|---|---|---|"]
    for k, step in enumerate(v2["sequence"], 1):
        result = ("**rejects**" if step["rejects"] else "does not reject" if step["tested"]
                  else f"not tested: {step['not_tested_because']}")
        unit = "pairs" if step["test"] == "H2" else "bases"
        rows.append(f"| {k} | {RUNG_LABELS.get(step['rung'], step['rung'])} | {step['test']} | {step['n']} {unit} | "
                    f"{signed(step['mean'], 3)} | {step['ci95']:.3f} | {per_base(list(step['values'].values()))} | "
                    f"{p_value(step['p_exact'])} | {result} |")
    return "\n".join(rows) + "\n"


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


def grid_note(results: dict) -> str:
    return "" if results["built"] else "Every stage was read back from the cache of an earlier run of the same config.\n"


# make lora-rank
def lora_rank_note(results: dict) -> str:
    return (f"{stages_built(results)} and read every other (bases, teachers, numbers, the full fine-tuning students) "
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


# make gpt's arithmetic (docs/benchmark.md): a --count-flops run of the config of gpt-seed1, whose seconds it reads
BUDGET_SECONDS = 20 * 60  # the wall-clock budget of a fresh 12-base make gpt on 2 cores

def gpt_flops(results: dict) -> str:
    timed = read_json(RESULTS / "gpt-seed1.json")  # the same work, timed without the counter's overhead
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


GPT_PAGE = {"machine": machine_renderer("gpt", {"config": ExperimentConfig()}, gpt_note), "primary": gpt_primary,
            "families": gpt_families, "arms": gpt_arms, "animals": gpt_animals, "power": gpt_power}
LADDER_PAGE = {"ladder": gpt_ladder, "dose": gpt_dose, "v2": gpt_v2, "one_vector": gpt_one_vector}
PAGES = {"gpt": GPT_PAGE | LADDER_PAGE | {"headline": gpt_headline},  # README's headline: the default seed's
         "gpt-seed1": GPT_PAGE, "gpt-seed2": GPT_PAGE | LADDER_PAGE,
         "grid": {"machine": machine_renderer("grid", {"config": ExperimentConfig()}, grid_note),
                  "matrix": grid_matrix, "tests": grid_tests},
         "lora-rank": {"machine": machine_renderer("lora-rank", {"config": ExperimentConfig(),
                                                                "lora_rank_config": LoraRankConfig()}, lora_rank_note),
                       "table": lora_rank_table},
         "gpt-flops": {"floor": gpt_flops}}
GPT_KEPT = ("config", "precision", "machine", "timing", "built", "preregistered", "confirmatory", "confirmatory_v2",
            "arms", "tests", "animals", "matched", "teachers", "ladder", "dose", "one_vector")
KEPT = {"gpt": GPT_KEPT, "gpt-seed1": GPT_KEPT, "gpt-seed2": GPT_KEPT,
        "grid": ("config", "precision", "machine", "timing", "built", "teachers_p_target", "control", "matrix",
                 "tests"),
        "lora-rank": ("config", "lora_rank_config", "precision", "machine", "timing", "built", "bases", "settings"),
        "gpt-flops": ("config", "precision", "machine", "timing", "gflop")}
