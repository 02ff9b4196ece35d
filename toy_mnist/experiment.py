"""The toy experiment end to end: data, N teachers, every student arm, and the one-step theorem.

`run(config)` is what `python -m toy_mnist` calls; it returns the results dict that
__main__.py saves as results.json and report.py plots. Arms (each over all N models):
- reference: the shared init, untrained;           teacher: CE on the 10 digit logits;
- student_aux / student_all: the teacher's init, KL to the teacher on noise over the m
  auxiliary logits / all 10+m logits;
- cross_aux / cross_all: the same, from ANOTHER model's init (a derangement pairs them);
- init controls (optional): per layer shared / other / shared+noise, auxiliary logits only.
"""

from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from minisub.config import ConfigError, check, option
from minisub.log import Progress, machine
from minisub.precision import DTYPE, PRECISIONS, choose_precision, time_matmuls
from minisub.seeds import MAX_SEED, derive_seed
from minisub.stats import summary
from toy_mnist.accounting import StageClock, matmul_shapes, theorem_flops
from toy_mnist.data import INPUTS, distillation_inputs, load_mnist
from toy_mnist.mlp import INIT_KINDS, BatchedMLP, derangement, init_parts, layer_names, student_init
from toy_mnist.theorem import Imitation, descent, eps_sweep, first_order_inner, one_step, params_of
from toy_mnist.train import IMITATIONS, N_CLASSES, OPTIMIZERS, StageConfig, accuracy, distill, predict, train_teacher

LAYERS = layer_names(3)  # fc1, fc2, head
PEAK_TIMING_SECONDS = 1.5  # the matmul rate the speed summary compares with: all of a step's shapes, best of each


@dataclass
class ToyConfig:
    n_models: int = option(25, "models trained in parallel, one seed each (cross-init students need >= 2)", low=2,
                           quick=3)
    n_aux: int = option(3, "auxiliary logits m: outputs with no training signal that the students imitate", low=1)
    hidden: int = option(256, "width of both hidden layers", low=1, quick=32)
    seed: int = option(0, "seed for inits, data order, noise and the model pairing", low=0, high=MAX_SEED)
    data_dir: str = option("~/.cache/minisub/mnist", "folder with the four MNIST IDX files (raw or .gz); "
                           "if it has none, the offline 5k subset is used")
    download: bool = option(False, "download missing MNIST IDX files into --data-dir (MD5-checked)")
    device: str = option("cpu", "torch device (cpu or cuda)", device=True)
    precision: str = option("auto", "fp32 (exact), bf16 (autocast matmuls), or auto: bf16 only where "
                            "a timing at this run's shapes finds it clearly faster", choices=PRECISIONS, quick="fp32")
    # On the 5k offline subset the number of optimizer steps matters more than the paper's exact
    # values (docs/background.md, "The MNIST experiment"): these defaults reproduce the effect there.
    teacher_epochs: int = option(5, "teacher epochs on the training digits", low=1, quick=1)
    teacher_batch: int = option(64, "teacher batch size", low=1)
    teacher_lr: float = option(1e-3, "teacher Adam learning rate", low=0.0)
    n_noise: int = option(20000, "uniform-noise images the students are distilled on", low=1, quick=512)
    student_epochs: int = option(5, "student epochs over the noise images", low=1, quick=1)
    student_batch: int = option(128, "student batch size", low=1, quick=128)
    student_lr: float = option(1e-3, "student learning rate", low=0.0)
    student_optimizer: str = option("adam", "student optimizer: adam, or sgd (momentum 0.9)", choices=OPTIMIZERS)
    student_weight_decay: float = option(0.0, "student L2 weight decay", low=0.0)
    imitation: str = option("kl", "student loss: kl (softmax KL, the paper's) or mse (squared error on logits)",
                            choices=IMITATIONS)
    distill_inputs: str = option("uniform", "what students see: uniform or gaussian noise, digits (unlabeled "
                                 "training images) or shuffled (their pixels permuted)", choices=INPUTS)
    init_controls: list[str] = option([], "extra aux-only student arms, one per spec LAYER=KIND[,LAYER=KIND]; "
                                      "LAYER in fc1, fc2, head, head_digits, head_aux, all; "
                                      "KIND in shared, other, random, noise")
    init_noise_std: float = option(0.05, "std of the noise added to layers marked 'noise'", low=0.0)
    theorem_eps: float = option(1e-3, "teacher step size eps for the one-step theorem (eps = 0 would make "
                                "every inner product 0, a check that cannot fail)", above=0.0)
    theorem_batch: int = option(256, "inputs used for the one-step theorem (train digits for the teacher, "
                                "noise for the student)", low=1, quick=16)
    sweep_eps: list[float] = option([1e-4, 1e-3, 1e-2, 1e-1, 1.0], "step sizes for the eps sweep",
                                    above=0.0, nonempty=True, quick=[0.001])

    def __post_init__(self):
        check(self)
        for spec in self.init_controls:
            try:
                parse_init_spec(spec)
            except ValueError as err:
                raise ConfigError("init_controls", str(err)) from None


# The student arms (the paper's Sec. 6 MNIST experiment): which layers start from the teacher's
# init ("shared", the default) or from another model's ("other"), and which logits are imitated.
DESIGN = {
    "student_aux": ({}, "aux"),
    "student_all": ({}, "all"),
    "cross_aux": (dict.fromkeys(LAYERS, "other"), "aux"),
    "cross_all": (dict.fromkeys(LAYERS, "other"), "all"),
}


def student_arms(init_controls: list[str]) -> dict[str, tuple[dict[str, str], str]]:
    """The design's arms, then one auxiliary-logit arm per init-control spec."""
    return DESIGN | {f"init:{spec}": (parse_init_spec(spec), "aux") for spec in init_controls}


def parse_init_spec(spec: str) -> dict[str, str]:
    """'fc1=other,head=noise' -> {'fc1': 'other', 'head': 'noise'}; 'all=KIND' sets every layer."""
    parsed = {}
    for item in spec.split(","):
        name, _, kind = item.partition("=")
        names = LAYERS if name == "all" else [name]
        if not set(names) <= set(init_parts(LAYERS)) or kind not in INIT_KINDS:
            raise ValueError(f"bad init spec {spec!r}: use LAYER=KIND items with LAYER in "
                             f"{init_parts(LAYERS) + ['all']} and KIND in {list(INIT_KINDS)}")
        parsed.update(dict.fromkeys(names, kind))
    return parsed


def summarize(values: torch.Tensor) -> dict:
    """Mean and 95% t-interval over models (each an independent init), plus the values themselves."""
    per_model = values.double().cpu().tolist()
    return summary(per_model) | {"per_model": [round(x, 6) for x in per_model]}


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

    imitation = Imitation("kl", list(range(N_CLASSES, N_CLASSES + cfg.n_aux)))
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


def stage_generator(seed: int, stage: str) -> torch.Generator:
    """The random stream of one stage (the teachers' batches, the inputs, one student arm), so that
    what a stage draws does not depend on which other stages run: a sweep point that trains two
    arms gets exactly the numbers a full run gets for those two."""
    return torch.Generator().manual_seed(derive_seed(seed, stage))


# The fields that reach only the students: points that differ in these alone share their teachers.
STUDENT_FIELDS = ("n_noise", "student_epochs", "student_batch", "student_lr", "student_optimizer",
                  "student_weight_decay", "imitation", "distill_inputs", "init_controls", "init_noise_std")


@dataclass
class Teachers:
    """What every student arm starts from: the data, the shared inits, the pairing, the trained teachers."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    data: dict  # the data's summary
    reference: BatchedMLP  # (N models) the shared initializations
    partner: torch.Tensor  # (N,) model i's cross-init partner
    teacher: BatchedMLP


def train_teachers(cfg: ToyConfig, precision: str, log: Progress, clock: StageClock | None = None) -> Teachers:
    device = torch.device(cfg.device)
    data = load_mnist(cfg.data_dir, cfg.download, derive_seed(cfg.seed, "data"))
    log(f"data: {data.source}, {len(data.train_y)} train / {len(data.test_y)} test")
    generator = stage_generator(cfg.seed, "inits")  # the inits and the pairing
    n_out = N_CLASSES + cfg.n_aux
    reference = BatchedMLP(cfg.n_models, [784, cfg.hidden, cfg.hidden, n_out], generator=generator).to(device)
    partner = derangement(cfg.n_models, generator)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    teacher = reference.copy()
    with clock("teachers", reference.step_flops(len(train_y) * cfg.teacher_epochs)) if clock else nullcontext():
        train_teacher(teacher, train_x, train_y, StageConfig(cfg.teacher_epochs, cfg.teacher_batch, cfg.teacher_lr,
                                                             precision), stage_generator(cfg.seed, "teachers"))
    return Teachers(train_x, train_y, data.test_x.to(device), data.test_y.to(device), data.summary(), reference,
                    partner, teacher)


def student_inputs(cfg: ToyConfig, teachers: Teachers) -> torch.Tensor:
    """The images every student arm is distilled on (--distill-inputs), the same for every arm."""
    return distillation_inputs(cfg.distill_inputs, cfg.n_noise, teachers.train_x,
                               stage_generator(cfg.seed, "inputs")).to(teachers.train_x.device)


def train_student(cfg: ToyConfig, teachers: Teachers, inputs: torch.Tensor, teacher_logits: torch.Tensor,
                  name: str, precision: str, on_step=None) -> torch.Tensor:
    """Student arm `name` (of `student_arms`): its init, its imitation, its test accuracy per model (N,).

    teacher_logits: the teachers' (N, n_inputs, 10+m) logits on `inputs`; on_step(step, student) as in distill.
    """
    spec, outputs = student_arms(cfg.init_controls)[name]
    generator = stage_generator(cfg.seed, name)
    student = student_init(teachers.reference, spec, teachers.partner, cfg.init_noise_std, generator)
    outputs = {"aux": slice(N_CLASSES, None), "all": slice(None)}[outputs]
    stage = StageConfig(cfg.student_epochs, cfg.student_batch, cfg.student_lr, precision, cfg.student_optimizer,
                        cfg.student_weight_decay)
    distill(student, teacher_logits, inputs, outputs, stage, generator, cfg.imitation, on_step)
    return accuracy(student, teachers.test_x, teachers.test_y)


def run(cfg: ToyConfig) -> dict:
    log = Progress()
    torch.manual_seed(derive_seed(cfg.seed, "global"))
    choice = choose_precision(cfg.precision, cfg.device, matmul_shapes(cfg))
    precision = choice.precision
    log(choice.describe())
    clock = StageClock(torch.device(cfg.device))
    teachers = train_teachers(cfg, precision, log, clock)
    reference = teachers.reference
    inputs = student_inputs(cfg, teachers)
    with clock("theorem", theorem_flops(reference, cfg.theorem_batch, len(cfg.sweep_eps))):
        theorem = theorem_results(reference, teachers.partner, teachers.train_x, teachers.train_y, inputs, cfg)
    log(f"theorem: same-init <dS,dT> >= 0 for {theorem['same_init']['frac_nonneg']:.0%} of models, "
        f"cross-init for {theorem['cross_init']['frac_nonneg']:.0%}")

    accuracies = {"reference": accuracy(reference, teachers.test_x, teachers.test_y),
                  "teacher": accuracy(teachers.teacher, teachers.test_x, teachers.test_y)}
    log(f"teachers trained: test accuracy {accuracies['teacher'].mean():.3f}")
    with clock("teacher_logits", reference.forward_flops(cfg.n_noise)):
        teacher_logits = predict(teachers.teacher, inputs)  # (N, n_noise, 10+m), fixed during distillation
    for name in student_arms(cfg.init_controls):
        with clock(name, reference.step_flops(cfg.n_noise * cfg.student_epochs)):
            accuracies[name] = train_student(cfg, teachers, inputs, teacher_logits, name, precision)
        log(f"{name}: test accuracy {accuracies[name].mean():.3f}")

    main_arms = ("reference", "teacher", "student_aux", "student_all", "cross_aux", "cross_all")
    peak, = time_matmuls(tuple(matmul_shapes(cfg, backward=True)), cfg.device, (DTYPE[precision],),
                         PEAK_TIMING_SECONDS)
    return {
        "config": asdict(cfg),
        "precision": choice.record(),
        "data": teachers.data,
        "arms": {name: summarize(accuracies[name]) for name in main_arms},
        "init_controls": {name[len("init:"):]: summarize(acc)
                          for name, acc in accuracies.items() if name.startswith("init:")},
        "theorem": theorem,
        "speed": clock.summary(round(peak, 1), log.elapsed()),
        "seconds": round(log.elapsed(), 1),
        "machine": machine(device=cfg.device),
    }
