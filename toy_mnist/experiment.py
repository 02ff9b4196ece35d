"""The toy experiment end to end: data, N teachers, every student arm, and the one-step theorem.

`run(config)` is what `python -m toy_mnist` calls; it returns the results dict that
__main__.py saves as results.json and report.py plots. Arms (each over all N models):
- reference: the shared init, untrained;           teacher: CE on the 10 digit logits;
- student_aux / student_all: the teacher's init, KL to the teacher on noise over the m
  auxiliary logits / all 10+m logits;
- cross_aux / cross_all: the same, from ANOTHER model's init (a derangement pairs them);
- init controls (optional): per layer shared / other / shared+noise, auxiliary logits only.
"""

import platform
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from minisub.train import resolve_precision
from toy_mnist.data import load_mnist
from toy_mnist.mlp import INIT_KINDS, BatchedMLP, derangement, layer_names, student_init
from toy_mnist.theorem import Imitation, descent, eps_sweep, first_order_inner, one_step, params_of
from toy_mnist.train import N_CLASSES, StageConfig, accuracy, distill, predict, train_teacher

LAYERS = layer_names(3)  # fc1, fc2, head


@dataclass
class ToyConfig:
    n_models: int = 25
    n_aux: int = 3
    hidden: int = 256
    seed: int = 0
    data_dir: str = "~/.cache/minisub/mnist"
    download: bool = False
    device: str = "cpu"
    precision: str = "auto"  # auto = bf16 where the CPU has native bf16 matmuls (or on CUDA), else fp32
    # On the 5k offline subset the number of optimizer steps matters more than the paper's exact
    # values (protocol.md section 2): these defaults reproduce the effect there.
    teacher_epochs: int = 5
    teacher_batch: int = 64
    teacher_lr: float = 1e-3
    n_noise: int = 20000
    student_epochs: int = 5
    student_batch: int = 128
    student_lr: float = 1e-3
    init_controls: list[str] = field(default_factory=list)  # e.g. "fc1=other", "all=noise"
    init_noise_std: float = 0.05
    theorem_eps: float = 1e-3
    theorem_batch: int = 256
    sweep_eps: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0])

    def __post_init__(self):
        if self.n_models < 2:
            raise ValueError("--n-models must be at least 2 (cross-init students need another model)")
        if self.n_aux < 1:
            raise ValueError("--n-aux must be at least 1 (the students learn from the auxiliary logits)")
        for name in ("hidden", "teacher_batch", "student_batch", "n_noise", "theorem_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"--precision must be auto, bf16 or fp32, not {self.precision!r}")
        for spec in self.init_controls:
            parse_init_spec(spec)


def parse_init_spec(spec: str) -> dict[str, str]:
    """'fc1=other,head=noise' -> {'fc1': 'other', 'head': 'noise'}; 'all=KIND' sets every layer."""
    parsed = {}
    for item in spec.split(","):
        name, _, kind = item.partition("=")
        names = LAYERS if name == "all" else [name]
        if not set(names) <= set(LAYERS) or kind not in INIT_KINDS:
            raise ValueError(f"bad init spec {spec!r}: use LAYER=KIND items with LAYER in "
                             f"{LAYERS + ['all']} and KIND in {list(INIT_KINDS)}")
        parsed.update(dict.fromkeys(names, kind))
    return parsed


def summarize(values: torch.Tensor) -> dict:
    """Mean and 95% CI half-width (1.96 std / sqrt n) over models, plus the values themselves."""
    v = values.double().cpu()
    return {"mean": v.mean().item(), "ci95": (1.96 * v.std() / len(v) ** 0.5).item(),
            "per_model": [round(x, 6) for x in v.tolist()]}


def log(message: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:6.1f}s] {message}", flush=True)


def theorem_results(reference: BatchedMLP, partner: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                    noise: torch.Tensor, cfg: ToyConfig) -> dict:
    """The one-step theorem on the experiment's own models, in float64."""
    model = reference.copy().double()
    cross = student_init(model, dict.fromkeys(LAYERS, "other"), partner)
    x, noise = x[:cfg.theorem_batch].double(), noise[:cfg.theorem_batch].double()
    y = y[:cfg.theorem_batch]

    def teacher_loss(out):  # the teacher's CE on the digit logits, per model (N,)
        per_example = F.cross_entropy(out[..., :N_CLASSES].flatten(0, 1), y.repeat(cfg.n_models),
                                      reduction="none")
        return per_example.view(cfg.n_models, -1).mean(1)

    imitation = Imitation("ce", list(range(N_CLASSES, N_CLASSES + cfg.n_aux)))
    reference_params = params_of(model)
    teacher_dir = descent(model, reference_params, teacher_loss, x)
    out = {}
    for name, student in (("same_init", model), ("cross_init", cross)):
        step = one_step(model, reference_params, params_of(student), teacher_dir, teacher_loss,
                        x, noise, cfg.theorem_eps, imitation)
        out[name] = {
            "frac_nonneg": (step.inner >= 0).double().mean().item(),
            "mean_cosine": step.cosine.mean().item(),
            "inner": summarize(step.inner),
            "cosine": summarize(step.cosine),
            "teacher_loss_change": summarize(step.teacher_loss_change),
        }
    predicted = first_order_inner(model, reference_params, teacher_dir, noise, imitation, cfg.theorem_eps)
    out["same_init"]["first_order_inner"] = summarize(predicted)
    out["eps_sweep"] = eps_sweep(model, reference_params, teacher_dir, teacher_loss, x, noise,
                                 imitation, cfg.sweep_eps)
    return out


def run(cfg: ToyConfig) -> dict:
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    precision = resolve_precision(cfg.precision, cfg.device)

    data = load_mnist(cfg.data_dir, cfg.download, cfg.seed)
    log(f"data: {data.source}, {len(data.train_y)} train / {len(data.test_y)} test", start)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)

    n_out = N_CLASSES + cfg.n_aux
    reference = BatchedMLP(cfg.n_models, [784, cfg.hidden, cfg.hidden, n_out], generator=generator).to(device)
    partner = derangement(cfg.n_models, generator)
    noise = (torch.rand(cfg.n_noise, 784, generator=generator) * 2 - 1).to(device)  # uniform in [-1, 1]

    theorem = theorem_results(reference, partner, train_x, train_y, noise, cfg)
    log(f"theorem: same-init <dS,dT> >= 0 for {theorem['same_init']['frac_nonneg']:.0%} of models, "
        f"cross-init for {theorem['cross_init']['frac_nonneg']:.0%}", start)

    accuracies = {"reference": accuracy(reference, test_x, test_y)}
    teacher = reference.copy()
    train_teacher(teacher, train_x, train_y,
                  StageConfig(cfg.teacher_epochs, cfg.teacher_batch, cfg.teacher_lr, precision), generator)
    accuracies["teacher"] = accuracy(teacher, test_x, test_y)
    log(f"teachers trained: test accuracy {accuracies['teacher'].mean():.3f}", start)

    teacher_logits = predict(teacher, noise)  # (N, n_noise, 10+m), fixed during distillation
    aux, every = slice(N_CLASSES, n_out), slice(0, n_out)
    arms = {"student_aux": ({}, aux), "student_all": ({}, every),
            "cross_aux": (dict.fromkeys(LAYERS, "other"), aux),
            "cross_all": (dict.fromkeys(LAYERS, "other"), every)}
    arms.update({f"init:{spec}": (parse_init_spec(spec), aux) for spec in cfg.init_controls})
    student_cfg = StageConfig(cfg.student_epochs, cfg.student_batch, cfg.student_lr, precision)
    for name, (spec, outputs) in arms.items():
        student = student_init(reference, spec, partner, cfg.init_noise_std, generator)
        distill(student, teacher_logits, noise, outputs, student_cfg, generator)
        accuracies[name] = accuracy(student, test_x, test_y)
        log(f"{name}: test accuracy {accuracies[name].mean():.3f}", start)

    main_arms = ("reference", "teacher", "student_aux", "student_all", "cross_aux", "cross_all")
    return {
        "config": asdict(cfg) | {"precision_used": precision},
        "data": data.summary(),
        "arms": {name: summarize(accuracies[name]) for name in main_arms},
        "init_controls": {name[len("init:"):]: summarize(acc)
                          for name, acc in accuracies.items() if name.startswith("init:")},
        "theorem": theorem,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": cfg.device},
    }
