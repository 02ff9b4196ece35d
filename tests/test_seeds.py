"""The one seed-derivation scheme (minisub/seeds.py): distinct streams get distinct seeds, fixed across runs."""

import subprocess
import sys

from hypothesis import given, strategies as st

from experiments.core.zoo import ExperimentConfig
from minisub.seeds import derive_seed


def zoo_seeds(cfg: ExperimentConfig) -> list[int]:
    return [cfg.main_base(i).seed for i in range(cfg.bases)] + [b.seed for b in cfg.fork_pair()] + [
        cfg.fork_pair()[0].parent.seed, cfg.other_base().seed, cfg.corpus().seed]


def test_zoo_members_of_many_runs_never_share_a_seed():
    """Guards against `seed * 100 + index`, under which run 1's main-0 was run 0's main-100 and, with 64
    bases, main-50 was the fork's parent."""
    seeds = [s for run in range(20) for s in zoo_seeds(ExperimentConfig(seed=run, bases=64))]
    assert len(set(seeds)) == len(seeds)


@given(st.integers(0, 2**31), st.text(max_size=12), st.text(max_size=12))
def test_a_seed_is_a_function_of_the_run_seed_and_the_stream_name(seed, a, b):
    assert derive_seed(seed, a) == derive_seed(seed, a)
    assert 0 <= derive_seed(seed, a) < 2**63
    assert (derive_seed(seed, a) == derive_seed(seed, b)) == (a == b)
    assert derive_seed(seed, a) != derive_seed(seed + 1, a)


def test_the_same_seed_in_another_process():
    """Not Python's salted hash(): another interpreter derives the same value."""
    code = "from minisub.seeds import derive_seed; print(derive_seed(7, 'main-3'))"
    assert int(subprocess.check_output([sys.executable, "-c", code], text=True)) == derive_seed(7, "main-3")
