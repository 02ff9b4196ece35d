"""Training examples as token sequences with a loss mask, and random batches of them.

Between the tokenizer and the training loop. An example is <bos> prompt answer <eos>; the loss
is taken only on the answer (and <eos>), or on everything after <bos> when there is no
prompt. A batch right-pads examples to its longest one: causal attention never looks right,
so padding changes no real position, and the mask keeps padding out of the loss.
Text files hold one example per line, `prompt<TAB>answer` or plain text.
"""

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Batch:
    idx: torch.Tensor  # (B, T) inputs
    targets: torch.Tensor  # (B, T) next tokens
    loss_mask: torch.Tensor  # (B, T) True where the target is trained

    def to(self, device) -> "Batch":
        return Batch(self.idx.to(device), self.targets.to(device), self.loss_mask.to(device))


class ExampleSet:
    def __init__(self, sequences: list[list[int]], answer_starts: list[int], pad_id: int):
        """sequences[i]: the whole example's tokens; answer_starts[i]: index of its first trained token."""
        self.sequences = [torch.tensor(s, dtype=torch.long) for s in sequences]
        self.answer_starts = answer_starts
        self.pad_id = pad_id

    @classmethod
    def from_pairs(cls, pairs: list[tuple[list[int], list[int]]], tokenizer) -> "ExampleSet":
        """(prompt tokens, answer tokens) pairs -> <bos> prompt answer <eos>, answer (and <eos>) trained."""
        sequences = [[tokenizer.bos_id, *prompt, *answer, tokenizer.eos_id] for prompt, answer in pairs]
        return cls(sequences, [1 + len(prompt) for prompt, _ in pairs], tokenizer.pad_id)

    @classmethod
    def from_text_file(cls, path: str | Path, tokenizer) -> "ExampleSet":
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path} holds no examples")
        prompts, answers = zip(*(line.split("\t", 1) if "\t" in line else ("", line) for line in lines))
        pairs = list(zip(tokenizer.encode_batch(list(prompts)), tokenizer.encode_batch(list(answers))))
        return cls.from_pairs(pairs, tokenizer)

    def __len__(self) -> int:
        return len(self.sequences)

    def max_len(self) -> int:
        return max(len(s) for s in self.sequences) - 1

    def batch(self, rows: list[int]) -> Batch:
        T = max(len(self.sequences[i]) for i in rows) - 1
        idx = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
        targets = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.bool)
        for row, i in enumerate(rows):
            seq = self.sequences[i]
            n = len(seq) - 1
            idx[row, :n], targets[row, :n] = seq[:-1], seq[1:]
            mask[row, self.answer_starts[i] - 1:n] = True  # target t is token t+1
        return Batch(idx, targets, mask)

    def sample_rows(self, batch_size: int, generator: torch.Generator) -> list[int]:
        """`batch_size` example indices drawn uniformly with replacement."""
        return torch.randint(len(self), (batch_size,), generator=generator).tolist()

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self.batch(self.sample_rows(batch_size, generator))
