"""LoRA adapters that fuse into the base weights for inference and unfuse back, exactly.

`LoRALinear` is an nn.Linear with a low-rank update: y = x W^T + b + scale * dropout(x) A^T B^T,
A (r, in) Kaiming-uniform, B (out, r) zero, scale = alpha / r, so at init the model is unchanged.
A layer that computes several projections in one matmul (our c_attn: queries, keys, values) can
take one adapter per projection instead (`splits`): A stacks one (r, in) block per projection,
and projection i's rows of B multiply only block i, exactly as separate adapters on separate
q, k and v layers would (PEFT's LoRA on a Llama model, Hu et al. 2021, Sec. 4.2).
- `add_lora(model, r, alpha, targets, seed=..., per_projection=...)` swaps the targeted
  nn.Linear layers for LoRALinear (sharing their weight tensors) and freezes everything but the
  adapters; the A matrices are drawn from a generator seeded with `seed`, so an adapter rebuilt
  from the same config starts from the same weights, bit for bit; per_projection splits every
  fused layer the model names (`GPT.fused_projections`);
- `fuse_lora(model)` folds W <- W + scale * B A so inference costs what the base costs;
  `unfuse_lora(model)` puts back the base W kept aside at fuse time, bit for bit.
  Both are explicit calls, never a side effect of train()/eval() (loralib's hidden merge in
  train()/eval() caused real bugs);
- `save_adapter` / `load_adapter`: adapter_model.safetensors + adapter_config.json with r, alpha,
  dropout, targets, the SHA-256 of adapter_model.safetensors (checked at load) and fingerprints
  of the base model's config and of its weights; an adapter
  is applied only to the very base it was trained on (and `GPT.generate` refuses to sample
  from logits that are not finite, as an absurd alpha makes them).
A rank above min(in, out) of a layer adds parameters and no expressiveness, so it is refused.
"""

import math
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minisub.checkpoint import DIGESTS, weights
from minisub.config import check_value
from minisub.files import (FileError, check_digests, digest, file_digests, read_json, read_tensors, tensors_digest,
                           write_json, write_tensors)

DEFAULT_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


class LoRALinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, r: int, alpha: float,
                 dropout: float = 0.0, bias: bool = True, device=None, dtype=None,
                 generator: torch.Generator | None = None, splits: tuple[int, ...] | None = None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if r < 1:
            raise ValueError(f"LoRA rank r must be at least 1, not {r}")
        self.splits = tuple(splits or (out_features,))  # the output sizes of the projections, one adapter each
        if sum(self.splits) != out_features:
            raise ValueError(f"projection sizes {self.splits} do not add up to {out_features} outputs")
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        # (projections * r, in), drawn on the CPU, the generator's device; each (r, in) block as a lone adapter's A
        lora_A = torch.empty(len(self.splits) * r, in_features, dtype=self.weight.dtype)
        nn.init.kaiming_uniform_(lora_A, a=math.sqrt(5), generator=generator)  # as nn.Linear inits its weight
        self.lora_A = nn.Parameter(lora_A.to(self.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(out_features, r, device=device, dtype=dtype))
        self.lora_dropout = nn.Dropout(dropout)
        self.base_weight = None  # the unfused W while fused, else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, r: int, alpha: float, dropout: float = 0.0,
                    generator: torch.Generator | None = None, splits: tuple[int, ...] | None = None) -> "LoRALinear":
        lora = cls(linear.in_features, linear.out_features, r, alpha, dropout, bias=linear.bias is not None,
                   device=linear.weight.device, dtype=linear.weight.dtype, generator=generator, splits=splits)
        lora.weight, lora.bias = linear.weight, linear.bias  # the same tensors, not copies
        return lora

    @property
    def fused(self) -> bool:
        return self.base_weight is not None

    def delta_weight(self) -> torch.Tensor:
        """(out, in): each projection's rows of B times its own block of A."""
        pairs = zip(self.lora_B.split(self.splits), self.lora_A.split(self.r))
        return torch.cat([b @ a for b, a in pairs]) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.fused:
            return y  # the update is inside self.weight
        h = self.lora_dropout(x) @ self.lora_A.T  # (..., projections * r)
        updates = [h_i @ b.T for h_i, b in zip(h.split(self.r, -1), self.lora_B.split(self.splits))]
        return y + (updates[0] if len(updates) == 1 else torch.cat(updates, -1)) * self.scaling  # no copy for one

    @torch.no_grad()
    def fuse(self) -> None:
        if self.fused:
            raise RuntimeError("LoRA layer is already fused")
        self.base_weight = self.weight.detach().clone()
        self.weight.add_(self.delta_weight())

    @torch.no_grad()
    def unfuse(self) -> None:
        if not self.fused:
            raise RuntimeError("LoRA layer is not fused")
        self.weight.copy_(self.base_weight)
        self.base_weight = None


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def add_lora(model: nn.Module, r: int, alpha: float, targets=DEFAULT_TARGETS, dropout: float = 0.0,
             seed: int = 0, per_projection: bool = False) -> list[str]:
    """Replace every nn.Linear whose name ends with one of `targets`; freeze all else. Returns the names.

    The adapters' A matrices come from one CPU generator seeded with `seed`, in module order.
    per_projection: one adapter per projection of each layer in `model.fused_projections()`, as PEFT
    adapts a Llama model's separate q, k, v, gate and up layers; otherwise one per layer, as PEFT
    adapts GPT-2, whose c_attn is fused too.
    """
    splits = model.fused_projections() if per_projection else {}
    chosen = [name for name, m in model.named_modules()
              if type(m) is nn.Linear and any(name == t or name.endswith("." + t) for t in targets)]
    if not chosen:
        raise ValueError(f"no linear layer matches the LoRA targets {list(targets)}")
    if any(name == "lm_head" for name in chosen):
        raise ValueError("lm_head is tied to the token embedding; it cannot take a LoRA adapter")
    for name in chosen:
        linear = model.get_submodule(name)
        smallest = min(linear.in_features, *splits.get(name, (linear.out_features,)))
        if r > smallest:
            raise ValueError(f"LoRA rank {r} exceeds {name}'s smaller side ({linear.in_features} in, "
                             f"{linear.out_features} out in projections of {splits.get(name, 'one')}): "
                             f"at most {smallest}")
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear = getattr(parent, child)
        setattr(parent, child, LoRALinear.from_linear(linear, r, alpha, dropout, generator, splits.get(name)))
    return chosen


def fuse_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.fuse()


def unfuse_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.unfuse()


def config_hash(config) -> str:
    """A fingerprint of the base model's config: an adapter only fits the base it was trained on."""
    return digest(asdict(config))


def base_weights_hash(model: nn.Module) -> str:
    """A fingerprint of the base model's weights, the adapters left out (the model must not be fused)."""
    if any(layer.fused for layer in lora_layers(model).values()):
        raise ValueError("the model's adapters are fused into its weights; unfuse them first")
    return tensors_digest({k: v for k, v in weights(model).items() if ".lora_" not in k})


def save_adapter(folder: str | Path, model: nn.Module, meta: dict | None = None) -> None:
    """Only the adapters, plus what is needed to apply them again."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA layers to save")
    first = next(iter(layers.values()))
    tensors = {}
    for name, layer in layers.items():
        tensors[f"{name}.lora_A"], tensors[f"{name}.lora_B"] = layer.lora_A, layer.lora_B
    folder = Path(folder)
    write_tensors(folder / "adapter_model.safetensors", tensors)
    write_json(folder / "adapter_config.json", {
        "r": first.r, "alpha": first.alpha, "dropout": first.lora_dropout.p,
        "per_projection": any(len(layer.splits) > 1 for layer in layers.values()),
        "targets": sorted(layers), "base_config_hash": config_hash(model.config),
        "base_weights_hash": base_weights_hash(model), **(meta or {}),
        DIGESTS: file_digests(folder, ["adapter_model.safetensors"]),
    })


def load_adapter(model: nn.Module, folder: str | Path) -> dict:
    """Add the saved adapters to a base model (unfused); returns adapter_config.json."""
    folder = Path(folder)
    meta = read_json(folder / "adapter_config.json")
    if meta.get("base_config_hash") != config_hash(model.config):
        raise FileError(f"{folder} was trained for another base model (config hash "
                              f"{meta.get('base_config_hash')}, this model {config_hash(model.config)})")
    if meta.get("base_weights_hash") != base_weights_hash(model):
        raise FileError(f"{folder} was trained on other base weights (weights hash "
                              f"{meta.get('base_weights_hash')}, this model {base_weights_hash(model)})")
    try:
        check_value("r", meta["r"], {"low": 1})
        check_value("alpha", float(meta["alpha"]), {"low": 0.0})
        check_value("dropout", float(meta["dropout"]), {"low": 0.0})
    except (KeyError, TypeError, ValueError) as err:
        raise FileError(f"{folder}/adapter_config.json: {err}") from None
    tensors = read_tensors(folder / "adapter_model.safetensors", model.lm_head.weight.device)
    check_digests(folder, meta.get(DIGESTS, {}))  # adapters written before the record have none
    add_lora(model, meta["r"], meta["alpha"], meta["targets"], meta["dropout"],
             per_projection=bool(meta.get("per_projection", False)))
    layers = lora_layers(model)
    if sorted(layers) != sorted(meta["targets"]):
        raise FileError(f"{folder}: adapter targets {meta['targets']} do not fit this model")
    with torch.no_grad():
        for name, layer in layers.items():
            for part in ("lora_A", "lora_B"):
                saved = tensors.get(f"{name}.{part}")
                if saved is None or saved.shape != getattr(layer, part).shape:
                    raise FileError(f"{folder}: {name}.{part} is missing or has the wrong shape")
                getattr(layer, part).copy_(saved)
    return meta
