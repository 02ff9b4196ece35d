"""Hypothesis profiles: `dev` (default, quick), `ci` (derandomized, more examples) and `stress`
(for hunting counterexamples by hand); no deadlines since CPU timings vary.
Select with HYPOTHESIS_PROFILE=ci."""

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=15, deadline=None)
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("stress", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


import random  # noqa: E402

import pytest  # noqa: E402


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
    from minisub.train import lm_loss
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
