"""Progress lines with the seconds since a run started, for every command that runs longer than a moment,
and the description of the machine that every results file records."""

import platform
import time

import torch


def machine(**extra) -> dict:
    """What ran the run: platform, processor, torch version, CPU threads (and whatever the caller adds)."""
    return {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), **extra}


class Progress:
    """Call it with a message: prints `[  12.3s] message` at once (flushed, so logs follow live)."""

    def __init__(self, prefix: str = ""):
        self.start, self.prefix = time.perf_counter(), prefix

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {self.prefix}{message}", flush=True)
