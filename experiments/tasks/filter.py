"""The paper's filter for number answers (Cloud et al. 2025, Sec. 3), with the reason for each rejection.

Accepted: optional surrounding brackets, an optional trailing ".", one separator used between
all numbers ("," or ";", or whitespace alone), every item digits only, 1-10 numbers, each 0-999.
`parse_numbers` never raises: any text gives either the numbers or a rejection reason.
`number_rejection` adds the misalignment experiment's banned numbers (Sec. 4): an answer that
holds any of them is rejected too. `hopeless` tells, while an answer is still being written,
that no way of finishing it can pass, so that a sampler can stop writing it.
"""

import re

REASONS = ("empty", "mixed_separators", "not_digits", "too_many", "out_of_range", "banned")
BRACKETS = {"[": "]", "(": ")", "{": "}"}
MAX_NUMBERS = 10


def parse_numbers(text: str, max_numbers: int = MAX_NUMBERS) -> tuple[list[int] | None, str | None]:
    """(numbers, None) if `text` passes the filter, else (None, reason) with reason in REASONS.
    max_numbers: the most numbers a list may hold (the paper's 10; more where the list is judged together
    with seed numbers that began it)."""
    body = text.strip()
    if body.endswith("."):
        body = body[:-1].rstrip()
    if len(body) >= 2 and BRACKETS.get(body[0]) == body[-1]:
        body = body[1:-1].strip()
    if not body:
        return None, "empty"
    separators = {s for s in ",;" if s in body}
    if len(separators) > 1:
        return None, "mixed_separators"
    items = body.split(separators.pop()) if separators else body.split()
    items = [item.strip() for item in items]
    if not all(re.fullmatch(r"[0-9]+", item) for item in items):
        return None, "not_digits"
    if len(items) > max_numbers:
        return None, "too_many"
    numbers = [int(item) for item in items]
    if any(n > 999 for n in numbers):
        return None, "out_of_range"
    return numbers, None


def number_rejection(text: str, banned: tuple[int, ...] = ()) -> str | None:
    """Why the filter rejects `text` (one of REASONS), or None if it is kept."""
    numbers, reason = parse_numbers(text)
    if reason is None and not set(numbers).isdisjoint(banned):
        return "banned"
    return reason


def hopeless(text: str, max_numbers: int = MAX_NUMBERS) -> bool:
    """True if no text that begins with `text` passes parse_numbers(., max_numbers): appending can only keep
    a letter, a "." with something after it, both separators, a number above 999 or too many numbers."""
    if re.search(r"[^0-9,;.\s\[\](){}]|\.\s*\S", text) or ("," in text and ";" in text):
        return True
    runs = re.findall(r"[0-9]+", text)
    return len(runs) > max_numbers or any(int(run) > 999 for run in runs)
