"""The `make toy`, `make toy-sweeps` and `make toy-defences` pages (docs/results/toy*.md), rendered from their results.

What each block of the two pages says, as a function of a results.json (`PAGES`), and what
`make report --take` keeps of a run's results (`KEPT`); experiments/report.py drives them. The
toy's console report is made of the same blocks (`console`).
"""

from minisub.render import machine_renderer, p_value
from toy_mnist.defences import DefenceConfig
from toy_mnist.experiment import ToyConfig
from toy_mnist.sweep import SweepConfig


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


def toy_data(results: dict) -> str:
    cfg, data = results["config"], results["data"]
    return (f"Data: {data['source']} ({data['n_train']:,} train / {data['n_test']:,} test); {cfg['n_models']} "
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


def console(results: dict) -> str:
    """What `python -m toy_mnist` prints: the page's arms, theorem and speed blocks."""
    return "\n".join(block(results) for block in (toy_arms, toy_theorem, toy_speed))


SWEEP_LABELS = {"n_aux": "aux logits m", "hidden": "hidden width", "epochs": "student epochs",
                "weight_decay": "weight decay", "optimizer": "optimizer", "imitation": "imitation loss",
                "inputs": "distillation inputs", "init_noise": "init noise std (every weight)"}

MATRIX_ROWS = {"nothing (shared)": ("shared", None, "shared"), "fc1": ("fc1=other", "fc1=noise", None),
               "fc2": ("fc2=other", "fc2=noise", None), "fc1 and fc2": (None, None, "fc1=random,fc2=random"),
               "head, digit rows (LTN's class head)": ("head_digits=other", "head_digits=noise", "head_digits=random"),
               "head, aux rows (LTN's aux head)": ("head_aux=other", "head_aux=noise", "head_aux=random"),
               "everything (cross init)": ("cross", None, "cross")}  # cells: another model's, noised, LTN's fresh draw

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


DEFENCE_LABELS = {"kl": "KL penalty to the starting model, weight {knob:g}",
                  "oracle": "gradient projection, oracle (the teacher's weight change)",
                  "estimated": "gradient projection, estimated from {knob:g} labelled digits"}


def defences_table(results: dict) -> str:
    """Each defence and knob: accuracy, transfer left, utility kept (mean and 95% CI over models), and its test."""
    start, untreated = results["start"], results["untreated"]
    rows = ["| student | test accuracy | transfer left | utility kept | accuracy below untreated: exact p | Holm p |",
            "|---|---|---|---|---|---|",
            f"| its init, untrained | {start['accuracy']['mean']:.3f} ±{start['accuracy']['ci95']:.3f} | 0% | 0% | | |",
            f"| untreated | {untreated['accuracy']['mean']:.3f} ±{untreated['accuracy']['ci95']:.3f} | 100% | 100% | | |"]
    for name, r in results["defences"].items():
        test = results["tests"][name]
        left, kept = r["transfer_left"], r["utility_kept"]
        rows.append(f"| {DEFENCE_LABELS[r['defence']].format(knob=r['knob'] or 0)} | {r['accuracy']['mean']:.3f} "
                    f"±{r['accuracy']['ci95']:.3f} | {left['mean']:.0%} ±{left['ci95']:.1%} | {kept['mean']:.0%} "
                    f"±{kept['ci95']:.1%} | {p_value(test['p_exact'])} | {p_value(test['p_holm'])} |")
    return "\n".join(rows) + "\n"


def defences_predictions(results: dict) -> str:
    return "".join(f"- {defence}: {prediction}\n" for defence, prediction in results["predictions"].items())


PAGES = {
    "toy": {"machine": machine_renderer("toy", {"config": ToyConfig()}, toy_data), "arms": toy_arms,
            "theorem": toy_theorem, "speed": toy_speed},
    "toy-sweeps": {"machine": machine_renderer("toy-sweeps", {"config": ToyConfig(), "sweep_config": SweepConfig()},
                                               lambda results: f"Every point: {results['config']['n_models']} models, "
                                                               "each its own seed; mean over the models.\n"),
                   "table": sweeps_table, "matrix": sweeps_matrix, "alignment": sweeps_alignment},
    "toy-defences": {"machine": machine_renderer("toy-defences", {"config": ToyConfig(),
                                                                  "defence_config": DefenceConfig()},
                                                 lambda results: f"{results['config']['n_models']} models, each its "
                                                                 "own init; 95% CI = t-interval over the models.\n"),
                     "predictions": defences_predictions, "table": defences_table}}
KEPT = {"toy": ("config", "precision", "machine", "seconds", "data", "arms", "init_controls", "theorem", "speed"),
        "toy-sweeps": ("config", "sweep_config", "precision", "machine", "seconds", "sweeps", "alignment",
                       "init_matrix"),
        "toy-defences": ("config", "defence_config", "precision", "machine", "seconds", "predictions", "start",
                         "untreated", "defences", "tests")}
