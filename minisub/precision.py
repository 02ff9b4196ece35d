"""Numeric precision for every run: fp32 (the exact reference) or bf16 autocast, chosen by measurement.

Shared by the engine, `toy_mnist` and `experiments`. `--precision fp32` computes in float32
throughout and is the reference for reproducibility; `bf16` autocasts matmuls to bfloat16
(weights, optimizer state and losses stay float32). `auto` does not trust CPU flags: some CPUs
that report native bf16 run bf16 matmuls at half their fp32 speed. It times fp32 and bf16
matmuls at the shapes the run will use (about a tenth of a second, once per process and set of
shapes) and picks bf16 only where it is at least `BF16_MIN_SPEEDUP` times faster. The choice
and both measured rates go into every results.json (`PrecisionChoice.record`).
"""

import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch

PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_SPEEDUP = 1.3  # below this, bf16's rounding is not worth its speed
TIMING_SECONDS = 0.02  # per precision and shape


@dataclass(frozen=True)
class PrecisionChoice:
    requested: str  # auto, fp32 or bf16
    precision: str  # what the run uses: fp32 or bf16
    fp32_gflops: float  # measured matmul rate at the run's shapes
    bf16_gflops: float

    def record(self) -> dict:
        return asdict(self)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> float:
    """Best rate of (*batch, m, k) @ (*batch, k, n) over repeated calls for TIMING_SECONDS."""
    *batch, m, k, n = shape
    g = torch.Generator().manual_seed(0)
    a = torch.randn(*batch, m, k, generator=g).to(device, dtype)
    b = torch.randn(*batch, k, n, generator=g).to(device, dtype)
    torch.matmul(a, b)  # warm-up: first calls pick kernels and allocate
    best, spent = float("inf"), 0.0
    while spent < TIMING_SECONDS:
        synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
    return 2 * math.prod(shape) / best / 1e9


@lru_cache(maxsize=None)
def measure(shapes: tuple[tuple[int, ...], ...], device: str) -> tuple[float, float]:
    """(fp32, bf16) GFLOP/s summed over `shapes` as one workload: total flops / total best time."""
    dev = torch.device(device)
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        flops = [2 * math.prod(s) for s in shapes]
        seconds = [f / (matmul_gflops(s, dtype, dev) * 1e9) for f, s in zip(flops, shapes)]
        rates[dtype] = sum(flops) / sum(seconds) / 1e9
    return rates[torch.float32], rates[torch.bfloat16]


def choose_precision(requested: str, device: str, shapes: list[tuple[int, ...]]) -> PrecisionChoice:
    """Resolve `requested` (auto, fp32 or bf16) for matmuls of `shapes` on `device`, measuring both."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {requested!r}")
    fp32, bf16 = measure(tuple(tuple(s) for s in shapes), str(device))
    chosen = requested if requested != "auto" else ("bf16" if bf16 >= BF16_MIN_SPEEDUP * fp32 else "fp32")
    return PrecisionChoice(requested, chosen, round(fp32, 1), round(bf16, 1))


def autocast(device: str | torch.device, precision: str):
    """bf16 autocast (matmuls in bf16; weights and losses in fp32) or a no-op for fp32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
