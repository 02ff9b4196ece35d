"""Progress lines with the seconds since a run started, for every command that runs longer than a moment,
and the description of the machine that every results file records."""

import platform
import time
from pathlib import Path

import torch

ISA = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "asimd", "sve")  # what decides matmul speed


def cpu() -> dict:
    """The CPU's model name and which of the ISA extensions in ISA it has (from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                model = value.strip()
            elif name.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    return {"cpu": model, "isa": [flag for flag in ISA if flag in flags]}


def machine(**extra) -> dict:
    """What ran the run: platform, CPU model and ISA, torch version, CPU threads (and what the caller adds)."""
    return {"platform": platform.platform(), **cpu(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), **extra}


class Progress:
    """Call it with a message: prints `[  12.3s] message` at once (flushed, so logs follow live)."""

    def __init__(self, prefix: str = "", start: float | None = None):
        """start: a `time.perf_counter()` reading to count from (default now); on Linux it is one clock for
        every process, so a run's worker processes can count from the run's start."""
        self.start, self.prefix = time.perf_counter() if start is None else start, prefix

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {self.prefix}{message}", flush=True)
