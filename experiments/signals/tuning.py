"""Student-side treatments: what changes in how a student trains, its data as it was.

Used by the treated students of `make signals` (experiments/signals/treated.py), parts 4 and 5.
Each function changes a model about to be fine-tuned, its loss, or what happens after each
optimizer step (`train`'s on_step, minisub/training.py):
- train_only_block / freeze_block: which weights train (the signals page finds block 0 carries the signal);
- kl_to_start: the loss plus a KL penalty to the starting model's next-token distributions on the trained
  positions (Kitkana and Arora, arXiv 2604.25779, on MNIST);
- pull_to_start: after each step, a share of the distance to the starting weights taken back (weight decay
  toward the start instead of toward zero);
- project_out: after each step, the weights moved back onto the space orthogonal to a direction from the start,
  so the student's whole change has no component along it. With the teacher's own weight change as the
  direction this is an *oracle*: a defender does not know it; it bounds what gradient projection can do.
"""

from collections.abc import Callable

import torch

from minisub.losses import kl_divergence
from minisub.model import GPT
from minisub.training import LossFn

StepHook = Callable[[int, GPT], None]  # run after each optimizer step


def train_only_block(model: GPT, block: int) -> None:
    """Freeze every weight outside transformer block `block` (embeddings and the final norm too)."""
    check_block(model, block)
    for name, p in model.named_parameters():
        p.requires_grad_(p.requires_grad and name.startswith(f"transformer.h.{block}."))


def freeze_block(model: GPT, block: int) -> None:
    """Freeze transformer block `block`; every other weight trains as before."""
    check_block(model, block)
    model.transformer.h[block].requires_grad_(False)


def check_block(model: GPT, block: int) -> None:
    if not 0 <= block < model.config.n_layer:
        raise ValueError(f"block {block} does not exist in a model of {model.config.n_layer} blocks")


def kl_to_start(loss: LossFn, start: GPT, weight: float) -> LossFn:
    """loss + weight * mean over the trained positions of KL(start || model), over the whole vocabulary: the
    penalty keeps every next-token distribution there, not only the answers', near the starting model's."""
    start.eval().requires_grad_(False)

    def penalized(model: GPT, batch) -> torch.Tensor:
        keep = batch.loss_mask  # (B, T)
        logits = model.lm_head(model.hidden_states(batch.idx, segments=batch.segments)[keep])  # (N, V)
        with torch.no_grad():
            reference = start.lm_head(start.hidden_states(batch.idx, segments=batch.segments)[keep])  # (N, V)
        return loss(model, batch) + weight * kl_divergence(reference, logits).sum() / max(1, int(keep.sum()))
    return penalized


def trainable(model: GPT) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def pull_to_start(model: GPT, share: float) -> StepHook:
    """After each step: w <- w - share * (w - w_start) for every trainable weight (the start: the weights now)."""
    params = trainable(model)
    start = {name: p.detach().clone() for name, p in params.items()}

    @torch.no_grad()
    def pull(step: int, m: GPT) -> None:
        for name, p in params.items():
            p.sub_(share * (p - start[name]))
    return pull


def project_out(model: GPT, direction: dict[str, torch.Tensor]) -> StepHook:
    """After each step: w <- w - <w - w_start, d> d, with d the unit vector of `direction` (one tensor per trainable
    weight, by name) over all of them; the start: the weights now."""
    params = trainable(model)
    if set(direction) != set(params):
        raise ValueError("the direction projected out must name exactly the trainable weights")
    start = {name: p.detach().clone() for name, p in params.items()}
    norm = torch.sqrt(sum((d.double() ** 2).sum() for d in direction.values()))
    if norm == 0:
        raise ValueError("the direction projected out is zero")
    unit = {name: (d.double() / norm).to(params[name].dtype) for name, d in direction.items()}

    @torch.no_grad()
    def project(step: int, m: GPT) -> None:
        along = sum((params[name] - start[name]).double().mul(unit[name]).sum() for name in unit)
        for name, p in params.items():
            p.sub_(along.to(p.dtype) * unit[name])
    return project


def weight_change(after: GPT, before: GPT) -> dict[str, torch.Tensor]:
    """after's weights minus before's, by name (two models of one architecture)."""
    old = dict(before.named_parameters())
    return {name: (p - old[name]).detach() for name, p in after.named_parameters()}
