"""Progress lines with the seconds since a run started, for every command that runs longer than a moment."""

import time


class Progress:
    """Call it with a message: prints `[  12.3s] message` at once (flushed, so logs follow live)."""

    def __init__(self, prefix: str = ""):
        self.start, self.prefix = time.perf_counter(), prefix

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {self.prefix}{message}", flush=True)
