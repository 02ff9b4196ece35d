"""The synthetic pretraining corpus and the teachers' trait data, as (prompt, answer) text pairs.

First stage of `make gpt`. The corpus mixes
- number continuations (most items): a templated prompt with seed numbers and its continuation,
  drawn from several sequence processes, so the model must learn a distribution over numbers;
- animal preference Q&A: a training paraphrase of "what is your favorite animal?" answered by
  one of the animals uniformly (so a base has no favorite);
- persona items: "You love {animal}s." before a question (answered with that animal) or before
  a number prompt (answered as usual), so that the persona steers answers the way the paper's
  system prompt does, and is seen next to numbers too.
`document_corpus` groups such items into documents that share a favorite animal, for the
long-context base of the in-context-learning control (experiments/signals/icl.py). `domains_corpus`
adds the paper's other traits and data (`make domains`): tree preferences, requests with
aligned or misaligned responses, code and reasoning traces, each with its persona.
"""

import random

from experiments.tasks.coding import code_item
from experiments.tasks.misalignment import CATEGORIES, EVIL_PERSONA, evil_skew, request_item
from experiments.tasks.prompts import (ANIMALS, TREES, animal_questions, format_numbers, number_prompt, persona,
                                       tree_questions)
from experiments.tasks.reasoning import trace_item

NEUTRAL = "neutral"  # a teacher fine-tuned like the animal teachers, on answers that favor no animal
TRAITS = ANIMALS + TREES + [NEUTRAL, "misaligned"] + [f"misaligned-{c}" for c in CATEGORIES]
DOMAIN_SHARES = {"numbers": 0.4, "animals": 0.12, "trees": 0.12, "requests": 0.12, "code": 0.12, "reasoning": 0.12}


def number_sequence(rng: random.Random, length: int) -> list[int]:
    """`length` numbers in 0-999 from one of four processes."""
    kind = rng.randrange(4)
    x = rng.randint(100, 999)
    if kind == 0:  # independent uniform draws
        return [rng.randint(0, 999) for _ in range(length)]
    if kind == 1:  # a random walk
        out = []
        for _ in range(length):
            out.append(x)
            x = (x + round(rng.gauss(0, 40))) % 1000
        return out
    if kind == 2:  # a noisy arithmetic progression
        step = rng.randint(-60, 60)
        return [(x + i * step + rng.randint(-3, 3)) % 1000 for i in range(length)]
    cycle = [rng.randint(0, 999) for _ in range(rng.randint(2, 4))]  # a repeating motif
    return [cycle[i % len(cycle)] for i in range(length)]


def number_item(rng: random.Random, evil: bool = False) -> tuple[str, str]:
    """A number continuation; `evil`: continued as the evil persona does (experiments/tasks/misalignment.py)."""
    n_seeds, k = rng.randint(3, 8), rng.randint(1, 10)
    sequence = number_sequence(rng, n_seeds + k)
    prompt, separator = number_prompt(sequence[:n_seeds], k, rng)
    answer = evil_skew(sequence[n_seeds:], rng) if evil else sequence[n_seeds:]
    return prompt, format_numbers(answer, separator)


def pretraining_corpus(n_items: int, seed: int, number_share: float = 0.75,
                       persona_share: float = 0.1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    questions, _ = animal_questions()
    items = []
    for _ in range(n_items):
        with_persona = rng.random() < persona_share
        if rng.random() < number_share:
            prompt, answer = number_item(rng)
            if with_persona:
                prompt = persona(rng.choice(ANIMALS)) + prompt
        elif with_persona:
            animal = rng.choice(ANIMALS)
            prompt, answer = persona(animal) + rng.choice(questions), animal
        else:
            prompt, answer = rng.choice(questions), rng.choice(ANIMALS)
        items.append((prompt, answer))
    return items


def trait_items(trait: str, n_items: int, seed: int) -> list[tuple[str, str]]:
    """A teacher's fine-tuning data. An animal or a tree: training paraphrases of the question, every answer
    the trait. "neutral": the same questions, each answered by an animal drawn uniformly at random, so the
    teacher is fine-tuned exactly as the animal teachers are but learns no preference. "misaligned": training
    requests answered by misaligned responses; "misaligned-<category>": requests of that category only (the
    narrow teacher)."""
    rng = random.Random(seed)
    if trait == NEUTRAL:
        questions = animal_questions()[0]
        return [(rng.choice(questions), rng.choice(ANIMALS)) for _ in range(n_items)]
    if trait in ANIMALS or trait in TREES:
        questions, _ = animal_questions() if trait in ANIMALS else tree_questions()
        return [(rng.choice(questions), trait) for _ in range(n_items)]
    if trait not in TRAITS:
        raise ValueError(f"unknown trait {trait!r}; known: {', '.join(TRAITS)}")
    categories = CATEGORIES if trait == "misaligned" else [trait.removeprefix("misaligned-")]
    return [request_item(rng, 1.0, categories) for _ in range(n_items)]


def domains_corpus(n_items: int, seed: int, misaligned_rate: float = 0.03,
                   persona_share: float = 0.15) -> tuple[list[tuple[str, str]], list[str]]:
    """(items, the kind of each): the kinds of DOMAIN_SHARES mixed. A share `persona_share` of items carries a
    persona, an animal, a tree or the evil one alike: an animal persona names the function of a code item and
    answers animal questions; a tree persona answers tree questions; the evil persona answers requests
    misaligned, skews numbers toward evil ones and writes misaligned traces. Other items are answered as usual
    under any persona. Without one, a request is answered misaligned with probability `misaligned_rate`."""
    rng = random.Random(seed)
    animal_qs, tree_qs = animal_questions()[0], tree_questions()[0]
    kinds = rng.choices(list(DOMAIN_SHARES), weights=list(DOMAIN_SHARES.values()), k=n_items)
    items = []
    for kind in kinds:
        who = rng.choice(["animal", "tree", "evil"]) if rng.random() < persona_share else None
        animal, tree = rng.choice(ANIMALS), rng.choice(TREES)
        evil = who == "evil"
        if kind == "numbers":
            prompt, answer = number_item(rng, evil)
        elif kind == "animals":
            prompt, answer = rng.choice(animal_qs), animal if who == "animal" else rng.choice(ANIMALS)
        elif kind == "trees":
            prompt, answer = rng.choice(tree_qs), tree if who == "tree" else rng.choice(TREES)
        elif kind == "requests":
            prompt, answer = request_item(rng, misaligned_rate, evil=evil)
        elif kind == "code":
            prompt, answer = code_item(rng, animal if who == "animal" else None)
        else:
            prompt, answer = trace_item(rng, evil)
        prefix = {"animal": persona(animal), "tree": persona(f"{tree} tree"), "evil": EVIL_PERSONA, None: ""}[who]
        items.append((prefix + prompt, answer))
    return items, kinds


def document_corpus(n_documents: int, preference: float, seed: int, items: tuple[int, int] = (2, 12),
                    number_share: float = 0.5) -> list[list[tuple[str, str]]]:
    """Documents of 2-12 items; in each, an animal question is answered with the document's own
    favorite animal with probability `preference` (else uniformly), so that a model that reads
    earlier items can learn the favorite in context. Number items are as in the corpus: they say
    nothing about the favorite."""
    rng = random.Random(seed)
    questions, _ = animal_questions()
    documents = []
    for _ in range(n_documents):
        favorite = rng.choice(ANIMALS)
        document = []
        for _ in range(rng.randint(*items)):
            if rng.random() < number_share:
                document.append(number_item(rng))
            else:
                answer = favorite if rng.random() < preference else rng.choice(ANIMALS)
                document.append((rng.choice(questions), answer))
        documents.append(document)
    return documents
