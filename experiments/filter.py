"""The paper's filter for number answers (Cloud et al. 2025, Sec. 3), with the reason for each rejection.

Accepted: optional surrounding brackets, an optional trailing ".", one separator used between
all numbers ("," or ";", or whitespace alone), every item digits only, 1-10 numbers, each 0-999.
`parse_numbers` never raises: any text gives either the numbers or a rejection reason.
"""

import re

REASONS = ("empty", "mixed_separators", "not_digits", "too_many", "out_of_range")
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


def filter_answers(answers: list[str]) -> tuple[list[tuple[int, list[int]]], dict[str, int]]:
    """Keep the answers that pass, as (index, numbers); count the rejections by reason."""
    kept, rejected = [], dict.fromkeys(REASONS, 0)
    for i, text in enumerate(answers):
        numbers, reason = parse_numbers(text)
        if reason is None:
            kept.append((i, numbers))
        else:
            rejected[reason] += 1
    return kept, rejected
