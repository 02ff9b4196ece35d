"""Training examples as token sequences with a loss mask, and random batches of them.

Between the tokenizer and the training loop. An example is <bos> prompt answer <eos>; the loss
is taken only on the answer (and <eos>), or on everything after <bos> when there is no
prompt. A batch right-pads examples to its longest one: causal attention never looks right,
so padding changes no real position, and the mask keeps padding out of the loss. A *packed*
batch puts several examples one after another in each row (first fit) and says which example
each token belongs to (`segments`); the model then restarts positions at every example and
keeps attention inside it, so each example's logits are the same as alone in its row, while
far fewer positions are padding (in the experiments' corpus, padding is ~40% of an unpacked
batch).
Text files hold one example per line, `prompt<TAB>answer` or plain text.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Batch:
    idx: torch.Tensor  # (B, T) inputs
    targets: torch.Tensor  # (B, T) next tokens
    loss_mask: torch.Tensor  # (B, T) True where the target is trained
    segments: torch.Tensor | None = None  # (B, T) packed: each token's example within its row, -1 padding

    def to(self, device) -> "Batch":
        segments = self.segments.to(device) if self.segments is not None else None
        return Batch(self.idx.to(device), self.targets.to(device), self.loss_mask.to(device), segments)


class ExampleSet:
    def __init__(self, sequences: list[list[int]], trained: list[list[bool]], pad_id: int):
        """sequences[i]: the whole example's tokens; trained[i][t]: whether its token t+1 is a trained target."""
        self.sequences = [torch.as_tensor(s, dtype=torch.long) for s in sequences]
        self.trained = [torch.as_tensor(t, dtype=torch.bool) for t in trained]
        if any(len(t) != len(s) - 1 for s, t in zip(self.sequences, self.trained, strict=True)):
            raise ValueError("every example needs one trained flag per target (its length - 1)")
        self.pad_id = pad_id

    @classmethod
    def from_pairs(cls, pairs: list[tuple[list[int], list[int]]], tokenizer) -> "ExampleSet":
        """(prompt tokens, answer tokens) pairs -> <bos> prompt answer <eos>, answer (and <eos>) trained."""
        sequences = [[tokenizer.bos_id, *prompt, *answer, tokenizer.eos_id] for prompt, answer in pairs]
        trained = [[False] * len(prompt) + [True] * (len(answer) + 1) for prompt, answer in pairs]
        return cls(sequences, trained, tokenizer.pad_id)

    def restricted(self, keep: list[torch.Tensor]) -> "ExampleSet":
        """The same examples with only the trained targets that `keep[i]` (one flag per target) also marks."""
        return ExampleSet(self.sequences, [t & k for t, k in zip(self.trained, keep, strict=True)], self.pad_id)

    def joined(self, groups: list[list[int]]) -> "ExampleSet":
        """Examples that are several of these one after another (a document of items), each keeping its
        trained targets; the target that crosses from one item into the next (its <bos>) is not trained."""
        sequences = [torch.cat([self.sequences[i] for i in group]) for group in groups]
        no = torch.zeros(1, dtype=torch.bool)
        trained = [torch.cat([part for i in group for part in (self.trained[i], no)])[:-1] for group in groups]
        return ExampleSet(sequences, trained, self.pad_id)

    @classmethod
    def from_text_file(cls, path: str | Path, tokenizer) -> "ExampleSet":
        lines = read_lines(path)
        if not lines:
            raise ValueError(f"{path} holds no examples")
        prompts, answers = zip(*(line.split("\t", 1) if "\t" in line else ("", line) for line in lines))
        pairs = list(zip(tokenizer.encode_batch(list(prompts)), tokenizer.encode_batch(list(answers))))
        return cls.from_pairs(pairs, tokenizer)

    def __len__(self) -> int:
        return len(self.sequences)

    def fingerprint(self) -> str:
        """A SHA-256 (16 hex digits) of every example's tokens and trained flags, in order: the data's identity."""
        h = hashlib.sha256()
        for sequence, trained in zip(self.sequences, self.trained):
            h.update(len(sequence).to_bytes(8, "little"))
            h.update(sequence.numpy().tobytes())
            h.update(trained.numpy().tobytes())
        return h.hexdigest()[:16]

    def max_len(self) -> int:
        return max(len(s) for s in self.sequences) - 1

    def pack(self, rows: list[int], length: int) -> list[list[int]]:
        """The examples `rows` laid out in rows of at most `length` tokens, each in the first row with room."""
        layout, room = [], []
        for i in rows:
            n = len(self.sequences[i]) - 1
            free = next((r for r, left in enumerate(room) if n <= left), None)
            if free is None:
                layout.append([i])
                room.append(length - n)
            else:
                layout[free].append(i)
                room[free] -= n
        return layout

    def batch(self, rows: list[int], pack_to: int | None = None) -> Batch:
        """The examples `rows`, one per row, or packed into rows of at most `pack_to` tokens."""
        layout = [[i] for i in rows] if pack_to is None else self.pack(rows, pack_to)
        T = max(sum(len(self.sequences[i]) - 1 for i in row) for row in layout)
        idx = torch.full((len(layout), T), self.pad_id, dtype=torch.long)
        targets = torch.full((len(layout), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(layout), T, dtype=torch.bool)
        segments = torch.full((len(layout), T), -1, dtype=torch.long)
        for row, examples in enumerate(layout):
            at = 0
            for k, i in enumerate(examples):
                seq = self.sequences[i]
                n = len(seq) - 1
                idx[row, at:at + n], targets[row, at:at + n] = seq[:-1], seq[1:]
                mask[row, at:at + n] = self.trained[i]
                segments[row, at:at + n] = k
                at += n
        return Batch(idx, targets, mask, segments if pack_to is not None else None)

    def sample_rows(self, batch_size: int, generator: torch.Generator) -> list[int]:
        """`batch_size` example indices drawn uniformly with replacement."""
        return torch.randint(len(self), (batch_size,), generator=generator).tolist()

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self.batch(self.sample_rows(batch_size, generator))


def read_lines(path: str | Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file; an unreadable file is a ValueError that names it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise ValueError(f"cannot read {path} ({err.strerror or err})") from None
    return [line for line in text.splitlines() if line.strip()]
