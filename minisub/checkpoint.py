"""Checkpoints of minisub's GPT: folders of safetensors and JSON, written through minisub/files.py.

A model checkpoint folder holds
- model.safetensors: the weights (a tied lm_head is stored once, as transformer.wte.weight);
- config.json: {"model": GPTConfig fields, ...} plus whatever the caller records (the training
  config, the step, the loss history), so every checkpoint says what made it, and the SHA-256
  of the files beside it, which `load_checkpoint` checks: a flipped byte is refused by name;
- tokenizer.json, when a tokenizer is given;
- for resumable training, training_state.safetensors (weights, optimizer moments, RNG states,
  with the step and history in its header), written by minisub.training.
config.json is written last, so a folder with one holds a whole checkpoint.
"""

from dataclasses import asdict
from pathlib import Path

import torch

from minisub.files import (FileError, atomic_write, check_digests, file_digests, read_json, read_tensors,
                           write_json, write_tensors)
from minisub.model import GPT, GPTConfig

TIED = "lm_head.weight"
DIGESTS = "sha256"  # config.json's record of {file: SHA-256} for the files written beside it


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with a tied lm_head left out: safetensors stores no tensor twice. An untied head
    (GPTConfig.tie_embeddings False) is a matrix of its own and stays."""
    tied = getattr(getattr(model, "config", None), "tie_embeddings", True)
    return {k: v for k, v in model.state_dict().items() if not (tied and k == TIED)}


def save_checkpoint(folder: str | Path, model: GPT, meta: dict | None = None, tokenizer=None) -> None:
    """Write model.safetensors, tokenizer.json (optional) and config.json, which records their SHA-256, into
    `folder`."""
    folder = Path(folder)
    write_tensors(folder / "model.safetensors", weights(model))
    if tokenizer is not None:
        atomic_write(folder / "tokenizer.json", tokenizer.save)
    held = ["model.safetensors"] + (["tokenizer.json"] if tokenizer is not None else [])
    write_json(folder / "config.json", {"model": asdict(model.config), **(meta or {}),
                                        DIGESTS: file_digests(folder, held)})


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, dict]:
    """Rebuild the model a folder holds, its files checked against the SHA-256 config.json records; returns
    (model, the whole config.json)."""
    folder = Path(folder)
    meta = read_json(folder / "config.json")
    try:
        config = GPTConfig(**meta["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise FileError(f"{folder}/config.json has no valid model config ({err})") from None
    model = GPT(config)  # built on the CPU, where the weights are read, then moved
    load_weights(model, read_tensors(folder / "model.safetensors"), str(folder))
    check_digests(folder, meta.get(DIGESTS, {}))  # after the reads that name truncation and non-finite values;
    # checkpoints written before the record have none
    return model.to(device), meta


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy `state` into `model`, insisting on the same names and shapes (the tied head excepted)."""
    expected = {k: v.shape for k, v in weights(model).items()}
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise FileError(f"{source} does not match the model: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}")
    for name, shape in expected.items():
        if state[name].shape != shape:
            raise FileError(f"{source}: {name} has shape {tuple(state[name].shape)}, "
                                  f"the model expects {tuple(shape)}")
    model.load_state_dict(state, strict=False)
