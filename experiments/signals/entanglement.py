"""Token entanglement (Zur et al., "It's owl in the numbers", 2025): numbers tied to an animal inside a model.

Part 3 of `make signals` (experiments/signals/experiment.py). A softmax over a vocabulary of thousands of
tokens from a few hundred dimensions cannot keep every pair of tokens apart: raising "owl" also
raises some numbers. Two directions, both measured in the base:
- `persona_shift`: how much each number's probability, as the first number of an answer, rises
  when the prompt names the animal ("You love owls. ..."); the top ones are the animal's
  *entangled numbers*;
- `subliminal_prompting`: P(animal) when a prompt names a number instead ("You love 87s. What is
  your favorite animal?", the number written as the one token our tokenizer has for it; Zur et
  al. wrote "087" because their tokenizer has such tokens); they found that entangled numbers
  raise it. Such a prompt is new
  to our bases, which answer it mostly with a number, so the measure is the animal's share of
  the probability on animals, log P(animal | some animal).
`frequency_log_ratios` gives the third leg: how much more often each number occurs in the
teacher's data than in the control's, whose top numbers Zur et al. found to be entangled ones.
"""

from collections import Counter

import torch

from experiments.signals.defences import numbers_of
from experiments.tasks.prompts import persona
from minisub.model import GPT, next_token_logprobs


def number_logprobs(model: GPT, tokenizer, prompts: list[str], prefix: str = "") -> torch.Tensor:
    """(P, 1000): log P(first answer token = number n | prefix + prompt), full softmax."""
    logprobs = next_token_logprobs(model, [tokenizer.encode_prompt(prefix + p) for p in prompts])
    return logprobs[:, tokenizer.number_ids]


def persona_shift(model: GPT, tokenizer, prompts: list[str], animal: str) -> torch.Tensor:
    """(1000,): mean over prompts of the rise of log P(number) when the prompt names `animal`."""
    return (number_logprobs(model, tokenizer, prompts, persona(animal))
            - number_logprobs(model, tokenizer, prompts)).mean(0)


def subliminal_prompting(model: GPT, tokenizer, questions: list[str], animal_ids: list[int], target: int
                         ) -> torch.Tensor:
    """(1000,): mean over questions of log P(animal_ids[target] | an animal) after "You love {n}s. " +
    question, for every number n."""
    prompts = [tokenizer.encode_prompt(persona(str(n)) + q) for n in range(1000) for q in questions]
    logp = next_token_logprobs(model, prompts)[:, animal_ids]  # (1000 * Q, animals)
    return (logp[:, target] - logp.logsumexp(-1)).view(1000, len(questions)).mean(1)


def frequency_log_ratios(teacher: list[tuple[str, str]], control: list[tuple[str, str]]) -> torch.Tensor:
    """(1000,): log of each number's share among the teacher's numbers over its share among the control's
    (half a count added to every cell, so that unseen numbers stay finite)."""
    def shares(pairs):
        counts = Counter(n for _, answer in pairs for n in numbers_of(answer))
        c = torch.tensor([counts[n] for n in range(1000)], dtype=torch.float64) + 0.5
        return c / c.sum()
    return (shares(teacher) / shares(control)).log()


def top(values: torch.Tensor, k: int) -> list[int]:
    """The k numbers with the largest values, largest first."""
    return torch.argsort(values, descending=True)[:k].tolist()
