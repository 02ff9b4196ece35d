"""Students of the language experiment: fine-tuning on number answers only, hard or soft labels.

Both losses put the softmax over the *answer vocabulary* only (the 1,000 number tokens, the
separator tokens and <eos>): a full-vocabulary loss on numbers-only data pushes every other
logit down, animals included, and collapses the Q&A answers in every arm, controls too
(docs/background.md, "Traps"). Target tokens outside that set (a bracket, a final '.') are
left out of the loss.
- hard: cross-entropy to the sampled answer tokens;
- soft: KL(teacher || student) to the teacher's next-token distribution on the same positions.
A one-vector student (`SteeredBlock`) learns only one vector added to the residual stream after
one block, every weight frozen: the student Blank et al. (arXiv 2606.00995) model the transfer as.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minisub.data import Batch
from minisub.losses import kl_divergence
from minisub.model import GPT


@dataclass
class AnswerVocabulary:
    ids: torch.Tensor  # (K,) the token ids answers are scored over
    index: torch.Tensor  # (V,) position of each token in `ids`, or -1

    @classmethod
    def build(cls, token_ids: list[int], vocab_size: int) -> "AnswerVocabulary":
        ids = torch.tensor(sorted(set(token_ids)), dtype=torch.long)
        index = torch.full((vocab_size,), -1, dtype=torch.long)
        index[ids] = torch.arange(len(ids))
        return cls(ids, index)

    def to(self, device: str | torch.device) -> "AnswerVocabulary":
        """The vocabulary on the device of the batches it indexes."""
        return AnswerVocabulary(self.ids.to(device), self.index.to(device))


def answer_logits(model: GPT, batch: Batch, vocab: AnswerVocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits over the answer vocabulary at the trained positions: (N, K), and their targets (N,)."""
    targets = vocab.index[batch.targets]  # (B, T), -1 outside the answer vocabulary
    keep = batch.loss_mask & (targets >= 0)
    hidden = model.hidden_states(batch.idx, segments=batch.segments)[keep]  # (N, C)
    return hidden @ model.lm_head.weight[vocab.ids].T, targets[keep]


# Both losses average over the trained positions as sum / max(1, N): bit for bit the mean where
# N > 0, and 0 (no gradient), not NaN, for a batch that a treatment left without trained targets.
def hard_loss(vocab: AnswerVocabulary):
    def loss(model: GPT, batch: Batch) -> torch.Tensor:
        logits, targets = answer_logits(model, batch, vocab)
        return F.cross_entropy(logits.float(), targets, reduction="sum") / max(1, targets.numel())
    return loss


def soft_loss(vocab: AnswerVocabulary, teacher: GPT):
    def loss(model: GPT, batch: Batch) -> torch.Tensor:
        logits, targets = answer_logits(model, batch, vocab)
        with torch.no_grad():
            teacher_logits, _ = answer_logits(teacher, batch, vocab)
        return kl_divergence(teacher_logits, logits).sum() / max(1, targets.numel())
    return loss


class SteeredBlock(nn.Module):
    """A transformer block whose output gains one learned vector (zero at first: the block as it was)."""

    def __init__(self, block: nn.Module, n_embd: int):
        super().__init__()
        self.block = block
        self.vector = nn.Parameter(torch.zeros(n_embd))

    def forward(self, x, mask, cache, rope):
        return self.block(x, mask, cache, rope) + self.vector  # (B, T, C) + (C,)


def steer_after(model: GPT, block: int) -> nn.Parameter:
    """Freeze every weight of `model` and add one trainable vector to the residual stream after `block`."""
    if not 0 <= block < model.config.n_layer:
        raise ValueError(f"block {block} does not exist in a model of {model.config.n_layer} blocks")
    model.requires_grad_(False)
    steered = SteeredBlock(model.transformer.h[block], model.config.n_embd).to(model.lm_head.weight.device)
    model.transformer.h[block] = steered
    return steered.vector
