"""The paper's one-step theorem, measured: a student's first step on teacher outputs moves it
toward the teacher when, and because, the two share their initialization.

Setting (paper, Theorem 1; docs/background.md, "The theorem"). All models are one `BatchedMLP` template evaluated at
parameter dicts, so every quantity below comes out per model, shape (N,).
- The teacher steps on any differentiable loss L_T: theta_T = theta_0 + eps * d_T, d_T = -grad L_T(theta_0).
- The student, started at theta_S0, steps on the imitation loss
  L_S(theta) = E_x[l(f_theta(x), f_theta_T(x))]: d_S = -grad L_S(theta_S0). Here l is squared
  error (1/2 ||a - b||^2) or KL(softmax teacher || softmax student) (the same gradient as
  soft-label cross-entropy), on a chosen subset of the outputs (the softmax then runs over
  that subset only).
- With theta_S0 = theta_0: f_T(x) = f_0(x) + eps J(x) d_T + O(eps^2), so
  d_S = eps E[J^T M J] d_T + O(eps^2), M = I (squared error) or diag(p) - p p^T (KL),
  hence <d_S, d_T> = eps E||M^{1/2} J d_T||^2 + O(eps^2) >= 0 to first order.
- An independent theta_S0 has no such guarantee: its step is driven by f_T - f_S0, which has
  nothing to do with d_T.
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp

from minisub.losses import kl_divergence

Params = dict[str, torch.Tensor]  # name -> (N, ...) tensor, as in model.named_parameters()
PerModelLoss = Callable[[torch.Tensor], torch.Tensor]  # outputs (N, B, d) -> losses (N,)


@dataclass
class Imitation:
    kind: str  # "mse" or "kl"
    outputs: list[int]  # which outputs the student imitates

    def __post_init__(self):
        if self.kind not in ("mse", "kl"):
            raise ValueError(f"unknown imitation loss {self.kind!r}; choose 'mse' or 'kl'")

    def loss(self, student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
        """Per-model imitation loss (N,), averaged over the batch."""
        s, t = student_out[..., self.outputs], teacher_out[..., self.outputs]  # (N, B, k)
        per_example = 0.5 * (s - t).square().sum(-1) if self.kind == "mse" else kl_divergence(t, s)
        return per_example.mean(1)


@dataclass
class StepResult:
    inner: torch.Tensor  # <d_S, d_T> per model (N,)
    cosine: torch.Tensor  # cos(d_S, d_T) (N,)
    teacher_loss_change: torch.Tensor  # L_T(theta_S0 + step) - L_T(theta_S0), step = eps ||d_T|| d_S/||d_S|| (N,)


def params_of(model: torch.nn.Module) -> Params:
    return {name: p.detach() for name, p in model.named_parameters()}


def per_model_dot(a: Params, b: Params) -> torch.Tensor:
    """sum over all parameters of a * b, kept apart per model: (N,)."""
    return sum((a[k] * b[k]).flatten(1).sum(1) for k in a)


def moved(params: Params, direction: Params, scale: float | torch.Tensor) -> Params:
    """params + scale * direction; a (N,) scale gives each model its own step."""
    def expand(s, like):
        return s.view(-1, *[1] * (like.dim() - 1)) if torch.is_tensor(s) else s
    return {k: params[k] + expand(scale, params[k]) * direction[k] for k in params}


def descent(model: torch.nn.Module, params: Params, loss: PerModelLoss, x: torch.Tensor) -> Params:
    """-grad of the summed per-model loss: each model's own steepest-descent direction."""
    g = grad(lambda p: loss(functional_call(model, p, (x,))).sum())(params)
    return {k: -v for k, v in g.items()}


def imitation_direction(model: torch.nn.Module, student: Params, teacher: Params,
                        x: torch.Tensor, imitation: Imitation) -> Params:
    """The student's first step d_S toward the teacher's outputs on inputs x."""
    target = functional_call(model, teacher, (x,)).detach()
    return descent(model, student, lambda out: imitation.loss(out, target), x)


def first_order_inner(model: torch.nn.Module, reference: Params, teacher_dir: Params,
                      x: torch.Tensor, imitation: Imitation, eps: float) -> torch.Tensor:
    """The theorem's prediction of <d_S, d_T> for a same-init student: eps E||M^{1/2} J d_T||^2 (N,)."""
    out, jd = jvp(lambda p: functional_call(model, p, (x,)), (reference,), (teacher_dir,))
    v = jd[..., imitation.outputs]  # J d_T on the imitated outputs, (N, B, k)
    if imitation.kind == "mse":
        quad = v.square().sum(-1)
    else:
        p = F.softmax(out[..., imitation.outputs], -1)
        quad = (p * v.square()).sum(-1) - (p * v).sum(-1).square()  # v^T (diag p - p p^T) v
    return eps * quad.mean(1)


def one_step(model: torch.nn.Module, reference: Params, student: Params, teacher_dir: Params,
             teacher_loss: PerModelLoss, x_teacher: torch.Tensor, x_student: torch.Tensor,
             eps: float, imitation: Imitation) -> StepResult:
    """The teacher steps eps * teacher_dir from `reference`; the student, from `student`, takes
    one imitation step toward it. teacher_dir = descent(model, reference, teacher_loss, x_teacher)."""
    teacher = moved(reference, teacher_dir, eps)
    student_dir = imitation_direction(model, student, teacher, x_student, imitation)
    inner = per_model_dot(student_dir, teacher_dir)
    tiny = torch.finfo(inner.dtype).tiny
    norm_t = per_model_dot(teacher_dir, teacher_dir).sqrt()
    norm_s = per_model_dot(student_dir, student_dir).sqrt().clamp_min(tiny)
    cosine = inner / (norm_s * norm_t).clamp_min(tiny)
    stepped = moved(student, student_dir, eps * norm_t / norm_s)
    with torch.no_grad():
        before = teacher_loss(functional_call(model, student, (x_teacher,)))
        after = teacher_loss(functional_call(model, stepped, (x_teacher,)))
    return StepResult(inner, cosine, after - before)


def eps_sweep(model: torch.nn.Module, reference: Params, teacher_dir: Params,
              teacher_loss: PerModelLoss, x_teacher: torch.Tensor, x_student: torch.Tensor,
              imitation: Imitation, epsilons: list[float]) -> list[dict]:
    """Same-init measured vs first-order <d_S, d_T> over eps: the error should shrink like eps^2."""
    rows = []
    slope = first_order_inner(model, reference, teacher_dir, x_student, imitation, 1.0)  # linear in eps
    for eps in epsilons:
        result = one_step(model, reference, reference, teacher_dir, teacher_loss,
                          x_teacher, x_student, eps, imitation)
        predicted = eps * slope
        rows.append({
            "eps": eps,
            "frac_nonneg": (result.inner >= 0).double().mean().item(),
            "measured": result.inner.mean().item(),
            "predicted": predicted.mean().item(),
            "abs_error": (result.inner - predicted).abs().mean().item(),
        })
    return rows
