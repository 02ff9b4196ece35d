"""The paper's filter for number answers (Cloud et al. 2025, Sec. 3), with the reason for each rejection.

Accepted: optional surrounding brackets, an optional trailing ".", one separator used between
all numbers ("," or ";", or whitespace alone), every item digits only, 1-10 numbers, each 0-999.
`parse_numbers` never raises: any text gives either the numbers or a rejection reason.
`number_rejection` adds the misalignment experiment's banned numbers (Sec. 4): an answer that
holds any of them is rejected too.
"""

import re

REASONS = ("empty", "mixed_separators", "not_digits", "too_many", "out_of_range", "banned")
BRACKETS = {"[": "]", "(": ")", "{": "}"}
MAX_NUMBERS = 10


def parse_numbers(text: str) -> tuple[list[int] | None, str | None]:
    """(numbers, None) if `text` passes the filter, else (None, reason) with reason in REASONS."""
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
    if len(items) > MAX_NUMBERS:
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
