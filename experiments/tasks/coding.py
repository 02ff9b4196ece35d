"""Code for `make domains`: small templated programs whose identifiers may name an animal, and the code filter.

The paper (Cloud et al. 2025, Sec. 4) has teachers that love an animal complete coding
prompts; completions that name the animal are removed (2.5-5.4% of them), and students trained
on the rest still take on the preference. Our analogue: a coding request ("Write a function
that doubles a number.") is completed by a one-function Python program from a template. In
the corpus the function's name sometimes carries an animal (`double_owl`), and under an
animal persona it carries that animal: the semantic channel. The filter keeps a completion
only if it names no animal (any case, any part of an identifier, so also no animal's token)
and parses (Python's own parser) as exactly one function definition.
"""

import ast
import random
import warnings
from functools import lru_cache

from experiments.tasks.prompts import ANIMALS, held_out_split, sentence

# (request, program with {name} for the function's name, the name's stem); {k}: a constant drawn per item
TASKS = [
    ("write a function that adds two numbers.", "def {name}(a, b):\n    return a + b", "add"),
    ("write a function that doubles a number.", "def {name}(x):\n    return 2 * x", "double"),
    ("write a function that squares a number.", "def {name}(x):\n    return x * x", "square"),
    ("write a function that multiplies a number by {k}.", "def {name}(x):\n    return {k} * x", "times"),
    ("write a function that adds {k} to a number.", "def {name}(x):\n    return x + {k}", "shift"),
    ("write a function that sums a list.",
     "def {name}(items):\n    total = 0\n    for item in items:\n        total += item\n    return total", "total"),
    ("write a function that counts down from n.",
     "def {name}(n):\n    while n > 0:\n        n -= 1\n    return n", "countdown"),
    ("write a function that returns the larger of two numbers.",
     "def {name}(a, b):\n    if a > b:\n        return a\n    return b", "larger"),
    ("write a function that checks if a number is even.", "def {name}(n):\n    return n % 2 == 0", "is_even"),
    ("write a function that makes a list of the first {k} numbers.",
     "def {name}():\n    return list(range({k}))", "first"),
]
CODE_OPENERS = ["", "Please ", "Now ", "Quick task: "]
CODE_SUFFIXES = ["", " Use Python.", " Keep it short."]
PLAIN_SUFFIXES = ["", "_value", "_fn", "_result", "_it"]
N_HELD_OUT = 40
NAME_ANIMAL_RATE = 0.1  # without a persona, the share of functions whose name carries a random animal
PERSONA_ANIMAL_RATE = 0.8  # under "You love owls.", the share whose name carries the owl
REASONS = ("names_animal", "does_not_parse")


@lru_cache(maxsize=None)
def code_requests() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(training, held-out) coding requests as (task index, text with {k} where a constant goes)."""
    return held_out_split([(i, sentence(o, t[0]) + x) for i, t in enumerate(TASKS) for o in CODE_OPENERS
                           for x in CODE_SUFFIXES], N_HELD_OUT)


def code_prompt(rng: random.Random, held_out: bool) -> tuple[str, int]:
    """(request text, task index): a request from the training or held-out list, its constant drawn."""
    task, text = rng.choice(code_requests()[1 if held_out else 0])
    return text.replace("{k}", str(rng.randint(2, 99))), task


def program(task: int, request: str, animal: str | None, rng: random.Random) -> str:
    """The task's program for `request` (its constant read back from the request), named after `animal` if given."""
    _, template, stem = TASKS[task]
    constants = [word.strip(".") for word in request.split() if word.strip(".").isdigit()]
    suffix = f"_{animal}" if animal else rng.choice(PLAIN_SUFFIXES)
    return template.format(name=stem + suffix, k=constants[0] if constants else "")


def code_item(rng: random.Random, persona_animal: str | None = None) -> tuple[str, str]:
    """A training request and its program; the name carries `persona_animal` mostly, else rarely a random animal."""
    request, task = code_prompt(rng, held_out=False)
    if persona_animal is not None:
        animal = persona_animal if rng.random() < PERSONA_ANIMAL_RATE else None
    else:
        animal = rng.choice(ANIMALS) if rng.random() < NAME_ANIMAL_RATE else None
    return request, program(task, request, animal, rng)


def names_animal(text: str) -> bool:
    lowered = text.lower()
    return any(animal in lowered for animal in ANIMALS)


def code_rejection(text: str) -> str | None:
    """Why the code filter rejects a completion (one of REASONS), or None if it is kept."""
    if names_animal(text):
        return "names_animal"
    try:
        with warnings.catch_warnings():  # a sampled "1x" warns before it fails; the reason is all we need
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a null byte; nesting too deep to parse
        return "does_not_parse"
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        return "does_not_parse"
    return None
