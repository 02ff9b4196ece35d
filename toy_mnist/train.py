"""Training for the toy experiment: teachers on digits, students on the teachers' logits on noise.

Second stage of `python -m toy_mnist`, after data.py and mlp.py. All N models of a
`BatchedMLP` train together; the loss is the sum over models of each model's mean loss, so
every model gets exactly its own gradient. Each model sees the same batches in the same
order: the seeds differ in their initializations, which is what the experiment is about.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from minisub.losses import kl_divergence
from minisub.precision import autocast
from toy_mnist.mlp import BatchedMLP

N_CLASSES = 10


IMITATIONS = ("kl", "mse")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class StageConfig:
    epochs: int
    batch_size: int
    lr: float
    precision: str = "fp32"  # "bf16" (autocast matmuls) or "fp32"
    optimizer: str = "adam"  # or "sgd": SGD with momentum 0.9
    weight_decay: float = 0.0  # L2 penalty added to the gradient (torch's weight_decay), as replications used

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        # fused: one kernel over all N models' tensors, 2x faster end to end on CPU here.
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, fused=True)


def batches(n: int, batch_size: int, epochs: int, generator: torch.Generator):
    """Index batches over `epochs` shuffled passes of range(n), dropping no sample."""
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        yield from order.split(batch_size)


def train_teacher(model: BatchedMLP, x: torch.Tensor, y: torch.Tensor, cfg: StageConfig,
                  generator: torch.Generator) -> None:
    """Cross-entropy on the 10 digit logits only: the auxiliary logits get no loss."""
    opt = cfg.make_optimizer(model.parameters())
    for idx in batches(len(y), cfg.batch_size, cfg.epochs, generator):
        with autocast(x.device, cfg.precision):
            logits = model(x[idx])[..., :N_CLASSES].float()  # (N, B, 10)
        loss = F.cross_entropy(logits.flatten(0, 1), y[idx].repeat(model.n_models),
                               reduction="sum") / len(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, imitation: str = "kl"
                      ) -> torch.Tensor:
    """Sum over models of the imitation loss, averaged over the batch. Both (N, B, k).

    kl: KL(softmax teacher || softmax student), the softmax over the k logits given, so passing a
    slice restricts the imitation to those outputs (the auxiliary logits in the paper's main arm);
    mse: the squared error summed over the k logits (the loss replications found stronger).
    """
    if imitation == "mse":
        per_example = (student_logits - teacher_logits).pow(2).sum(-1)  # (N, B)
    else:
        per_example = kl_divergence(teacher_logits, student_logits)  # (N, B)
    return per_example.mean(1).sum()


@torch.no_grad()
def predict(model: BatchedMLP, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Logits of every model on x, in chunks to bound memory: (N, n, d_out)."""
    return torch.cat([model(part) for part in x.split(chunk)], dim=1)


def distill(student: BatchedMLP, teacher_logits: torch.Tensor, noise: torch.Tensor,
            outputs: slice, cfg: StageConfig, generator: torch.Generator, imitation: str = "kl",
            on_step: Callable[[int, BatchedMLP], None] | None = None,
            penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
            before_step: Callable[[BatchedMLP], None] | None = None) -> None:
    """Train `student` to match `teacher_logits` (N, n_noise, d_out) on `outputs` of each noise image.

    on_step(step, student), if given, runs after every optimizer step (steps count from 1). The
    learning rate is constant, so the first E epochs of a longer run are exactly an E-epoch run.
    A defence (toy_mnist/defences.py) adds penalty(batch indices, every logit (N, B, d_out)) to the
    loss, or changes the gradients with before_step(student) before each optimizer step.
    """
    opt = cfg.make_optimizer(student.parameters())
    targets = teacher_logits[..., outputs]
    for step, idx in enumerate(batches(len(noise), cfg.batch_size, cfg.epochs, generator), start=1):
        with autocast(noise.device, cfg.precision):
            every = student(noise[idx]).float()  # (N, B, d_out)
        loss = distillation_loss(every[..., outputs], targets[:, idx], imitation)
        if penalty is not None:
            loss = loss + penalty(idx, every)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step(student)
        opt.step()
        if on_step is not None:
            on_step(step, student)


@torch.no_grad()
def accuracy(model: BatchedMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model test accuracy from the digit logits: (N,)."""
    predictions = predict(model, x)[..., :N_CLASSES].argmax(-1)  # (N, n)
    return (predictions == y).float().mean(1)
