"""The one-step theorem as properties: it holds for a shared init (and a permuted copy of it),
and is no law for independent inits. Hypothesis draws architectures, losses, inputs, eps, seeds."""

import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from toy_mnist.mlp import BatchedMLP
from toy_mnist.theorem import (Imitation, descent, first_order_inner, imitation_direction, moved, one_step, params_of,
                               per_model_dot)


@st.composite
def settings(draw):
    """A random small MLP setting: architecture, teacher loss, imitation loss, inputs, eps, seed."""
    d_in = draw(st.integers(2, 8))
    hidden = draw(st.lists(st.integers(2, 12), min_size=1, max_size=3))
    n_out = draw(st.integers(2, 6))
    outputs = draw(st.lists(st.integers(0, n_out - 1), min_size=1, max_size=n_out, unique=True))
    return {
        "n_models": draw(st.integers(1, 4)),
        "sizes": [d_in, *hidden, n_out],
        "activation": draw(st.sampled_from(["relu", "tanh", "gelu"])),
        "imitation": Imitation(draw(st.sampled_from(["mse", "kl"])), sorted(outputs)),
        "teacher_kind": draw(st.sampled_from(["mse", "ce"])),
        "inputs": draw(st.sampled_from(["gaussian", "uniform", "shifted"])),
        "batch": draw(st.integers(1, 16)),
        "step": draw(st.floats(1e-6, 1e-4)),  # length of the teacher's step, eps ||d_T||
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def draw_inputs(kind, n, d, g):
    if kind == "gaussian":
        return torch.randn(n, d, generator=g, dtype=torch.float64)
    if kind == "uniform":
        return torch.rand(n, d, generator=g, dtype=torch.float64) * 2 - 1
    return 3.0 + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)


def build(s):
    """Model, a teacher loss on its own inputs with random targets, the teacher's direction, its
    eps (so that the largest teacher step has the drawn length), and the student's inputs."""
    g = torch.Generator().manual_seed(s["seed"])
    model = BatchedMLP(s["n_models"], s["sizes"], s["activation"], generator=g, dtype=torch.float64)
    with torch.no_grad():  # random biases: with zero ones a dead ReLU layer leaves the next
        for b in model.biases:  # pre-activations at exactly 0, a kink where no derivative exists
            b.copy_(0.1 * torch.randn(b.shape, generator=g, dtype=b.dtype))
    n_out = s["sizes"][-1]
    x_teacher = draw_inputs(s["inputs"], s["batch"], s["sizes"][0], g)
    x_student = draw_inputs(s["inputs"], s["batch"], s["sizes"][0], g)
    target = torch.randn(s["n_models"], s["batch"], n_out, generator=g, dtype=torch.float64)
    labels = torch.randint(n_out, (s["n_models"] * s["batch"],), generator=g)

    def teacher_loss(out):  # any differentiable loss will do: the theorem does not care which
        if s["teacher_kind"] == "mse":
            return (out - target).square().sum(-1).mean(1)
        return F.cross_entropy(out.flatten(0, 1), labels, reduction="none").view(s["n_models"], -1).mean(1)

    teacher_dir = descent(model, params_of(model), teacher_loss, x_teacher)
    eps = s["step"] / per_model_dot(teacher_dir, teacher_dir).sqrt().max().item()
    return model, teacher_loss, teacher_dir, eps, x_teacher, x_student, g


def permute_hidden(params, g):
    """The same functions in other coordinates: shuffle every hidden layer's units."""
    permuted = dict(params)
    n_layers = sum(k.startswith("weights.") for k in params)
    for layer in range(n_layers - 1):
        perm = torch.randperm(params[f"weights.{layer}"].shape[-1], generator=g)
        permuted[f"weights.{layer}"] = permuted[f"weights.{layer}"][..., perm]
        permuted[f"biases.{layer}"] = permuted[f"biases.{layer}"][..., perm]
        permuted[f"weights.{layer + 1}"] = permuted[f"weights.{layer + 1}"][:, perm, :]
    return permuted


@given(settings())
def test_same_init_step_moves_toward_teacher_as_first_order_predicts(s):
    model, teacher_loss, teacher_dir, eps, x_teacher, x_student, _ = build(s)
    reference = params_of(model)
    result = one_step(model, reference, reference, teacher_dir, teacher_loss, x_teacher, x_student,
                      eps, s["imitation"])
    predicted = first_order_inner(model, reference, teacher_dir, x_student, s["imitation"], eps)
    scale = eps * per_model_dot(teacher_dir, teacher_dir)  # the size of eps <d_T, d_T>-like terms
    assert (predicted >= 0).all()
    assert (result.inner >= -1e-9 * scale).all()
    torch.testing.assert_close(result.inner, predicted, rtol=1e-2, atol=(1e-9 * scale).max().item())


@given(settings())
def test_permuted_init_still_lowers_the_teacher_loss(s):
    model, teacher_loss, teacher_dir, eps, x_teacher, x_student, g = build(s)
    reference = params_of(model)
    permuted = permute_hidden(reference, g)
    torch.testing.assert_close(torch.func.functional_call(model, permuted, (x_student,)),
                               model(x_student), rtol=1e-12, atol=1e-12)
    same = one_step(model, reference, reference, teacher_dir, teacher_loss, x_teacher, x_student,
                    eps, s["imitation"])
    other_coords = one_step(model, reference, permuted, teacher_dir, teacher_loss, x_teacher,
                            x_student, eps, s["imitation"])
    # The step in permuted coordinates is the permuted step: the same change of function, so the
    # same change of the teacher's loss, and to first order it is a decrease.
    torch.testing.assert_close(other_coords.teacher_loss_change, same.teacher_loss_change,
                               rtol=1e-6, atol=1e-15)
    teacher = moved(reference, teacher_dir, eps)
    student_dir = imitation_direction(model, permuted, teacher, x_student, s["imitation"])
    teacher_dir_there = descent(model, permuted, teacher_loss, x_teacher)  # -grad L_T at the student
    slope = -per_model_dot(student_dir, teacher_dir_there)  # d/dt L_T(theta + t d_S) at t = 0
    scale = eps * per_model_dot(teacher_dir, teacher_dir)
    assert (slope <= 1e-9 * scale).all()


def test_independent_inits_have_no_guarantee():
    """Over a fixed set of draws, independent student inits give inner products of both signs."""
    n_models, sizes = 64, [6, 16, 16, 5]
    g = torch.Generator().manual_seed(0)
    reference = BatchedMLP(n_models, sizes, generator=g, dtype=torch.float64)
    independent = BatchedMLP(n_models, sizes, generator=g, dtype=torch.float64)
    x_teacher = torch.randn(32, sizes[0], generator=g, dtype=torch.float64)
    x_student = torch.rand(32, sizes[0], generator=g, dtype=torch.float64) * 2 - 1
    labels = torch.randint(sizes[-1], (n_models * 32,), generator=g)

    def teacher_loss(out):
        return F.cross_entropy(out.flatten(0, 1), labels, reduction="none").view(n_models, -1).mean(1)

    imitation = Imitation("kl", [2, 3, 4])
    params = params_of(reference)
    teacher_dir = descent(reference, params, teacher_loss, x_teacher)
    same = one_step(reference, params, params, teacher_dir, teacher_loss, x_teacher, x_student, 1e-4, imitation)
    cross = one_step(reference, params, params_of(independent), teacher_dir, teacher_loss, x_teacher,
                     x_student, 1e-4, imitation)
    share_negative = (cross.inner < 0).double().mean().item()
    assert (same.inner >= 0).all()
    assert 0.2 < share_negative < 0.8
