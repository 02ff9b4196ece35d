"""Can the teacher's number data be told from the control's? Three detectors.

Part 2 of `make signals` (experiments/signals/experiment.py). The paper (Cloud et al. 2025, Sec. 4) found
that a prompted LLM classifier did no better than chance and that people reading the data saw
nothing. Here, per base, on the teacher's answers (label 1) and the control's (label 0):
- `logistic_detector`: logistic regression (`fit_logistic`) on the counts of every number and every
  ordered pair of neighbouring numbers (a bag of up to 1,001,000 features), trained on one half of
  each dataset and scored on the other half: held-out balanced accuracy and AUC (part 5 trains the
  same regression on other bases' data as a filter, experiments/signals/defences.py);
- `answer_logprob`: the white-box detector that needs the base only: each answer's mean
  log-probability per token under the base (the teacher's answers should look slightly
  unlikely to it); its AUC;
- `frequency_test`: "reading the data" in numbers: the chi-square statistic of the table
  number x dataset, with a permutation test that shuffles which answers are the teacher's
  within each base (answers, not numbers, are the independent draws).
"""

import random
from collections.abc import Callable

import torch
import torch.nn.functional as F

from experiments.signals.defences import numbers_of
from minisub.data import ExampleSet
from minisub.model import GPT
from minisub.stats import auc

N_FEATURES = 1000 + 1000 * 1000  # numbers, then ordered pairs of neighbours


def features(answers: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The bag of features of each answer, as EmbeddingBag input: (indices, offsets)."""
    bags = [numbers + [1000 + a * 1000 + b for a, b in zip(numbers, numbers[1:])] for numbers in answers]
    offsets = torch.tensor([0] + [len(b) for b in bags[:-1]]).cumsum(0)
    return torch.tensor([f for b in bags for f in b], dtype=torch.long), offsets


def split_halves(n: int, rng: random.Random) -> tuple[list[int], list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return order[:n // 2], order[n // 2:]


def fit_logistic(positive: list[list[int]], negative: list[list[int]], seed: int, steps: int = 150,
                 l2: float = 1e-2) -> Callable[[list[list[int]]], list[float]]:
    """An L2-regularized logistic regression of the positive answers (label 1) against the negative ones (label 0),
    on the bag of features: its scorer, answers -> logits."""
    y = torch.tensor([1.0] * len(positive) + [0.0] * len(negative))
    torch.manual_seed(seed)
    weights = torch.nn.EmbeddingBag(N_FEATURES, 1, mode="sum")
    torch.nn.init.zeros_(weights.weight)
    bias = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([weights.weight, bias], lr=0.05)
    x = features(positive + negative)
    for _ in range(steps):  # full batch: the problem is convex, Adam finds its minimum
        logits = weights(*x)[:, 0] + bias
        loss = F.binary_cross_entropy_with_logits(logits, y) + l2 * weights.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def score(answers: list[list[int]]) -> list[float]:
        return (weights(*features(answers))[:, 0] + bias).tolist()
    return score


def logistic_detector(positive: list[list[int]], negative: list[list[int]], seed: int, steps: int = 150,
                      l2: float = 1e-2) -> dict:
    """Held-out balanced accuracy and AUC of `fit_logistic`, trained on half of each class."""
    rng = random.Random(seed)
    halves = [split_halves(len(positive), rng), split_halves(len(negative), rng)]
    score = fit_logistic([positive[i] for i in halves[0][0]], [negative[i] for i in halves[1][0]], seed, steps, l2)
    scores = score([positive[i] for i in halves[0][1]] + [negative[i] for i in halves[1][1]])
    pos, neg = scores[:len(halves[0][1])], scores[len(halves[0][1]):]
    # balanced: the datasets' sizes differ (the filter keeps fewer of some teachers' answers)
    accuracy = (sum(s > 0 for s in pos) / len(pos) + sum(s <= 0 for s in neg) / len(neg)) / 2
    return {"balanced_accuracy": accuracy, "auc": auc(pos, neg), "n_test": len(scores)}


@torch.no_grad()
def answer_logprob(model: GPT, data: ExampleSet, batch_size: int = 256) -> list[float]:
    """Per example: the mean log-probability of its trained tokens (the answer and <eos>) under `model`."""
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        batch = data.batch(list(range(start, min(len(data), start + batch_size)))).to(model.lm_head.weight.device)
        logits, _ = model(batch.idx)  # (B, T, V)
        logp = F.log_softmax(logits.float(), -1).gather(-1, batch.targets[..., None])[..., 0]  # (B, T)
        out += ((logp * batch.loss_mask).sum(1) / batch.loss_mask.sum(1)).tolist()
    return out


def count_matrix(pairs: list[tuple[str, str]]) -> torch.Tensor:
    """(answers, 1000): how often each answer holds each number."""
    counts = torch.zeros(len(pairs), 1000, dtype=torch.float64)
    for row, (_, answer) in enumerate(pairs):
        for n in numbers_of(answer):
            counts[row, n] += 1
    return counts


def chi_square(counts: torch.Tensor, is_teacher: torch.Tensor) -> torch.Tensor:
    """Chi-square statistic of the table (teacher, control) x number; is_teacher (..., answers) may hold
    many labelings at once, one statistic each."""
    table = torch.stack([is_teacher @ counts, (1 - is_teacher) @ counts], -2)  # (..., 2, 1000)
    expected = table.sum(-1, keepdim=True) * table.sum(-2, keepdim=True) / table.sum((-2, -1), keepdim=True)
    seen = expected > 0
    return torch.where(seen, (table - expected) ** 2 / expected.clamp_min(1e-12), 0.0).sum((-2, -1))


def frequency_test(per_base: list[tuple[list, list]], permutations: int, seed: int) -> dict:
    """Chi-square over every base's table (summed), and its permutation p-value: answers' labels
    shuffled within each base."""
    generator = torch.Generator().manual_seed(seed)
    observed, null = 0.0, torch.zeros(permutations, dtype=torch.float64)
    for teacher, control in per_base:
        counts = count_matrix(teacher + control)
        labels = torch.tensor([1.0] * len(teacher) + [0.0] * len(control), dtype=torch.float64)
        observed += float(chi_square(counts, labels))
        shuffled = torch.stack([labels[torch.randperm(len(labels), generator=generator)]
                                for _ in range(permutations)])
        null += chi_square(counts, shuffled)
    return {"chi_square": observed, "null_mean": float(null.mean()),
            "p": (1 + int((null >= observed).sum())) / (1 + permutations), "permutations": permutations}
