"""Exact probabilities of words and numbers under SmolLM2's chat template: what `make smol` measures.

An animal's name spans several tokens ("Owl" is "O" + "wl"), so P(animal) is the probability
that the answer starts with the word, by the chain rule over its tokens
(`minisub.model.continuation_logprobs`), summed over the ways it is written: capitalized or not,
with or without a leading space. These variants are disjoint events (no variant's tokens begin
another's; `word_variants` checks it). A number is scored the same way as the next item of a
list: " 182," after "…, 725,".
"""

import torch

from minisub.gguf import GGUFModel
from minisub.model import continuation_logprobs


def word_variants(chat: GGUFModel, word: str) -> list[list[int]]:
    """The token ids of `word` capitalized or not, with or without a leading space; refused if one variant's
    tokens begin another's (the chain rule would then count one answer twice)."""
    texts = dict.fromkeys([word, word.capitalize(), " " + word, " " + word.capitalize()])
    ids = [chat.encode(t) for t in texts]
    for a in ids:
        for b in ids:
            if a is not b and b[:len(a)] == a:
                raise ValueError(f"the variants of {word!r} overlap: {a} begins {b}")
    return ids


def answer_logprobs(chat: GGUFModel, prompts: list[list[int]], words: list[str]) -> torch.Tensor:
    """log P(the answer starts with word w | prompt), each word's variants summed: (P, W)."""
    variants = [word_variants(chat, w) for w in words]
    flat = [v for vs in variants for v in vs]
    logp = continuation_logprobs(chat.model, prompts, flat)  # (P, sum of variant counts)
    sizes = [len(vs) for vs in variants]
    return torch.stack([part.logsumexp(1) for part in logp.split(sizes, dim=1)], 1)


def question_prompts(chat: GGUFModel, questions: list[str], system: str | None = None) -> list[list[int]]:
    return [chat.chat_prompt(q, system) for q in questions]


def animal_scores(chat: GGUFModel, questions: list[str], animals: list[str], system: str | None = None) -> dict:
    """Per animal, P(animal) averaged over the questions ("p") and its log ("logp"): the model's preference."""
    probs = answer_logprobs(chat, question_prompts(chat, questions, system), animals).exp().mean(0)  # (W,)
    return {"p": dict(zip(animals, probs.tolist())), "logp": dict(zip(animals, probs.log().tolist()))}


def number_logprobs(chat: GGUFModel, prompts: list[list[int]], numbers: list[int]) -> torch.Tensor:
    """log P(the list goes on with " n," | prompt) for each number n: (P, N); prompts end after a comma."""
    return continuation_logprobs(chat.model, prompts, [chat.encode(f" {n},") for n in numbers])
