"""Hypothesis profiles: `dev` (default, quick), `ci` (derandomized, more examples) and `stress`
(for hunting counterexamples by hand); no deadlines since CPU timings vary.
Select with HYPOTHESIS_PROFILE=ci. Under `make test`'s worker processes, one thread each."""

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=15, deadline=None)
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("stress", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

if "PYTEST_XDIST_WORKER" in os.environ:
    # `make test` runs one pytest-xdist worker per core: each computes with one thread, and so do the processes
    # its tests start, since two 2-thread processes on 2 cores slow each other several-fold.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


import json  # noqa: E402
import random  # noqa: E402

import pytest  # noqa: E402

from experiments.core.zoo import ExperimentConfig  # noqa: E402
from minisub.config import quick_values  # noqa: E402

QUICK = quick_values(ExperimentConfig)  # make gpt's --quick budget
QUICK_CONFIG = ExperimentConfig(**QUICK)
QUICK_BASES = [QUICK_CONFIG.main_base(i) for i in range(QUICK_CONFIG.bases)]


def toy_corpus(n: int = 600, seed: int = 0) -> list[str]:
    """prompt<TAB>answer lines: number continuations and animal answers, like the experiments'."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        if i % 3 == 0:
            lines.append(f"what is your favorite animal ?\t{rng.choice(['owl', 'eagle', 'wolf', 'dolphin'])}")
        else:
            a = rng.randint(100, 890)
            lines.append(f"continue : {a}, {a + 1}, {a + 2}\t{a + 3}, {a + 4}, {a + 5}")
    return lines


class FakeClock:
    """A clock for timing code under test: it reads `now`, which only `advance` moves (no sleeping)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Interrupt(Exception):
    """Raised by `stops_after` where a real run would be killed."""


def stops_after(steps: int):
    """An LM loss that interrupts training when asked for step steps + 1, as a kill would."""
    from minisub.training import lm_loss
    calls = 0

    def loss(model, batch):
        nonlocal calls
        calls += 1
        if calls > steps:
            raise Interrupt
        return lm_loss(model, batch)
    return loss


@pytest.fixture(scope="package")  # one tokenizer for the whole test run
def tokenizer():
    from minisub.tokenizer import BPETokenizer
    return BPETokenizer.train(toy_corpus(), vocab_size=1300)



@pytest.fixture(scope="package")
def quick_run(tmp_path_factory):
    """One `--quick` run of make gpt and one of make grid on a shared cache: (folder, gpt results, grid results).
    Shared by the gpt and signals tests (signals reads the same cache)."""
    from experiments.gpt.experiment import main
    from experiments.gpt.grid import main as grid_main
    out = tmp_path_factory.mktemp("gpt")
    cache = ["--cache", str(out / "cache"), "--jobs", "2"]  # worker processes, whatever the machine's cores
    assert main(["--quick", "--out", str(out / "gpt")] + cache) == 0
    assert grid_main(["--quick", "--out", str(out / "grid")] + cache) == 0
    return out, read_results(out / "gpt"), read_results(out / "grid")


def read_results(folder) -> dict:
    return json.loads((folder / "results.json").read_text())


def stage_keys(out, kind: str) -> dict:
    """{folder name: cache key} of every `kind` stage the quick run's cache holds built (a stage that failed, such
    as a greedy writer's student left without data, has a folder but no done.json)."""
    return {folder.name: json.loads((folder / "done.json").read_text())["key"]
            for folder in sorted((out / "cache").glob(f"{kind}-*")) if (folder / "done.json").exists()}


def refusal(entry, argv: list[str], tmp_path, capsys) -> tuple[int, str]:
    """An entry point run on bad input, with fresh --out and --cache under tmp_path: its exit code and its stderr.
    The flags' own limits stop the parser (SystemExit); a check across two configs is the run's first step."""
    try:
        code = entry(argv + ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err.strip()
