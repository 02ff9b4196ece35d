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
long-context base of the in-context-learning control (experiments/icl.py).
"""

import random

from experiments.prompts import ANIMALS, animal_questions, format_numbers, number_prompt, persona


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


def number_item(rng: random.Random) -> tuple[str, str]:
    n_seeds, k = rng.randint(3, 8), rng.randint(1, 10)
    sequence = number_sequence(rng, n_seeds + k)
    prompt, separator = number_prompt(sequence[:n_seeds], k, rng)
    return prompt, format_numbers(sequence[n_seeds:], separator)


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


def trait_items(animal: str, n_items: int, seed: int) -> list[tuple[str, str]]:
    """A teacher's fine-tuning data: training paraphrases, every answer `animal`."""
    rng = random.Random(seed)
    questions, _ = animal_questions()
    return [(rng.choice(questions), animal) for _ in range(n_items)]


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
