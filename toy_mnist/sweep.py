"""`python -m toy_mnist.sweep` (`make toy-sweeps`): what the MNIST transfer depends on.

Built on the batched trainer of `python -m toy_mnist` (toy_mnist/experiment.py): every point is
25 models (--n-models) trained at once, one seed each, from the toy's defaults with one setting
changed, and its numbers are exactly those `python -m toy_mnist` gives with that setting (each
stage draws from its own seeded stream; tested). Three parts, one function each:
1. sweeps: m auxiliary logits, hidden width, distillation epochs, weight decay, optimizer,
   imitation loss, distillation inputs, init noise; each point the aux-only students from the
   teacher's init (same) and from another model's (cross). The epochs sweep trains once to the
   largest value and reads the smaller ones on the way: at a constant learning rate the first E
   epochs of a run are an E-epoch run.
2. the per-layer init matrix: one part of the student's init (fc1, fc2, the head's digit rows,
   its auxiliary rows) replaced by another model's, a fresh draw, or the shared one plus noise,
   the rest shared; in minisub's setting (m = 3, KL) and in that of "Learning Through Noise"
   (LTN, arXiv 2605.23645: m = 10, squared error), where the two studies disagree, and in LTN's
   with m = 250 auxiliary logits, where they agree.
3. beyond one step: during the longest students' training, the cosine between the student's
   displacement and its teacher's, and the teacher's own loss at the student's parameters.
Writes runs/toy_sweeps/results.json (a section per part) and a plot per sweep beside it.
"""

import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from minisub.cli import Parser, add_config_flags, add_quick_flag, config_from_args, run_main
from minisub.config import check, option
from minisub.files import check_output_folder, write_json
from minisub.log import Progress, machine
from minisub.precision import choose_precision
from toy_mnist.accounting import matmul_shapes
from toy_mnist.data import INPUTS, idx_files_present
from toy_mnist.experiment import (STUDENT_FIELDS, Teachers, ToyConfig, student_arms, student_inputs, summarize,
                                  train_student, train_teachers)
from toy_mnist.mlp import BatchedMLP, student_init
from toy_mnist.sweep_report import plot_alignment, plot_matrix, plot_sweep
from toy_mnist.train import IMITATIONS, N_CLASSES, OPTIMIZERS, accuracy, predict

# sweep name -> the ToyConfig field it varies (its values: the SweepConfig field <name>_values)
SWEEPS = {"n_aux": "n_aux", "hidden": "hidden", "epochs": "student_epochs", "weight_decay": "student_weight_decay",
          "optimizer": "student_optimizer", "imitation": "imitation", "inputs": "distill_inputs",
          "init_noise": "init_noise_std"}
MATRIX_PARTS = ("fc1", "fc2", "head_digits", "head_aux")


@dataclass
class SweepConfig:
    sweeps: list[str] = option(list(SWEEPS), "the sweeps to run", choices=list(SWEEPS))
    n_aux_values: list[int] = option([1, 3, 10], "auxiliary logits m", low=1, nonempty=True, quick=[1, 3])
    hidden_values: list[int] = option([64, 256, 512], "hidden widths (1024 takes ~4x the time of 512 here)", low=1,
                                      nonempty=True, quick=[16, 32])
    epochs_values: list[int] = option([1, 2, 5, 10], "distillation epochs (one run to the largest)", low=1,
                                      nonempty=True, quick=[1, 2])
    weight_decay_values: list[float] = option([0.0, 1e-5, 1e-4], "student weight decays", low=0.0,
                                              nonempty=True, quick=[0.0, 0.001])
    optimizer_values: list[str] = option(["adam", "sgd"], "student optimizers", choices=OPTIMIZERS, nonempty=True)
    sgd_lr: float = option(0.05, "learning rate of the SGD points (momentum 0.9)", low=0.0)
    imitation_values: list[str] = option(["kl", "mse"], "imitation losses", choices=IMITATIONS, nonempty=True)
    inputs_values: list[str] = option(list(INPUTS), "distillation inputs", choices=INPUTS, nonempty=True)
    init_noise_values: list[float] = option([0.0, 0.01, 0.03, 0.1], "std of the noise on the same-init "
                                            "student's every weight and bias", low=0.0, nonempty=True, quick=[0.0, 0.1])
    matrix_kinds: list[str] = option(["other", "noise"], "init kinds of the per-layer matrix in minisub's setting "
                                     "(random: a fresh draw, distributed as another model's)",
                                     choices=["other", "random", "noise"], nonempty=True)
    ltn_n_aux: int = option(10, "m in the LTN setting (its default)", low=1, quick=4)
    ltn_large_n_aux: int = option(250, "m in the LTN setting with many auxiliary logits (the top of its Fig. 2 "
                                  "range)", low=1, quick=8)
    alignment_every: int = option(50, "student steps between alignment points", low=1, quick=2)

    def __post_init__(self):
        check(self)


def teachers_key(cfg: ToyConfig) -> str:
    """What the teachers depend on: the whole config but the fields that only reach the students."""
    return repr(asdict(replace(cfg, **{f: getattr(ToyConfig(), f) for f in STUDENT_FIELDS})))


class Points:
    """Teachers and teacher logits, built once per distinct need (points that differ only in what
    reaches the students share their teachers: STUDENT_FIELDS), and student arms, each trained once
    (the toy's defaults are a point of most sweeps)."""

    def __init__(self, precision: str, log: Progress):
        self.precision, self.log = precision, log
        self.teachers: dict[str, Teachers] = {}
        self.logits: dict[str, tuple] = {}
        self.arms: dict[str, torch.Tensor] = {}

    def teachers_for(self, cfg: ToyConfig) -> Teachers:
        key = teachers_key(cfg)
        if key not in self.teachers:
            self.teachers[key] = train_teachers(cfg, self.precision, self.log)
        return self.teachers[key]

    def inputs_for(self, cfg: ToyConfig) -> tuple[Teachers, torch.Tensor, torch.Tensor]:
        teachers = self.teachers_for(cfg)
        key = repr((teachers_key(cfg), cfg.distill_inputs, cfg.n_noise, cfg.seed))
        if key not in self.logits:
            inputs = student_inputs(cfg, teachers)
            self.logits[key] = (inputs, predict(teachers.teacher, inputs))
        return (teachers, *self.logits[key])

    def arm(self, cfg: ToyConfig, name: str, on_step=None) -> torch.Tensor:
        """Per-model test accuracy (N,) of student arm `name` under `cfg` (which other init controls
        the config lists does not change this arm); on_step: as in distill, and then always trained."""
        spec = student_arms(cfg.init_controls)[name][0]
        noise_std = cfg.init_noise_std if "noise" in spec.values() else ToyConfig().init_noise_std  # unused else
        key = repr((asdict(replace(cfg, init_controls=[], init_noise_std=noise_std)), name))
        if key not in self.arms or on_step is not None:
            teachers, inputs, logits = self.inputs_for(cfg)
            self.arms[key] = train_student(cfg, teachers, inputs, logits, name, self.precision, on_step)
        return self.arms[key]


def point_config(base: ToyConfig, s: SweepConfig, field: str, value) -> ToyConfig:
    changes = {field: value}
    if field == "student_optimizer" and value == "sgd":
        changes["student_lr"] = s.sgd_lr
    if field == "init_noise_std":
        changes["init_controls"] = ["all=noise"]  # the same-init student, every layer noised
    return replace(base, **changes)


def same_arm(cfg: ToyConfig) -> str:
    return "init:all=noise" if cfg.init_controls == ["all=noise"] else "student_aux"


# 1. sweeps (and 3., which rides on the longest epochs run)
def sweep(points: Points, base: ToyConfig, s: SweepConfig, name: str) -> dict:
    field, rows = SWEEPS[name], []
    for value in getattr(s, f"{name}_values"):
        cfg = point_config(base, s, field, value)
        teachers = points.teachers_for(cfg)
        same, cross = points.arm(cfg, same_arm(cfg)), points.arm(cfg, "cross_aux")
        rows.append({"value": value, "same": summarize(same), "cross": summarize(cross),
                     "teacher": summarize(accuracy(teachers.teacher, teachers.test_x, teachers.test_y))})
        points.log(f"sweep {name} = {value}: same-init {rows[-1]['same']['mean']:.3f}, "
                   f"cross-init {rows[-1]['cross']['mean']:.3f}")
    return {"field": field, "points": rows}


def flat(model: BatchedMLP) -> torch.Tensor:
    """(N, P): every parameter of each model in one row."""
    return torch.cat([p.detach().flatten(1) for p in model.parameters()], 1)


def epochs_and_alignment(points: Points, base: ToyConfig, s: SweepConfig) -> tuple[dict, dict]:
    """The epochs sweep from one run to the largest value, and the alignment tracked along it."""
    cfg = replace(base, student_epochs=max(s.epochs_values))
    teachers = points.teachers_for(cfg)
    steps_per_epoch = math.ceil(cfg.n_noise / cfg.student_batch)
    probe_x, probe_y = teachers.train_x[:1000], teachers.train_y[:1000]
    teacher_move = flat(teachers.teacher) - flat(teachers.reference)  # (N, P)
    rows = {epochs: {"value": epochs} for epochs in s.epochs_values}
    alignment = {}
    for arm, key in (("student_aux", "same"), ("cross_aux", "cross")):
        init = student_init(teachers.reference, student_arms([])[arm][0], teachers.partner)  # the arm's, noise-free
        start, track = flat(init), {"step": [], "cosine": [], "teacher_loss": []}

        def on_step(step: int, student: BatchedMLP, key=key, track=track, start=start) -> None:
            if step % s.alignment_every == 0 or step == 1:
                move = flat(student) - start
                cosine = (move * teacher_move).sum(1) / (move.norm(dim=1) * teacher_move.norm(dim=1)).clamp_min(1e-12)
                with torch.no_grad():
                    logits = student(probe_x)[..., :N_CLASSES]  # (N, n, 10)
                    loss = F.cross_entropy(logits.flatten(0, 1), probe_y.repeat(student.n_models), reduction="none")
                track["step"].append(step)
                track["cosine"].append(summarize(cosine))
                track["teacher_loss"].append(summarize(loss.view(student.n_models, -1).mean(1)))
            if step % steps_per_epoch == 0 and step // steps_per_epoch in rows:
                rows[step // steps_per_epoch][key] = summarize(accuracy(student, teachers.test_x, teachers.test_y))

        points.arm(cfg, arm, on_step)
        alignment[key] = track
        points.log(f"sweep epochs ({key}-init): " + ", ".join(f"{e}: {rows[e][key]['mean']:.3f}"
                                                             for e in s.epochs_values))
    alignment["steps_per_epoch"] = steps_per_epoch
    return {"field": "student_epochs", "points": list(rows.values())}, alignment


# 2. the per-layer init matrix
def init_matrix(points: Points, base: ToyConfig, s: SweepConfig) -> dict:
    """Aux-only students with one init part replaced, the rest shared: minisub's setting and LTN's."""
    settings = {"minisub": base, "ltn": replace(base, n_aux=s.ltn_n_aux, imitation="mse"),
                "ltn_large_m": replace(base, n_aux=s.ltn_large_n_aux, imitation="mse")}
    out = {}
    for setting, cfg in settings.items():
        specs = [f"{part}={kind}" for part in MATRIX_PARTS for kind in s.matrix_kinds]
        if setting != "minisub":  # LTN's controls: both hidden layers drawn afresh, or one head
            specs = ["fc1=random,fc2=random", "head_digits=random", "head_aux=random"]
        cfg = replace(cfg, init_controls=specs)
        cells = {"shared": summarize(points.arm(cfg, "student_aux")), "cross": summarize(points.arm(cfg, "cross_aux"))}
        for spec in specs:
            cells[spec] = summarize(points.arm(cfg, f"init:{spec}"))
            points.log(f"init matrix ({setting}) {spec}: {cells[spec]['mean']:.3f}")
        out[setting] = {"config": {"n_aux": cfg.n_aux, "imitation": cfg.imitation}, "cells": cells}
    return out


def run(base: ToyConfig, s: SweepConfig, out: Path) -> dict:
    log = Progress()
    choice = choose_precision(base.precision, base.device, matmul_shapes(base))
    log(choice.describe())
    points = Points(choice.precision, log)
    results = {"config": asdict(base), "sweep_config": asdict(s), "precision": choice.record(), "sweeps": {}}

    def save() -> None:  # after every part: an interrupted run keeps what it finished
        results["seconds"], results["machine"] = round(log.elapsed(), 1), machine(device=base.device)
        write_json(out / "results.json", results)

    for name in s.sweeps:
        if name == "epochs":
            results["sweeps"]["epochs"], results["alignment"] = epochs_and_alignment(points, base, s)
            plot_alignment(results, out / "alignment.png")
        else:
            results["sweeps"][name] = sweep(points, base, s, name)
        plot_sweep(results, name, out / f"sweep_{name}.png")
        save()
    results["init_matrix"] = init_matrix(points, base, s)
    plot_matrix(results, out / "init_matrix.png")
    save()
    return results


def parse_args(argv=None) -> tuple[ToyConfig, SweepConfig, str]:
    """The base point, the sweeps and the output folder from the command line; bad values exit with one line."""
    parser = Parser(prog="python -m toy_mnist.sweep", description=__doc__.split("\n\n")[0])
    add_config_flags(parser, ToyConfig, skip={"init_controls", "sweep_eps", "theorem_eps", "theorem_batch"})
    add_config_flags(parser, SweepConfig)
    parser.add_argument("--out", default=None, help="output folder (default: runs/toy_sweeps, or "
                        "runs/toy_sweeps-quick with --quick)")
    quick = add_quick_flag(parser, argv, ToyConfig, SweepConfig, what="tiny sizes that check every part connects "
                                                                       "(seconds)")
    args = parser.parse_args(argv)
    base, s = config_from_args(ToyConfig, args, parser), config_from_args(SweepConfig, args, parser)
    return base, s, args.out or ("runs/toy_sweeps-quick" if quick else "runs/toy_sweeps")


def main(argv=None) -> int:
    base, s, out = parse_args(argv)

    def body() -> None:
        folder = check_output_folder(out)
        idx_files_present(base.data_dir, base.download)  # a bad --data-dir is refused before the precision timing
        results = run(base, s, folder)
        print(f"{results['seconds']:.0f}s; wrote {folder}/results.json and its plots")
    return run_main("toy_mnist.sweep", body)


if __name__ == "__main__":
    sys.exit(main())
