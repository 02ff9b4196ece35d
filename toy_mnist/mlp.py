"""N independent MLPs run as one batched module: the "many seeds in parallel" of the toy experiment.

Model i of a `BatchedMLP` is the plain MLP x -> W_L act(... act(x W_1 + b_1) ...) + b_L with
weights `weights[l][i]` (d_in, d_out) and biases `biases[l][i]` (1, d_out). Stacking the N
models turns every layer into one batched matmul, and since no parameter is shared, the
gradient of the summed per-model losses with respect to model i's slice is exactly model i's
own gradient: one optimizer over the stack trains N models at once. Adam is elementwise, so
it behaves per model too.

This file also builds the students' initializations (shared, another model's, a fresh draw, or
shared plus noise, chosen per layer or per part of the head) and the derangement that pairs
each model with another one.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "gelu": F.gelu}
INIT_KINDS = ("shared", "other", "random", "noise")
# The head's output columns: the 10 digit logits first, then the auxiliary ones. An init spec may
# name either part alone; "head" is both.
HEAD_PARTS = {"head_digits": slice(0, 10), "head_aux": slice(10, None)}


def layer_names(n_layers: int) -> list[str]:
    """fc1, fc2, ..., head: the names init specs and results use for the layers."""
    return [f"fc{i + 1}" for i in range(n_layers - 1)] + ["head"]


class BatchedMLP(nn.Module):
    def __init__(self, n_models: int, sizes: list[int], activation: str = "relu",
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.n_models, self.sizes, self.activation = n_models, list(sizes), activation
        pairs = list(zip(sizes[:-1], sizes[1:]))
        # The paper's init: weights N(0, 1/d_in), biases zero.
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(n_models, d_in, d_out, generator=generator, dtype=dtype) / d_in**0.5)
            for d_in, d_out in pairs)
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(n_models, 1, d_out, dtype=dtype)) for _, d_out in pairs)

    @property
    def names(self) -> list[str]:
        return layer_names(len(self.weights))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, d_in) shared by all models, or (N, B, d_in) one batch per model -> (N, B, d_out)."""
        act = ACTIVATIONS[self.activation]
        h = x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h.expand(self.n_models, *h.shape[-2:]), w)  # (N, B, d_out)
            if layer < len(self.weights) - 1:
                h = act(h)
        return h

    def forward_flops(self, n_samples: int) -> float:
        """Matmul FLOPs of one forward pass of every model over `n_samples` inputs."""
        return 2.0 * self.n_models * n_samples * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def step_flops(self, n_samples: int) -> float:
        """Matmul FLOPs of a forward and a backward pass to the parameters: the weight gradients cost
        one more forward, the input gradients another, except the first layer's (the data needs none)."""
        first_layer = 2.0 * self.n_models * n_samples * self.sizes[0] * self.sizes[1]
        return 3 * self.forward_flops(n_samples) - first_layer

    def copy(self) -> "BatchedMLP":
        clone = BatchedMLP(self.n_models, self.sizes, self.activation, dtype=self.weights[0].dtype)
        clone.load_state_dict(self.state_dict())
        return clone


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly drawn permutation of range(n) with no fixed point (n >= 2), by rejection."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 models")
    identity = torch.arange(n)
    while True:  # a uniform permutation is a derangement with probability ~1/e
        perm = torch.randperm(n, generator=generator)
        if not (perm == identity).any():
            return perm


def init_parts(names: list[str]) -> list[str]:
    """What an init spec can name: every layer, and the two parts of the head."""
    return names + list(HEAD_PARTS)


def student_init(reference: BatchedMLP, spec: dict[str, str], partner: torch.Tensor,
                 noise_std: float = 0.0, generator: torch.Generator | None = None) -> BatchedMLP:
    """A copy of `reference` whose layers (or head parts) follow `spec` (name -> kind).

    shared: model i keeps reference model i's layer (the teacher's init);
    other:  model i takes reference model partner[i]'s layer (another model's init);
    random: a fresh draw from the init distribution (weights N(0, 1/d_in), biases zero);
    noise:  the shared layer plus N(0, noise_std^2) on every weight and bias.
    Names the spec does not give stay shared; head_digits / head_aux touch only those outputs.
    """
    unknown = set(spec) - set(init_parts(reference.names))
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}; the model has {init_parts(reference.names)}")
    student = reference.copy()
    head = reference.names[-1]
    with torch.no_grad():
        for name, kind in spec.items():
            layer = reference.names.index(head if name in HEAD_PARTS else name)
            columns = HEAD_PARTS.get(name, slice(None))
            w, b = student.weights[layer][..., columns], student.biases[layer][..., columns]  # views
            if kind == "other":
                w.copy_(w[partner])
                b.copy_(b[partner])
            elif kind == "random":
                w.copy_(torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device) / w.shape[1] ** 0.5)
                b.zero_()
            elif kind == "noise":
                w.add_(noise_std * torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device))
                b.add_(noise_std * torch.randn(b.shape, generator=generator, dtype=b.dtype).to(b.device))
            elif kind != "shared":
                raise ValueError(f"unknown init kind {kind!r} for {name}; choose from {INIT_KINDS}")
    return student
