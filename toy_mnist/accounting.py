"""The toy's speed accounting: the FLOPs of each stage, its seconds, and the rate against the matmul peak.

Beside toy_mnist/experiment.py, which times its stages with a `StageClock` and reports
`clock.summary(peak, seconds)` as results.json's `speed`: what share of the measured fp32 (or
bf16) matmul rate at the run's own shapes (`matmul_shapes`) the whole run reaches.
"""

import time
from contextlib import contextmanager

import torch

from minisub.precision import synchronize
from toy_mnist.train import N_CLASSES


def matmul_shapes(cfg) -> list[tuple[int, ...]]:
    """The batched matmuls that dominate the run: (N, batch, d_in, d_out) of each training stage."""
    n_out = N_CLASSES + cfg.n_aux
    return [(cfg.n_models, batch, d_in, d_out) for batch in (cfg.teacher_batch, cfg.student_batch)
            for d_in, d_out in ((784, cfg.hidden), (cfg.hidden, cfg.hidden), (cfg.hidden, n_out))]


class StageClock:
    """Seconds and FLOPs per stage: achieved GFLOP/s next to the measured matmul rate.

    FLOPs are counted as matmuls only: 2 d_in d_out per layer per sample for a forward pass,
    three times that for a training step (forward, and backward to weights and inputs).
    """

    def __init__(self, device: torch.device):
        self.device, self.stages = device, {}

    @contextmanager
    def __call__(self, name: str, flops: float):
        synchronize(self.device)
        start = time.perf_counter()
        yield
        synchronize(self.device)
        seconds = time.perf_counter() - start
        self.stages[name] = {"seconds": round(seconds, 3), "gflop": round(flops / 1e9, 2),
                             "gflops": round(flops / seconds / 1e9, 1)}

    def summary(self, peak: float, total_seconds: float) -> dict:
        flops = sum(stage["gflop"] for stage in self.stages.values())
        return {"stages": self.stages, "peak_gflops": peak, "total_gflop": round(flops, 1),
                "run_gflops": round(flops / total_seconds, 1),
                "efficiency": round(flops / total_seconds / peak, 3)}


def theorem_flops(forward: float, n_sweep: int) -> float:
    """The theorem's passes, in forwards F: the teacher's descent 3F; per student (same and cross)
    one imitation step (teacher forward F, student forward and backward 3F) and two teacher-loss
    forwards 2F; the first-order formula, a jvp, 2F, once for the check and once for the sweep;
    each eps of the sweep, one imitation step 6F."""
    return (3 + 2 * 6 + 2 * 2 + n_sweep * 6) * forward
