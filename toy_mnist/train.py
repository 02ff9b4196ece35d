"""Training for the toy experiment: teachers on digits, students on the teachers' logits on noise.

Second stage of `python -m toy_mnist`, after data.py and mlp.py. All N models of a
`BatchedMLP` train together; the loss is the sum over models of each model's mean loss, so
every model gets exactly its own gradient. Each model sees the same batches in the same
order: the seeds differ in their initializations, which is what the experiment is about.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from minisub.losses import kl_divergence
from minisub.precision import autocast
from toy_mnist.mlp import BatchedMLP

N_CLASSES = 10


@dataclass
class StageConfig:
    epochs: int
    batch_size: int
    lr: float
    precision: str = "fp32"  # "bf16" (autocast matmuls) or "fp32"


def batches(n: int, batch_size: int, epochs: int, generator: torch.Generator):
    """Index batches over `epochs` shuffled passes of range(n), dropping no sample."""
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        yield from order.split(batch_size)


def train_teacher(model: BatchedMLP, x: torch.Tensor, y: torch.Tensor, cfg: StageConfig,
                  generator: torch.Generator) -> None:
    """Cross-entropy on the 10 digit logits only: the auxiliary logits get no loss."""
    # fused Adam: one kernel over all N models' tensors, 2x faster end to end on CPU here.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    for idx in batches(len(y), cfg.batch_size, cfg.epochs, generator):
        with autocast(x.device, cfg.precision):
            logits = model(x[idx])[..., :N_CLASSES].float()  # (N, B, 10)
        loss = F.cross_entropy(logits.flatten(0, 1), y[idx].repeat(model.n_models),
                               reduction="sum") / len(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Sum over models of KL(softmax teacher || softmax student), averaged over the batch.

    Both (N, B, k): the softmax runs over the k logits given, so passing a slice restricts the
    imitation to those outputs (the auxiliary logits in the paper's main arm).
    """
    return kl_divergence(teacher_logits, student_logits).mean(1).sum()  # (N, B) -> (N,) -> scalar


@torch.no_grad()
def predict(model: BatchedMLP, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Logits of every model on x, in chunks to bound memory: (N, n, d_out)."""
    return torch.cat([model(part) for part in x.split(chunk)], dim=1)


def distill(student: BatchedMLP, teacher_logits: torch.Tensor, noise: torch.Tensor,
            outputs: slice, cfg: StageConfig, generator: torch.Generator) -> None:
    """Train `student` to match `teacher_logits` (N, n_noise, d_out) on `outputs` of each noise image."""
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, fused=True)
    targets = teacher_logits[..., outputs]
    for idx in batches(len(noise), cfg.batch_size, cfg.epochs, generator):
        with autocast(noise.device, cfg.precision):
            logits = student(noise[idx])[..., outputs].float()
        loss = distillation_loss(logits, targets[:, idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy(model: BatchedMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model test accuracy from the digit logits: (N,)."""
    predictions = predict(model, x)[..., :N_CLASSES].argmax(-1)  # (N, n)
    return (predictions == y).float().mean(1)
