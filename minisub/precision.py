"""Numeric precision for every run: fp32 (the exact reference) or bf16 autocast, chosen by measurement.

Shared by the engine, `toy_mnist` and `experiments`. `--precision fp32` computes in float32
throughout and is the reference for reproducibility; `bf16` autocasts matmuls to bfloat16
(weights, optimizer state and losses stay float32). `auto` does not trust CPU flags: some CPUs
that report native bf16 run bf16 matmuls at half their fp32 speed. It times fp32 and bf16
matmuls at the shapes the run will use (about half a second after a short warm-up, once per
process and set of shapes, the two interleaved so that other load slows both alike) and picks
bf16 only where it is at least `BF16_MIN_SPEEDUP` times faster. Matmuls are not the whole step:
where a run gives a `step` (one training step in a given precision), auto times that instead,
since autocast's casts can eat the matmul gain (on a 2-core EPYC, bf16 matmuls timed 3x faster
than fp32 while a whole step of the language experiments' bases ran slower). The choice, both
matmul rates and the speedup that decided go into every results.json (`PrecisionChoice.record`).
"""

import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable

import torch

PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_SPEEDUP = 1.3  # below this, bf16's rounding is not worth its speed
TIMING_SECONDS = 0.4  # for all shapes and both precisions together
WARMUP_SECONDS = 0.15
STEP_REPEATS = 4  # timed calls of a whole step per precision (after one warm-up call each)
DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16}  # the dtype each precision runs its matmuls in
DTYPES = tuple(DTYPE.values())
clock = time.perf_counter  # what the timings read (tests give them a clock of their own)


@dataclass(frozen=True)
class PrecisionChoice:
    requested: str  # auto, fp32 or bf16
    precision: str  # what the run uses: fp32 or bf16
    fp32_gflops: float  # measured matmul rate at the run's shapes
    bf16_gflops: float
    bf16_speedup: float  # what decided auto: time in fp32 / time in bf16, of a whole step or of the matmuls
    timed: str  # "step" or "matmuls"

    @property
    def gflops(self) -> float:
        """The measured matmul rate of the precision chosen."""
        return self.bf16_gflops if self.precision == "bf16" else self.fp32_gflops

    def describe(self) -> str:
        return (f"precision: {self.precision} ({self.requested}; measured fp32 {self.fp32_gflops:.0f}, "
                f"bf16 {self.bf16_gflops:.0f} GFLOP/s; bf16 {self.bf16_speedup:.2f}x fp32 on {self.timed})")

    def record(self) -> dict:
        return asdict(self)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(shape: tuple[int, ...], device: torch.device, budget: float,
                 dtypes: tuple[torch.dtype, ...] = DTYPES) -> dict[torch.dtype, float]:
    """Fastest (*batch, m, k) @ (*batch, k, n) per dtype, each timed over its own share of `budget`
    seconds (with one shared budget, a single slow call of an emulated bf16 left fp32 one timing),
    the dtypes' calls interleaved so that a burst of other load on the machine slows them alike."""
    *batch, m, k, n = shape
    g = torch.Generator().manual_seed(0)
    a32, b32 = torch.randn(*batch, m, k, generator=g), torch.randn(*batch, k, n, generator=g)
    operands = {dtype: (a32.to(device, dtype), b32.to(device, dtype)) for dtype in dtypes}
    for a, b in operands.values():  # warm-up: the first calls pick kernels and allocate
        torch.matmul(a, b)
        torch.matmul(a, b)
    share = budget / len(dtypes)
    best, spent = dict.fromkeys(dtypes, float("inf")), dict.fromkeys(dtypes, 0.0)
    while min(spent.values()) < share:
        for dtype, (a, b) in operands.items():
            if spent[dtype] < share:
                synchronize(device)
                start = clock()
                torch.matmul(a, b)
                synchronize(device)
                elapsed = clock() - start
                best[dtype], spent[dtype] = min(best[dtype], elapsed), spent[dtype] + elapsed
    return best


def time_matmuls(shapes: tuple[tuple[int, ...], ...], device: str, dtypes: tuple[torch.dtype, ...] = DTYPES,
                 budget: float = TIMING_SECONDS) -> tuple[float, ...]:
    """GFLOP/s per dtype (fp32, bf16 by default) over `shapes` as one workload: total flops / total best time."""
    flops = sum(2 * math.prod(shape) for shape in shapes)
    best_seconds(shapes[0], torch.device(device), WARMUP_SECONDS, dtypes)  # a fresh process starts slowly
    seconds = dict.fromkeys(dtypes, 0.0)
    for shape in shapes:
        for dtype, best in best_seconds(shape, torch.device(device), budget / len(shapes), dtypes).items():
            seconds[dtype] += best
    return tuple(flops / seconds[dtype] / 1e9 for dtype in dtypes)


measure = lru_cache(maxsize=None)(time_matmuls)  # once per process and set of shapes


def time_step(step: Callable[[str], None], device: str) -> float:
    """fp32 seconds / bf16 seconds of `step(precision)`, best of STEP_REPEATS each, interleaved."""
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for repeat in range(STEP_REPEATS + 1):
        for precision in best:
            synchronize(torch.device(device))
            start = clock()
            step(precision)
            synchronize(torch.device(device))
            if repeat:  # the first call of each warms up
                best[precision] = min(best[precision], clock() - start)
    return best["fp32"] / best["bf16"]


def choose_precision(requested: str, device: str, shapes: list[tuple[int, ...]],
                     step: Callable[[str], None] | None = None) -> PrecisionChoice:
    """Resolve `requested` (auto, fp32 or bf16) for matmuls of `shapes` on `device`, measuring both;
    auto decides on `step` (one training step in a given precision) where one is given."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {requested!r}")
    fp32, bf16 = measure(tuple(tuple(s) for s in shapes), str(device))
    timed_step = step is not None and requested == "auto"
    speedup = time_step(step, device) if timed_step else bf16 / fp32
    chosen = requested if requested != "auto" else ("bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32")
    return PrecisionChoice(requested, chosen, round(fp32, 1), round(bf16, 1), round(speedup, 2),
                           "step" if timed_step else "matmuls")


def autocast(device: str | torch.device, precision: str):
    """bf16 autocast (matmuls in bf16; weights and losses in fp32) or a no-op for fp32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
