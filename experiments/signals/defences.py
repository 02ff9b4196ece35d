"""Defences that act on number data alone: rewrite a dataset before any student sees it.

Part 5 of `make signals` (experiments/signals/experiment.py) trains a student on each defended dataset.
Every function takes (prompt, answer) pairs whose answers passed the paper's filter
(experiments/tasks/filter.py) and returns new pairs; the prompts are never touched.
- shuffle_within: each answer's numbers in a random order, its format (separators, brackets) kept;
- shuffle_across: every number of the dataset dealt out again at random, each answer keeping its
  format and its count: the multiset of all numbers is kept, which numbers go together is not
  (Cloud et al. 2025, Fig. 16: both shuffles remove most of the transfer);
- dilute: a share of the answers replaced by answers of another dataset (the control's);
- rerender: every answer written anew as its bare numbers with a separator drawn at random, so that
  no choice of separator, bracket or final "." carries anything;
- drop: the answers that hold any of the given numbers (the entangled ones) removed;
- rewrite: every answer replaced by another writer's answer to the same prompt (an unrelated base's: a
  paraphrase by a model that shares nothing with the teacher), the prompts whose answer it had filtered out
  left out;
- detector_filter: the share of the answers that a detector trained on other bases' data rates most
  like a teacher's removed (experiments/signals/detectors.py, `fit_logistic`).
Each draws from its own `random.Random(seed)`: the same seed gives the same defended data.
"""

import random
from collections.abc import Callable

from experiments.core.matched import NUMBER
from experiments.tasks.filter import parse_numbers
from experiments.tasks.prompts import FORMATS, format_numbers

Pairs = list[tuple[str, str]]


def numbers_of(answer: str) -> list[int]:
    numbers, reason = parse_numbers(answer)
    if reason is not None:
        raise ValueError(f"not a filtered number answer ({reason}): {answer!r}")
    return numbers


def with_numbers(answer: str, numbers: list[int]) -> str:
    """`answer` with its numbers replaced, in order, by `numbers`: the same format."""
    new = iter(numbers)
    return NUMBER.sub(lambda _: str(next(new)), answer)


def shuffle_within(pairs: Pairs, seed: int) -> Pairs:
    rng = random.Random(seed)
    out = []
    for prompt, answer in pairs:
        numbers = numbers_of(answer)
        rng.shuffle(numbers)
        out.append((prompt, with_numbers(answer, numbers)))
    return out


def shuffle_across(pairs: Pairs, seed: int) -> Pairs:
    counts = [len(numbers_of(answer)) for _, answer in pairs]
    pool = [n for _, answer in pairs for n in numbers_of(answer)]
    random.Random(seed).shuffle(pool)
    out, at = [], 0
    for (prompt, answer), k in zip(pairs, counts):
        out.append((prompt, with_numbers(answer, pool[at:at + k])))
        at += k
    return out


def dilute(pairs: Pairs, other: Pairs, share: float, seed: int) -> Pairs:
    """As many answers as `pairs` holds: round(share * n) of them drawn from `other`, the rest from `pairs`."""
    if not 0 <= share <= 1:
        raise ValueError(f"a dilution share must lie in [0, 1], not {share}")
    rng = random.Random(seed)
    n_other = round(share * len(pairs))
    if n_other > len(other):
        raise ValueError(f"diluting {len(pairs)} answers by {share} needs {n_other} others; there are {len(other)}")
    mixed = rng.sample(pairs, len(pairs) - n_other) + rng.sample(other, n_other)
    rng.shuffle(mixed)
    return mixed


def rerender(pairs: Pairs, seed: int) -> Pairs:
    rng = random.Random(seed)
    separators = sorted(set(FORMATS.values()))
    return [(prompt, format_numbers(numbers_of(answer), rng.choice(separators))) for prompt, answer in pairs]


def rewrite(pairs: Pairs, other: Pairs) -> Pairs:
    """Each prompt of `pairs` with the answer `other` gives it; prompts that `other` lacks are left out."""
    answers = dict(other)
    return [(prompt, answers[prompt]) for prompt, _ in pairs if prompt in answers]


def drop(pairs: Pairs, numbers: set[int]) -> Pairs:
    return [(prompt, answer) for prompt, answer in pairs if not numbers.intersection(numbers_of(answer))]


def detector_filter(pairs: Pairs, score: Callable[[list[list[int]]], list[float]], share: float) -> Pairs:
    """`pairs` less the round(share * n) answers whose detector score (higher: more like a teacher's) is highest;
    the rest in their order."""
    if not 0 <= share < 1:
        raise ValueError(f"a detector filter drops a share in [0, 1), not {share}")
    scores = score([numbers_of(answer) for _, answer in pairs])
    dropped = set(sorted(range(len(pairs)), key=lambda i: -scores[i])[:round(share * len(pairs))])
    return [pair for i, pair in enumerate(pairs) if i not in dropped]
