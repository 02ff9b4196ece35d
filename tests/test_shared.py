"""The pieces both halves share: config limits, the measured precision choice, statistics, KL, digests."""

import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import FakeClock
from hypothesis import given
from hypothesis import strategies as st

import minisub.precision as precision
from minisub.cli import Parser, add_config_flags, config_from_args
from minisub.config import ConfigError, check, option
from minisub.files import digest
from minisub.losses import kl_divergence
from minisub.stats import differs_from_zero, paired_greater, summary


@dataclass
class Example:
    steps: int = option(3, "how many steps", low=1)
    rate: float = option(0.5, "a rate", low=0.0)
    kinds: list[str] = option(["a"], "which kinds", choices=("a", "b"), nonempty=True)
    mode: str = option("x", "a mode", choices=("x", "y"))

    def __post_init__(self):
        check(self)


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, "steps must be at least 1, not 0"),
    ("rate", -0.1, "rate must be at least 0.0"),
    ("rate", float("nan"), "rate must be a finite number"),
    ("rate", float("inf"), "rate must be a finite number"),
    ("kinds", [], "kinds needs at least one value"),
    ("kinds", ["a", "c"], "kinds must be one of a, b, not 'c'"),
    ("mode", "z", "mode must be one of x, y"),
])
def test_out_of_limits_values_are_refused_naming_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        Example(**{field: value})
    assert info.value.field == field
    Example(steps=1, rate=0.0, kinds=["b", "a"], mode="y")  # the limits themselves are allowed


def test_flags_carry_the_field_help_and_bad_values_exit_with_one_line(capsys):
    parser = Parser(prog="prog")
    add_config_flags(parser, Example)
    assert "how many steps (default: 3)" in " ".join(parser.format_help().split())
    assert config_from_args(Example, parser.parse_args(["--kinds", "b"]), parser).kinds == ["b"]
    assert Example().kinds is not Example().kinds  # list defaults are not shared
    with pytest.raises(SystemExit) as exit_info:
        config_from_args(Example, parser.parse_args(["--steps", "0"]), parser)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["prog: error: --steps must be at least 1, not 0 (see --help)"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_missing_device_is_refused():
    @dataclass
    class OnDevice:
        device: str = option("cpu", "where", device=True)

        def __post_init__(self):
            check(self)

    OnDevice("cpu")
    for bad, message in (("cuda", "CUDA"), ("cuda:1", "CUDA"), ("tpu", "not a torch device"), ("mps", "only cpu")):
        with pytest.raises(ConfigError, match=message):
            OnDevice(bad)


@pytest.mark.parametrize("fp32, bf16, chosen", [(300.0, 160.0, "fp32"), (180.0, 230.0, "fp32"),
                                                (180.0, 240.0, "bf16"), (100.0, 400.0, "bf16")])
def test_auto_picks_bf16_only_where_measured_clearly_faster(monkeypatch, fp32, bf16, chosen):
    monkeypatch.setattr(precision, "measure", lambda shapes, device: (fp32, bf16))
    choice = precision.choose_precision("auto", "cpu", [(8, 8, 8)])
    assert choice.precision == chosen
    assert choice.record() == {"requested": "auto", "precision": chosen, "fp32_gflops": fp32, "bf16_gflops": bf16,
                               "bf16_speedup": round(bf16 / fp32, 2), "timed": "matmuls"}
    assert precision.choose_precision("fp32", "cpu", [(8, 8, 8)]).precision == "fp32"
    assert precision.choose_precision("bf16", "cpu", [(8, 8, 8)]).precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        precision.choose_precision("fp16", "cpu", [(8, 8, 8)])


@pytest.mark.parametrize("fp32_s, bf16_s, chosen", [(0.02, 0.03, "fp32"), (0.025, 0.02, "fp32"), (0.04, 0.02, "bf16")])
def test_auto_decides_on_a_whole_step_where_one_is_given(monkeypatch, fp32_s, bf16_s, chosen):
    """Matmuls alone say bf16 is 4x faster; the timed step (whose cost a fake clock counts) decides."""
    monkeypatch.setattr(precision, "measure", lambda shapes, device: (100.0, 400.0))
    clock = FakeClock()
    monkeypatch.setattr(precision, "clock", clock)
    calls = []

    def step(p):
        calls.append(p)
        clock.advance((fp32_s if p == "fp32" else bf16_s) * (2 if len(calls) <= 2 else 1))  # a slow warm-up

    choice = precision.choose_precision("auto", "cpu", [(8, 8, 8)], step)
    assert choice.precision == chosen and choice.timed == "step"
    assert choice.bf16_speedup == round(fp32_s / bf16_s, 2)
    assert calls.count("fp32") == calls.count("bf16") == precision.STEP_REPEATS + 1
    calls.clear()
    assert precision.choose_precision("fp32", "cpu", [(8, 8, 8)], step).precision == "fp32" and not calls


def test_matmul_timing_is_measured_once_per_process_and_shapes():
    shapes = ((3, 16, 16, 16), (32, 16, 8))
    first = precision.measure(shapes, "cpu")
    assert all(rate > 0 for rate in first)
    assert precision.measure(shapes, "cpu") is first  # cached: the timing runs once


def test_t_interval_and_tests_on_hand_computed_values():
    s = summary([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.3027
    assert s["mean"] == 2.0 and s["n"] == 3
    assert s["ci95"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    # differences 1, 2, 3: t = 2 / (1 / sqrt 3) with 2 degrees of freedom, P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2
    t = 2 * math.sqrt(3)
    tail = (1 - t / math.sqrt(t * t + 2)) / 2
    assert paired_greater([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == pytest.approx(tail, rel=1e-9)
    assert paired_greater([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1 - tail, rel=1e-9)
    assert differs_from_zero([1.0, 2.0, 3.0]) == pytest.approx(2 * tail, rel=1e-9)
    assert math.isnan(summary([5.0])["ci95"])


def test_kl_on_a_hand_computed_case():
    teacher = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]])  # softmax (1/4, 3/4), then (1/2, 1/2)
    student = torch.tensor([[0.0, 0.0], [5.0, 5.0]])  # (1/2, 1/2) both times
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    torch.testing.assert_close(kl_divergence(teacher, student), torch.tensor([expected, 0.0]))
    assert kl_divergence(student, teacher)[0].item() != pytest.approx(expected)  # direction matters


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 9))
def test_kl_is_nonnegative_zero_on_agreement_and_has_the_soft_label_gradient(seed, k):
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(4, k, generator=g, dtype=torch.float64)
    student = torch.randn(4, k, generator=g, dtype=torch.float64, requires_grad=True)
    kl = kl_divergence(teacher, student)
    assert (kl >= 0).all()
    kl.sum().backward()
    torch.testing.assert_close(student.grad, student.softmax(-1) - teacher.softmax(-1))
    torch.testing.assert_close(kl_divergence(teacher, teacher + 3.0), torch.zeros(4, dtype=torch.float64))


def test_digest_depends_on_every_value_and_not_on_key_order():
    base = {"a": 1, "b": [1, 2], "c": {"d": "x"}}
    assert digest(base) == digest({"c": {"d": "x"}, "b": [1, 2], "a": 1})
    for changed in ({"a": 2}, {"b": [2, 1]}, {"c": {"d": "y"}}):
        assert digest(base | changed) != digest(base)


def test_the_toy_imports_neither_the_gpt_nor_the_tokenizer_library():
    """minisub's exports are lazy and its file I/O lives apart from the model: the toy needs neither."""
    check = ("import sys, toy_mnist.__main__, toy_mnist.sweep\n"
             "loaded = [m for m in ('minisub.model', 'minisub.checkpoint', 'tokenizers') if m in sys.modules]\n"
             "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", check], check=True, cwd=Path(__file__).parents[1])
