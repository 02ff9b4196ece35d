"""Format matching: subsets of two number datasets whose answers have the same formats, in the same counts.

A teacher's kept answers can differ from the control's in how many numbers they hold and in
how they are written (separators, brackets, a final "."), and a student could learn that
instead of the trait. An answer's *format* is its text with every number replaced by "#"
("[#, #, #]"), which fixes both its length and its separators. `matched_subsets` keeps, for
every format, as many answers from each dataset as the rarer of the two holds there, drawn
at random: the two subsets then have identical format histograms, so whatever a student
still learns from the teacher's subset is not format.
"""

import random
import re
from collections import Counter

NUMBER = re.compile(r"[0-9]+")


def answer_format(answer: str) -> str:
    return NUMBER.sub("#", answer.strip())


def length_histogram(pairs: list[tuple[str, str]]) -> dict[int, int]:
    """How many answers hold 1, 2, ... numbers."""
    return dict(sorted(Counter(len(NUMBER.findall(answer)) for _, answer in pairs).items()))


def separator_histogram(pairs: list[tuple[str, str]]) -> dict[str, int]:
    """How many answers use each separator (the text between their first two numbers; "none" for one number)."""
    def separator(answer: str) -> str:
        parts = answer_format(answer).split("#")
        return repr(parts[1]) if len(parts) > 2 else "none"
    return dict(Counter(separator(answer) for _, answer in pairs).most_common())


def matched_subsets(a: list, b: list, seed: int) -> tuple[list, list]:
    """Subsets of a and b (lists of (prompt, answer)) with equal counts of every answer format."""
    rng = random.Random(seed)
    by_format_a, by_format_b = {}, {}
    for pairs, groups in ((a, by_format_a), (b, by_format_b)):
        for pair in pairs:
            groups.setdefault(answer_format(pair[1]), []).append(pair)
    keep_a, keep_b = [], []
    for fmt in sorted(by_format_a.keys() & by_format_b.keys()):
        n = min(len(by_format_a[fmt]), len(by_format_b[fmt]))
        keep_a += rng.sample(by_format_a[fmt], n)
        keep_b += rng.sample(by_format_b[fmt], n)
    return keep_a, keep_b
