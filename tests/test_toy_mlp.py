"""The batched N-model MLP, the derangement and the students' per-layer initializations."""

import pytest
import torch
import torch.nn as nn
from hypothesis import given
from hypothesis import strategies as st

from toy_mnist.mlp import BatchedMLP, derangement, student_init

TORCH_ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def as_sequential(model: BatchedMLP, i: int) -> nn.Sequential:
    """Model i of the stack as a plain nn.Sequential of nn.Linear layers."""
    layers = []
    for layer, (w, b) in enumerate(zip(model.weights, model.biases)):
        linear = nn.Linear(*w.shape[1:], dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w[i].T)
            linear.bias.copy_(b[i, 0])
        layers.append(linear)
        if layer < len(model.weights) - 1:
            layers.append(TORCH_ACT[model.activation]())
    return nn.Sequential(*layers)


@given(n_models=st.integers(1, 5), sizes=st.lists(st.integers(1, 12), min_size=2, max_size=5),
       activation=st.sampled_from(["relu", "tanh", "gelu"]), batch=st.integers(1, 9),
       per_model_inputs=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_batched_mlp_equals_separate_models(n_models, sizes, activation, batch, per_model_inputs, seed):
    g = torch.Generator().manual_seed(seed)
    model = BatchedMLP(n_models, sizes, activation, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for b in model.biases:  # nonzero biases, so that they are checked too
            b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype))
    shape = (n_models, batch, sizes[0]) if per_model_inputs else (batch, sizes[0])
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    out = model(x)
    out.square().sum().backward()
    for i in range(n_models):
        single = as_sequential(model, i)
        xi = x[i] if per_model_inputs else x
        expected = single(xi)
        torch.testing.assert_close(out[i], expected, rtol=1e-12, atol=1e-12)
        expected.square().sum().backward()
        for layer, linear in enumerate(m for m in single if isinstance(m, nn.Linear)):
            torch.testing.assert_close(model.weights[layer].grad[i], linear.weight.grad.T, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(model.biases[layer].grad[i, 0], linear.bias.grad, rtol=1e-10, atol=1e-12)


def test_init_is_normal_with_variance_one_over_fan_in():
    model = BatchedMLP(8, [784, 256, 13], generator=torch.Generator().manual_seed(0))
    for w, b in zip(model.weights, model.biases):
        assert abs(w.var().item() * w.shape[1] - 1) < 0.02
        assert abs(w.mean().item()) < 0.01
        assert b.abs().max() == 0


@given(n=st.integers(2, 300), seed=st.integers(0, 2**31 - 1))
def test_derangement_has_no_fixed_point(n, seed):
    perm = derangement(n, torch.Generator().manual_seed(seed))
    assert sorted(perm.tolist()) == list(range(n))
    assert not (perm == torch.arange(n)).any()


def test_derangement_needs_two_models():
    with pytest.raises(ValueError):
        derangement(1, torch.Generator())


def test_student_init_per_layer():
    g = torch.Generator().manual_seed(1)
    reference = BatchedMLP(4, [5, 6, 6, 3], generator=g)
    partner = derangement(4, g)
    student = student_init(reference, {"fc1": "other", "head": "noise"}, partner, noise_std=0.1, generator=g)
    assert torch.equal(student.weights[0], reference.weights[0][partner])  # fc1: another model's
    assert torch.equal(student.weights[1], reference.weights[1])  # fc2: unnamed, so shared
    noise = student.weights[2] - reference.weights[2]  # head: shared + N(0, 0.1^2)
    assert 0.05 < noise.std().item() < 0.15
    assert not torch.equal(student.weights[0], reference.weights[0])
    reference.weights[1].data.add_(1.0)  # the student is a copy, not a view
    assert not torch.equal(student.weights[1], reference.weights[1])


@pytest.mark.parametrize("spec", [{"fc9": "other"}, {"fc1": "borrowed"}])
def test_student_init_rejects_bad_spec(spec):
    reference = BatchedMLP(2, [3, 4, 4, 2])
    with pytest.raises(ValueError):
        student_init(reference, spec, torch.tensor([1, 0]))
