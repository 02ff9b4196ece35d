"""make test-gpu (experiments/gpu_check.py): what it compares, and the whole check run with the CPU standing in for
the device, so that the command a GPU machine runs has run here first."""

import math

import pytest
import torch

from experiments.gpu_check import deviations, main, numbers


def test_without_cuda_it_says_so_in_one_line_and_passes(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == "make test-gpu: this machine has no CUDA device; nothing to check"


def test_the_comparison_reads_results_only_and_finds_every_deviation_beyond_its_tolerance():
    cpu = {"config": {"lr": 1.0}, "machine": {"threads": 2}, "timing": {"base": 3.0}, "signals_config": {"k": 2},
           "arms": {"student": {"mean": 0.5, "values": [0.4, 0.6], "ci95": math.nan}}, "flag": True}
    assert [path for path, _ in numbers(cpu)] == ["results.arms.student.mean", "results.arms.student.values[0]",
                                                  "results.arms.student.values[1]", "results.arms.student.ci95"]
    gpu = {"config": {"lr": 2.0}, "timing": {"base": 0.1},
           "arms": {"student": {"mean": 0.52, "values": [0.4, 0.9], "ci95": math.nan}}}
    misses, compared = deviations(cpu, gpu, atol=0.05, rtol=0.0)
    assert compared == 4 and misses == [("results.arms.student.values[1]", 0.6, 0.9)]
    gpu["arms"]["student"]["mean"] = math.nan  # NaN where the CPU has a number is a miss too, listed first
    assert [m[0] for m in deviations(cpu, gpu, atol=0.05, rtol=0.0)[0]] == ["results.arms.student.mean",
                                                                            "results.arms.student.values[1]"]


def test_the_whole_check_passes_with_the_cpu_standing_in_for_the_device(tmp_path, capsys):
    """The toy's --quick three times (CPU fp32, 'device' fp32 and bf16), compared, then the timing."""
    assert main(["--device", "cpu", "--experiments", "toy", "--out", str(tmp_path), "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "toy: fp32 on cpu against the CPU:" in out and "beyond" not in out
    assert "make gpt's pretraining step at its default shapes: CPU fp32" in out
    assert out.strip().endswith("make test-gpu: every check passed")
