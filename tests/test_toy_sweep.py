"""`python -m toy_mnist.sweep`: a sweep point is the single run with that setting, the parts connect,
bad sweep specs are one line; and the pieces the sweeps added to the toy (inputs, losses, inits)."""

import json
from dataclasses import replace

import pytest
import torch

from minisub.config import quick_values
from minisub.log import Progress
from toy_mnist.data import distillation_inputs
from toy_mnist.experiment import STUDENT_FIELDS, ToyConfig, run, train_teachers
from toy_mnist.mlp import BatchedMLP, student_init
from toy_mnist.sweep import SWEEPS, SweepConfig, main
from toy_mnist.train import distillation_loss

QUICK_TOY, QUICK_SWEEP = quick_values(ToyConfig), quick_values(SweepConfig)
TINY = ToyConfig(**QUICK_TOY)


@pytest.fixture(scope="module")
def quick_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    assert main(["--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_the_quick_sweep_writes_every_part_and_plot(quick_sweep):
    out, results = quick_sweep
    assert set(results["sweeps"]) == set(SWEEPS) and {"alignment", "init_matrix", "machine"} <= set(results)
    for name, sweep in results["sweeps"].items():
        assert [p["value"] for p in sweep["points"]] == QUICK_SWEEP.get(f"{name}_values", [p["value"] for p in
                                                                                           sweep["points"]])
        assert all(len(p[arm]["per_model"]) == TINY.n_models for p in sweep["points"] for arm in ("same", "cross"))
        assert (out / f"sweep_{name}.png").read_bytes()[:4] == b"\x89PNG"
    track = results["alignment"]["same"]
    assert track["step"][0] == 1 and len(track["cosine"]) == len(track["teacher_loss"]) == len(track["step"])
    assert set(results["init_matrix"]) == {"minisub", "ltn", "ltn_large_m"}
    for png in ("alignment.png", "init_matrix.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name, index", [("weight_decay", 1), ("imitation", 1), ("inputs", 3), ("optimizer", 1),
                                         ("n_aux", 0), ("epochs", 0), ("init_noise", 1)])
def test_a_sweep_point_equals_the_single_run_with_that_setting(quick_sweep, name, index):
    """Same seed, same numbers: the point's students are those `python -m toy_mnist` trains."""
    _, results = quick_sweep
    point = results["sweeps"][name]["points"][index]
    changes = {SWEEPS[name]: point["value"]}
    if name == "optimizer":
        changes["student_lr"] = results["sweep_config"]["sgd_lr"]
    if name == "init_noise":
        changes["init_controls"] = ["all=noise"]
    single = run(replace(TINY, **changes))
    same = single["init_controls"]["all=noise"] if name == "init_noise" else single["arms"]["student_aux"]
    assert point["same"]["per_model"] == same["per_model"]
    assert point["cross"]["per_model"] == single["arms"]["cross_aux"]["per_model"]


@pytest.mark.parametrize("field", STUDENT_FIELDS)
def test_fields_the_sweeps_treat_as_student_only_leave_the_teachers_alone(field):
    """Sweep points that differ in these share one set of teachers: each must not reach them."""
    changed = {"n_noise": 64, "student_epochs": 2, "student_batch": 7, "student_lr": 0.5, "student_optimizer": "sgd",
               "student_weight_decay": 0.1, "imitation": "mse", "distill_inputs": "digits",
               "init_controls": ["fc1=other"], "init_noise_std": 0.5}[field]
    a = train_teachers(TINY, "fp32", Progress())
    b = train_teachers(replace(TINY, **{field: changed}), "fp32", Progress())
    for x, y in zip(a.teacher.parameters(), b.teacher.parameters()):
        assert torch.equal(x, y)


@pytest.mark.parametrize("argv, message", [
    (["--sweeps", "depth"], "--sweeps must be one of"),
    (["--hidden-values", "0"], "--hidden-values must be at least 1"),
    (["--optimizer-values", "rmsprop"], "--optimizer-values must be one of"),
    (["--inputs-values"], "--inputs-values needs at least one value"),
    (["--epochs-values", "0"], "--epochs-values must be at least 1"),
    (["--init-noise-values", "nan"], "--init-noise-values must be a finite number"),
    (["--matrix-kinds", "shared"], "--matrix-kinds must be one of"),
])
def test_a_bad_sweep_spec_is_one_line_before_any_work(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_distillation_inputs_have_the_promised_statistics():
    g = torch.Generator().manual_seed(0)
    digits = torch.rand(50, 784, generator=g) * 2 - 1
    draw = {kind: distillation_inputs(kind, 4000, digits, torch.Generator().manual_seed(1))
            for kind in ("uniform", "gaussian", "digits", "shuffled")}
    assert draw["uniform"].min() >= -1 and draw["uniform"].max() <= 1
    assert draw["gaussian"].var().item() == pytest.approx(draw["uniform"].var().item(), rel=0.02)
    assert all(any(torch.equal(x, d) for d in digits) for x in draw["digits"][:20])
    again = distillation_inputs("digits", 4000, digits, torch.Generator().manual_seed(1))
    torch.testing.assert_close(draw["shuffled"].sort(1).values, again.sort(1).values)  # the same pixels, moved
    assert not torch.equal(draw["shuffled"], again)
    with pytest.raises(ValueError, match="unknown distillation inputs"):
        distillation_inputs("perlin", 4, digits, g)


def test_the_squared_error_imitation_on_a_hand_computed_case():
    student = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])  # (N=1, B=2, k=2)
    teacher = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    assert distillation_loss(student, teacher, "mse").item() == pytest.approx((5 + 25) / 2)
    assert distillation_loss(teacher, teacher, "kl").item() == pytest.approx(0.0, abs=1e-7)


def test_init_parts_replace_only_what_they_name():
    g = torch.Generator().manual_seed(0)
    reference = BatchedMLP(4, [784, 32, 32, 13], generator=g)
    partner = torch.tensor([1, 2, 3, 0])
    aux = student_init(reference, {"head_aux": "other"}, partner, generator=g)
    head, ref_head = aux.weights[2], reference.weights[2]
    assert torch.equal(head[..., :10], ref_head[..., :10]) and torch.equal(head[..., 10:], ref_head[partner][..., 10:])
    assert all(torch.equal(a, b) for a, b in zip(aux.weights[:2], reference.weights[:2]))
    fresh = student_init(reference, {"fc1": "random"}, partner, generator=g)
    assert not torch.equal(fresh.weights[0], reference.weights[0])
    assert fresh.weights[0].std().item() == pytest.approx(784 ** -0.5, rel=0.05)
    assert torch.equal(fresh.weights[1], reference.weights[1]) and not fresh.biases[0].any()
