"""`python -m toy_mnist.defences` (`make toy-defences`): what removes the MNIST transfer, and what it costs.

The toy's aux-only student (toy_mnist/experiment.py), from its teacher's init, imitating the
teacher's auxiliary logits on noise, trained with one defence at a time, one knob swept:
- kl: a KL penalty to the student's starting model, on all its logits and the same noise batch,
  weighted by the knob ("liminal training"; reported to attenuate, not stop, the transfer);
- oracle: each step, the part of each model's gradient whose update would move the weights along
  the teacher's own change theta_T - theta_0 is removed. A defender does not know that change: this
  is the upper bound of gradient projection;
- estimated: the same against the trait's own direction, minus the gradient of the digit loss on
  the knob's number of labelled training digits, at the student's current weights (the projection
  of Kitkana and Arora, arXiv 2604.25779, with the labels a defender could have).
Per model (each an independent init, the unit of replication):
- transfer: its digit test accuracy, and the share of the untreated student's gain over its init
  that it keeps, (acc - acc_init) / (acc_untreated - acc_init);
- utility: how well it still does the task it was given, imitating the teacher's aux logits on
  held-out noise: the share of the untreated student's reduction of that KL that it keeps.
Fixed before the run (`PREDICTIONS`): which defences the literature predicts to lower the
transfer. The family: each defence's accuracy below the untreated student's, one-sided exact
sign-flip over models (Monte Carlo beyond 20), Holm over every defence and knob.
The untreated student is the toy's `student_aux` arm itself: the same init and the same batches.
"""

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from minisub.cli import Parser, add_config_flags, add_quick_flag, config_from_args, run_main
from minisub.config import check, option
from minisub.files import check_not_replacing, check_output_folder, write_json
from minisub.log import Progress, machine
from minisub.losses import kl_divergence
from minisub.precision import choose_precision
from minisub.stats import holm, sign_flip_greater, summary
from toy_mnist.accounting import matmul_shapes
from toy_mnist.data import idx_files_present
from toy_mnist.experiment import (Teachers, ToyConfig, stage_generator, student_arms, student_inputs, summarize,
                                  train_teachers)
from toy_mnist.mlp import BatchedMLP, student_init
from toy_mnist.report import plot_defences
from toy_mnist.train import N_CLASSES, StageConfig, accuracy, distill, predict

# what the literature predicts each defence does to the transfer (fixed before any run; docs/background.md)
PREDICTIONS = {"kl": "attenuates, does not stop it (Kitkana and Arora: liminal training fails on MNIST)",
               "oracle": "removes it (projection of the trait-aligned gradient suppresses transfer)",
               "estimated": "removes it (the same, with the trait gradient from labelled digits)"}


@dataclass
class DefenceConfig:
    kl_weights: list[float] = option([0.1, 1.0, 10.0], "weights of the KL penalty to the starting model", above=0.0,
                                     nonempty=True, quick=[1.0])
    estimated_digits: list[int] = option([10, 100, 1000], "labelled digits the estimated projection's trait gradient "
                                         "comes from", low=1, nonempty=True, quick=[10])
    held_out_noise: int = option(2000, "noise images the utility is measured on", low=1, quick=256)

    def __post_init__(self):
        check(self)


def flat_gradients(model: BatchedMLP) -> torch.Tensor:
    """Every parameter's gradient of each model, flattened: (N, P)."""
    return torch.cat([p.grad.reshape(model.n_models, -1) for p in model.parameters()], 1)


def flat_weights(model: BatchedMLP) -> torch.Tensor:
    return torch.cat([p.detach().reshape(model.n_models, -1) for p in model.parameters()], 1)


def project_out(gradients: torch.Tensor, trait: torch.Tensor) -> torch.Tensor:
    """Each model's gradient (N, P) without its part along the trait direction (N, P) where the update, minus the
    gradient, would move along it; left as it is where it would not."""
    along = (gradients * trait).sum(1)  # (N,): < 0 where the update -g has a component along the trait
    coefficient = torch.where(along < 0, along / trait.pow(2).sum(1).clamp_min(1e-30), torch.zeros_like(along))
    return gradients - coefficient[:, None] * trait


def set_gradients(model: BatchedMLP, flat: torch.Tensor) -> None:
    sizes = [p[0].numel() for p in model.parameters()]
    for p, part in zip(model.parameters(), flat.split(sizes, 1)):
        p.grad.copy_(part.reshape(p.shape))


def projection(trait: Callable[[BatchedMLP], torch.Tensor]) -> Callable[[BatchedMLP], None]:
    """A before_step for `distill`: remove from the gradients the part along trait(student) (N, P)."""
    def before_step(student: BatchedMLP) -> None:
        set_gradients(student, project_out(flat_gradients(student), trait(student)))
    return before_step


def digit_direction(x: torch.Tensor, y: torch.Tensor) -> Callable[[BatchedMLP], torch.Tensor]:
    """The trait direction a defender can estimate: minus the gradient of the digit loss on labelled (x, y), at the
    student's current weights, per model (N, P)."""
    def trait(student: BatchedMLP) -> torch.Tensor:
        logits = student(x)[..., :N_CLASSES].float()  # (N, m, 10)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.repeat(student.n_models), reduction="sum")
        grads = torch.autograd.grad(loss, list(student.parameters()))
        return -torch.cat([g.reshape(student.n_models, -1) for g in grads], 1)
    return trait


def kl_to_start(start: torch.Tensor, weight: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A penalty for `distill`: `weight` x the KL from the starting model's logits (N, n_noise, d_out), every output,
    to the student's on the same batch."""
    def penalty(idx: torch.Tensor, every: torch.Tensor) -> torch.Tensor:
        return weight * kl_divergence(start[:, idx], every).mean(1).sum()
    return penalty


def held_out_kl(model: BatchedMLP, teacher_logits: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per model: the mean KL from the teacher's aux logits to the model's on held-out noise, (N,)."""
    return kl_divergence(teacher_logits[..., N_CLASSES:], predict(model, noise)[..., N_CLASSES:]).mean(1)


def untrained_student(cfg: ToyConfig, teachers: Teachers) -> tuple[BatchedMLP, torch.Generator]:
    """The aux-only student's init and the stream its batches then come from: the toy's `student_aux` arm's."""
    generator = stage_generator(cfg.seed, "student_aux")
    spec, _ = student_arms([])["student_aux"]
    return student_init(teachers.reference, spec, teachers.partner, cfg.init_noise_std, generator), generator


def defended_student(cfg: ToyConfig, teachers: Teachers, inputs: torch.Tensor, teacher_logits: torch.Tensor,
                     precision: str, defence: str, knob: float | None) -> BatchedMLP:
    """The aux-only student from its teacher's init, on the toy's `student_aux` stream (so that without a
    defence it is that arm), trained with `defence` ("none", "kl", "oracle", "estimated") at `knob`."""
    student, generator = untrained_student(cfg, teachers)
    penalty, before_step = None, None
    if defence == "kl":
        penalty = kl_to_start(predict(student, inputs), knob)
    elif defence == "oracle":
        change = flat_weights(teachers.teacher) - flat_weights(teachers.reference)  # (N, P): theta_T - theta_0
        before_step = projection(lambda s: change)
    elif defence == "estimated":
        m = int(knob)
        if m > len(teachers.train_y):
            raise ValueError(f"--estimated-digits {m}: the training set has {len(teachers.train_y)} digits")
        before_step = projection(digit_direction(teachers.train_x[:m], teachers.train_y[:m]))
    stage = StageConfig(cfg.student_epochs, cfg.student_batch, cfg.student_lr, precision, cfg.student_optimizer,
                        cfg.student_weight_decay)
    distill(student, teacher_logits, inputs, slice(N_CLASSES, None), stage, generator, cfg.imitation,
            penalty=penalty, before_step=before_step)
    return student


def share(values: torch.Tensor, start: torch.Tensor, untreated: torch.Tensor) -> torch.Tensor:
    """Per model: how much of the untreated student's change from its start this one made."""
    return (values - start) / (untreated - start)


def run(cfg: ToyConfig, d: DefenceConfig) -> dict:
    log = Progress()
    choice = choose_precision(cfg.precision, cfg.device, matmul_shapes(cfg))
    log(choice.describe())
    teachers = train_teachers(cfg, choice.precision, log)
    inputs = student_inputs(cfg, teachers)
    teacher_logits = predict(teachers.teacher, inputs)  # (N, n_noise, 10 + m)
    held_out = (torch.rand(d.held_out_noise, 784, generator=stage_generator(cfg.seed, "held-out noise")) * 2 - 1
                ).to(inputs.device)
    held_out_teacher = predict(teachers.teacher, held_out)
    start, _ = untrained_student(cfg, teachers)
    start_accuracy, start_kl = accuracy(start, teachers.test_x, teachers.test_y), held_out_kl(
        start, held_out_teacher, held_out)

    def measure(defence: str, knob: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        student = defended_student(cfg, teachers, inputs, teacher_logits, choice.precision, defence, knob)
        acc, kl = accuracy(student, teachers.test_x, teachers.test_y), held_out_kl(student, held_out_teacher, held_out)
        log(f"{defence}{'' if knob is None else f' {knob:g}'}: test accuracy {acc.mean():.3f}, held-out aux KL "
            f"{kl.mean():.4f}")
        return acc, kl
    untreated_accuracy, untreated_kl = measure("none", None)
    settings = [("kl", w) for w in d.kl_weights] + [("oracle", None)] + [("estimated", m) for m in d.estimated_digits]
    defences, below = {}, {}
    for defence, knob in settings:
        name = defence + ("" if knob is None else f" {knob:g}")
        acc, kl = measure(defence, knob)
        defences[name] = {"defence": defence, "knob": knob, "accuracy": summarize(acc),
                          "transfer_left": summarize(share(acc, start_accuracy, untreated_accuracy)),
                          "utility_kept": summarize(share(kl, start_kl, untreated_kl))}
        below[name] = (untreated_accuracy - acc).double().cpu().tolist()
    exact = {name: sign_flip_greater(values) for name, values in below.items()}
    tests = {name: {**summary(values), "values": values, "p_exact": exact[name], "p_holm": adjusted}
             for (name, values), adjusted in zip(below.items(), holm(list(exact.values())))}
    return {"config": asdict(cfg), "defence_config": asdict(d), "precision": choice.record(),
            "predictions": PREDICTIONS, "start": {"accuracy": summarize(start_accuracy),
                                                  "held_out_kl": summarize(start_kl)},
            "untreated": {"accuracy": summarize(untreated_accuracy), "held_out_kl": summarize(untreated_kl)},
            "defences": defences, "tests": tests, "seconds": round(log.elapsed(), 1),
            "machine": machine(device=cfg.device)}


def main(argv=None) -> int:
    parser = Parser(prog="python -m toy_mnist.defences", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, ToyConfig, skip={"init_controls", "sweep_eps", "theorem_eps", "theorem_batch"})
    add_config_flags(parser, DefenceConfig)
    parser.add_argument("--out", default=None, help="output folder (default: runs/toy_defences, or "
                                                    "runs/toy_defences-quick with --quick)")
    parser.add_argument("--force", action="store_true", help="replace the results an --out folder already holds")
    quick = add_quick_flag(parser, argv, ToyConfig, DefenceConfig, what="tiny sizes that check every part connects")
    args = parser.parse_args(argv)
    cfg, d = config_from_args(ToyConfig, args, parser), config_from_args(DefenceConfig, args, parser)

    def body() -> None:
        from toy_mnist.render import defences_table  # the page's own table; the page module imports this one
        out = check_output_folder(args.out or ("runs/toy_defences-quick" if quick else "runs/toy_defences"))
        check_not_replacing(out, args.force, "a toy-defences run")
        idx_files_present(cfg.data_dir, cfg.download)  # a bad --data-dir is refused before the precision timing
        results = run(cfg, d)
        write_json(out / "results.json", results)
        plot_defences(results, out / "defences.png")
        print(defences_table(results))
        print(f"{results['seconds']:.0f}s; wrote {out}/results.json and defences.png")
    return run_main("toy_mnist.defences", body)


if __name__ == "__main__":
    sys.exit(main())
