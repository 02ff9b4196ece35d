"""One seed-derivation scheme for every random stream of the toy and the language experiments.

A run has one seed (`--seed`); every stream it draws from gets its own seed, derived from that
seed and the stream's name: `derive_seed(seed, "main-3")` for a base of the zoo,
`derive_seed(seed, "teachers")` for the toy's teacher batches. The derived seed is the first
8 bytes of a SHA-256 of the seed and the names, so that
- streams never share a seed by arithmetic accident (`seed * 100 + index` gives seed 1's base 0
  the seed of seed 0's base 100);
- adding a stream, or a base, changes no other stream's seed;
- the same seed and names give the same stream on every machine and Python version (unlike
  `hash()`, which Python salts per process).
Derived seeds fit in 63 bits: `torch.manual_seed`, `random.Random` and numpy accept them.
"""

import hashlib

MAX_SEED = 2**63 - 1  # the largest seed a flag takes: torch.manual_seed and numpy accept it on every platform


def derive_seed(seed: int, *names: str | int) -> int:
    """The seed of the stream `names` (one or more parts, e.g. "main-3" or "student", 2) of a run seeded `seed`."""
    text = "/".join(["minisub", str(seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
