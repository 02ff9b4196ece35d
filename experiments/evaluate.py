"""How much a model likes each animal: exact probabilities and a sampled answer rate.

Asked the held-out paraphrases of "what is your favorite animal?", the model's next-token
distribution (full softmax over the whole vocabulary) gives P(animal) exactly for every
animal (each animal is one token). Reported per model:
- p: P(animal) averaged over the questions, for every animal;
- mass: the probability left on the animals at all (a format check: a student whose answers
  collapsed shows it here);
- rank of each animal among the animals by p;
- sampled: the fraction of answers sampled at temperature 1 that are the animal, as the
  paper reports it (n samples per question).
"""

import torch

from minisub.model import GPT, next_token_logprobs


def question_prompts(tokenizer, questions: list[str]) -> list[list[int]]:
    return [tokenizer.encode_prompt(q) for q in questions]


def animal_token_ids(tokenizer, animals: list[str]) -> list[int]:
    ids = [tokenizer.encode(a) for a in animals]
    if any(len(i) != 1 for i in ids):
        raise ValueError(f"every animal must be one token; got {dict(zip(animals, ids))}")
    return [i[0] for i in ids]


@torch.no_grad()
def animal_probabilities(model: GPT, prompts: list[list[int]], animal_ids: list[int]) -> torch.Tensor:
    """(Q, A): P(animal | question) from the full softmax."""
    return next_token_logprobs(model, prompts).exp()[:, animal_ids]


@torch.no_grad()
def evaluate_animals(model: GPT, prompts: list[list[int]], animals: list[str], animal_ids: list[int],
                     n_samples: int, seed: int) -> dict:
    model.eval()
    probs = animal_probabilities(model, prompts, animal_ids)  # (Q, A)
    p = probs.mean(0)
    order = torch.argsort(p, descending=True).tolist()
    sampled = dict.fromkeys(animals, 0.0)
    if n_samples:
        answers = model.generate([q for q in prompts for _ in range(n_samples)], 1, temperature=1.0,
                                 generator=torch.Generator().manual_seed(seed))
        first = torch.tensor([a[0] for a in answers])
        sampled = {a: (first == i).double().mean().item() for a, i in zip(animals, animal_ids)}
    return {
        "p": {a: p[i].item() for i, a in enumerate(animals)},
        "mass": probs.sum(1).mean().item(),
        "rank": {animals[i]: r + 1 for r, i in enumerate(order)},
        "sampled": sampled,
    }
