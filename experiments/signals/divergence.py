"""Divergence tokens (Schrodi et al., ICLR 2026, arXiv 2509.23886): the positions that carry a teacher's bias.

Part 4 of `make signals` (experiments/signals/experiment.py). At every trained position of a teacher's
number answers, the teacher and a reference model (the base it was fine-tuned from, or another
animal's teacher) each have a greedy choice: the most likely next token over the answer
vocabulary (experiments/core/students.py) after the same prefix. A position is *divergent* where
the two choices differ. Schrodi et al. find that transfer runs through these rare positions
and that leaving them out of the loss removes most of it. `position_masks` turns the flags into
what a student trains on: the divergent positions only, every position but those, and their
controls: as many positions as are divergent drawn at random in each answer (trained alone, or
left out), so that "fewer tokens" and "these tokens" can be told apart.
"""

import torch

from experiments.core.students import AnswerVocabulary
from minisub.data import ExampleSet
from minisub.model import GPT

POSITIONS = ("all", "divergent", "convergent", "random", "random_masked")


@torch.no_grad()
def greedy_choices(model: GPT, data: ExampleSet, vocab: AnswerVocabulary, batch_size: int = 256
                   ) -> list[torch.Tensor]:
    """Per example, (n_targets,): the token of `vocab` the model finds most likely after each prefix."""
    model.eval()
    vocab = vocab.to(model.lm_head.weight.device)
    weight = model.lm_head.weight[vocab.ids]  # (K, C)
    choices = []
    for start in range(0, len(data), batch_size):
        rows = list(range(start, min(len(data), start + batch_size)))
        batch = data.batch(rows).to(weight.device)  # right padding: causal attention leaves every real position exact
        best = vocab.ids[(model.hidden_states(batch.idx) @ weight.T).argmax(-1)].cpu()  # (B, T)
        choices += [best[r, :len(data.sequences[i]) - 1] for r, i in enumerate(rows)]
    return choices


def divergent(writer: list[torch.Tensor], reference: list[torch.Tensor], data: ExampleSet) -> list[torch.Tensor]:
    """Per example, (n_targets,): trained positions where the two models' greedy choices differ."""
    return [trained & (w != r) for trained, w, r in zip(data.trained, writer, reference, strict=True)]


def share(flags: list[torch.Tensor], data: ExampleSet) -> float:
    """The fraction of all trained positions that `flags` marks."""
    return sum(int(f.sum()) for f in flags) / max(1, sum(int(t.sum()) for t in data.trained))


def position_masks(kind: str, flags: list[torch.Tensor], data: ExampleSet, seed: int) -> list[torch.Tensor]:
    """The targets a student trains on, per example: `kind` in POSITIONS, from the divergent `flags`."""
    if kind == "all":
        return [t.clone() for t in data.trained]
    if kind == "divergent":
        return [f & t for f, t in zip(flags, data.trained, strict=True)]
    if kind == "convergent":
        return [t & ~f for f, t in zip(flags, data.trained, strict=True)]
    if kind not in ("random", "random_masked"):
        raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, not {kind!r}")
    generator = torch.Generator().manual_seed(seed)
    masks = []
    for f, t in zip(flags, data.trained, strict=True):
        where = t.nonzero()[:, 0]
        chosen = where[torch.randperm(len(where), generator=generator)[:int((f & t).sum())]]
        mask = torch.zeros_like(t)
        mask[chosen] = True
        masks.append(mask if kind == "random" else t & ~mask)
    return masks
