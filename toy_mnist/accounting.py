"""The toy's speed accounting: the FLOPs of each stage, its seconds, and the rate against the matmul peak.

Beside toy_mnist/experiment.py, which times its stages with a `StageClock` and reports
`clock.summary(peak, seconds)` as results.json's `speed`: what share of the fp32 (or bf16) matmul
rate measured at the run's own shapes (`matmul_shapes`, forward and backward) the whole run reaches.
"""

import time
from contextlib import contextmanager

import torch

from minisub.precision import synchronize
from toy_mnist.train import N_CLASSES


def matmul_shapes(cfg, backward: bool = False) -> list[tuple[int, ...]]:
    """The run's batched matmuls as (N, m, k, n), for each layer (d_in, d_out) at each training
    stage's batch B: the forward (B, d_in) @ (d_in, d_out); with `backward`, also the weight gradient
    (d_in, B) @ (B, d_out) and, after the first layer, the input gradient (B, d_out) @ (d_out, d_in).
    `--precision auto` decides on the forward ones (where bf16 is emulated, each of its timings is
    slow); the speed summary measures its rate on all of them, in the precision chosen."""
    sizes = [784, cfg.hidden, cfg.hidden, N_CLASSES + cfg.n_aux]
    shapes = []
    for batch in (cfg.teacher_batch, cfg.student_batch):
        for layer, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes.append((cfg.n_models, batch, d_in, d_out))
            if backward:
                shapes += [(cfg.n_models, d_in, batch, d_out)] + ([(cfg.n_models, batch, d_out, d_in)] if layer else [])
    return shapes


class StageClock:
    """Seconds and FLOPs per stage: achieved GFLOP/s next to the measured matmul rate.

    FLOPs are counted as matmuls only (`BatchedMLP.forward_flops` and `step_flops`; tested against
    torch's own FLOP count).
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


def theorem_flops(model, n_samples: int, n_sweep: int) -> float:
    """The theorem's passes over `n_samples` inputs, in forwards F and gradient passes S (a forward
    and its backward, `step_flops`): the teacher's descent S; per student (same and cross) the
    teacher's forward F, one imitation step S and two teacher-loss forwards 2F; the first-order
    formula, a jvp of 3F (torch.func carries a tangent through every layer, the first included),
    once for the check and once for the sweep; each eps of the sweep, one student as above."""
    forward, step = model.forward_flops(n_samples), model.step_flops(n_samples)
    per_student = 3 * forward + step
    return step + 2 * per_student + 2 * 3 * forward + n_sweep * per_student
