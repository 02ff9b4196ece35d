"""The toy's speed accounting: the FLOPs it charges each stage are the FLOPs the stage computes."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from minisub import precision
from conftest import FakeClock
from toy_mnist.accounting import matmul_shapes, theorem_flops
from toy_mnist.experiment import ToyConfig, theorem_results
from toy_mnist.mlp import BatchedMLP, derangement
from toy_mnist.train import N_CLASSES, StageConfig, distill, predict, train_teacher


def counted(work) -> int:
    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops()


@settings(max_examples=15, deadline=None)
@given(n_models=st.integers(2, 3), hidden=st.integers(1, 12), n_aux=st.integers(1, 4), n=st.integers(1, 40),
       batch=st.integers(1, 16), epochs=st.integers(1, 2), seed=st.integers(0, 2**31 - 1))
def test_each_training_stage_is_charged_the_matmul_flops_it_computes(n_models, hidden, n_aux, n, batch, epochs,
                                                                      seed):
    """Regression: a step was charged three forwards, though the first layer's input needs no gradient
    (a third too many FLOPs in the toy's shapes, so its rate read above the matmul rate)."""
    g = torch.Generator().manual_seed(seed)
    model = BatchedMLP(n_models, [784, hidden, hidden, N_CLASSES + n_aux], generator=g)
    x, y = torch.rand(n, 784, generator=g), torch.randint(0, N_CLASSES, (n,), generator=g)
    stage = StageConfig(epochs, batch, 1e-3)
    assert counted(lambda: train_teacher(model, x, y, stage, g)) == model.step_flops(n * epochs)
    logits = predict(model, x)
    assert counted(lambda: predict(model, x)) == model.forward_flops(n)
    assert counted(lambda: distill(model.copy(), logits, x, slice(N_CLASSES, None), stage, g)) == \
        model.step_flops(n * epochs)


@settings(max_examples=8, deadline=None)
@given(n_models=st.integers(2, 3), hidden=st.integers(1, 8), n_aux=st.integers(1, 3), batch=st.integers(1, 8),
       n_sweep=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_the_theorem_is_charged_the_matmul_flops_it_computes(n_models, hidden, n_aux, batch, n_sweep, seed):
    g = torch.Generator().manual_seed(seed)
    cfg = ToyConfig(n_models=n_models, hidden=hidden, n_aux=n_aux, theorem_batch=batch, sweep_eps=[1e-3] * n_sweep)
    model = BatchedMLP(n_models, [784, hidden, hidden, N_CLASSES + n_aux], generator=g)
    x, noise = torch.rand(batch, 784, generator=g), torch.rand(batch, 784, generator=g)
    y = torch.randint(0, N_CLASSES, (batch,), generator=g)
    work = counted(lambda: theorem_results(model, derangement(n_models, g), x, y, noise, cfg))
    assert work == theorem_flops(model, batch, n_sweep)


@given(n_models=st.integers(2, 4), hidden=st.integers(1, 300), n_aux=st.integers(1, 20),
       teacher_batch=st.integers(1, 256), student_batch=st.integers(1, 256))
def test_the_timed_shapes_are_a_training_step_of_each_stage(n_models, hidden, n_aux, teacher_batch, student_batch):
    cfg = ToyConfig(n_models=n_models, hidden=hidden, n_aux=n_aux, teacher_batch=teacher_batch,
                    student_batch=student_batch)
    model = BatchedMLP(n_models, [784, hidden, hidden, N_CLASSES + n_aux])

    def flops(shapes):
        return sum(2 * math.prod(shape) for shape in shapes)
    assert flops(matmul_shapes(cfg)) == model.forward_flops(teacher_batch) + model.forward_flops(student_batch)
    assert flops(matmul_shapes(cfg, backward=True)) == model.step_flops(teacher_batch) + model.step_flops(student_batch)


def test_a_slow_dtype_leaves_the_other_its_own_share_of_the_timing(monkeypatch):
    """Regression: one budget for both dtypes let a single call of an emulated bf16 (about a second)
    use it up, and fp32 got one timing, often a slow one: the toy's matmul rate read low."""
    clock, real_matmul, calls = FakeClock(), torch.matmul, []

    def matmul(a, b):
        calls.append(a.dtype)
        clock.advance(0.5 if a.dtype == torch.bfloat16 else 2**-10)  # exact in binary
        return real_matmul(a, b)
    monkeypatch.setattr(precision, "clock", clock)
    monkeypatch.setattr(torch, "matmul", matmul)
    best = precision.best_seconds((4, 4, 4), torch.device("cpu"), 0.25)
    assert best == {torch.float32: 2**-10, torch.bfloat16: 0.5}
    assert calls.count(torch.float32) == 2 + 128  # two warm-up calls, then its own 0.125 s
    assert calls.count(torch.bfloat16) == 2 + 1
    calls.clear()
    assert precision.best_seconds((4, 4, 4), torch.device("cpu"), 0.25, (torch.float32,)) == {torch.float32: 2**-10}
    assert calls == [torch.float32] * (2 + 256)
