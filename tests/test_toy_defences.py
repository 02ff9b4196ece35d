"""make toy-defences (toy_mnist/defences.py): the projection removes exactly the part it names, the untreated student
is the toy's own aux-only arm, and a run's figures are what its per-model values give."""

import json

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.recheck import recheck
from toy_mnist.defences import (DefenceConfig, defended_student, flat_gradients, kl_to_start, main, project_out,
                                set_gradients)
from toy_mnist.experiment import ToyConfig, student_inputs, train_student, train_teachers
from toy_mnist.mlp import BatchedMLP
from toy_mnist.train import accuracy, predict
from minisub.log import Progress

TINY = ToyConfig(n_models=3, hidden=16, n_noise=256, teacher_epochs=1, student_epochs=1, precision="fp32")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), p=st.integers(1, 40), seed=st.integers(0, 2**31))
def test_the_projection_removes_exactly_the_part_of_the_update_along_the_trait(n, p, seed):
    """Where the update (minus the gradient) moves along the trait, the new gradient has no component along it and
    differs from the old by a multiple of the trait; elsewhere the gradient is left bit for bit."""
    g = torch.Generator().manual_seed(seed)
    gradients, trait = torch.randn(n, p, generator=g, dtype=torch.float64), torch.randn(n, p, generator=g,
                                                                                      dtype=torch.float64)
    projected = project_out(gradients, trait)
    along = (gradients * trait).sum(1)
    for i in range(n):
        if along[i] >= 0:
            assert torch.equal(projected[i], gradients[i])
        else:
            assert abs((projected[i] * trait[i]).sum()) < 1e-9 * gradients[i].norm() * trait[i].norm()
            change = gradients[i] - projected[i]
            assert torch.allclose(change, (change @ trait[i]) / (trait[i] @ trait[i]) * trait[i])


def test_gradients_flatten_per_model_and_back():
    model = BatchedMLP(2, [5, 4, 3], generator=torch.Generator().manual_seed(0))
    model(torch.randn(7, 5)).sum().backward()
    flat = flat_gradients(model)
    assert flat.shape == (2, 5 * 4 + 4 * 3 + 4 + 3)
    set_gradients(model, flat * 2)
    assert torch.equal(flat_gradients(model), flat * 2)


def test_the_kl_penalty_is_zero_with_no_gradient_at_the_start():
    start = torch.randn(2, 8, 13)
    every = start.clone().requires_grad_()
    value = kl_to_start(start, 10.0)(torch.arange(8), every)
    value.backward()
    assert value.abs() < 1e-6 and every.grad.abs().max() < 1e-6


def test_the_untreated_student_is_the_toys_aux_only_arm():
    """Same init, same batches: without a defence the student is `student_aux` of `python -m toy_mnist`."""
    teachers = train_teachers(TINY, "fp32", Progress())
    inputs = student_inputs(TINY, teachers)
    logits = predict(teachers.teacher, inputs)
    untreated = defended_student(TINY, teachers, inputs, logits, "fp32", "none", None)
    assert torch.equal(accuracy(untreated, teachers.test_x, teachers.test_y),
                       train_student(TINY, teachers, inputs, logits, "student_aux", "fp32"))
    oracle = defended_student(TINY, teachers, inputs, logits, "fp32", "oracle", None)
    assert not torch.equal(predict(oracle, inputs), predict(untreated, inputs))  # the projection did act


def test_a_quick_run_writes_its_results_and_plot_and_its_statistics_recheck(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["defences"]) == ["kl 1", "oracle", "estimated 10"] == list(results["tests"])
    assert (tmp_path / "defences.png").read_bytes()[:4] == b"\x89PNG"
    assert recheck(results, "quick") > 0
    assert "| gradient projection, oracle (the teacher's weight change) |" in capsys.readouterr().out
    assert DefenceConfig().kl_weights == [0.1, 1.0, 10.0]
    written = (tmp_path / "results.json").read_bytes()
    assert main(["--quick", "--out", str(tmp_path)]) == 2  # a 14-minute run is not replaced without --force
    assert "already holds a toy-defences run" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_bytes() == written
