"""Checkpoints as folders of safetensors and JSON: no pickle anywhere.

A model checkpoint folder holds
- model.safetensors: the weights (the tied lm_head is stored once, as transformer.wte.weight);
- config.json: {"model": GPTConfig fields, ...} plus whatever the caller records (the training
  config, the step, the loss history), so every checkpoint says what made it;
- tokenizer.json, when a tokenizer is given;
- for resumable training, optimizer.safetensors + trainer_state.json (optimizer moments, step,
  RNG states), written by minisub.train.
Every file is written to a temporary name and renamed into place, so a crash mid-write never
leaves a half-written file under the real name; config.json is written last.
"""

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from minisub.model import GPT, GPTConfig

TIED = "lm_head.weight"


class CheckpointError(Exception):
    """A missing, truncated or mismatched checkpoint, with a one-line message for the user."""


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename tmp_path to path (same folder, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; checkpoints are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None


def read_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is truncated or corrupt ({err})") from None


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with the tied lm_head left out: safetensors stores no tensor twice."""
    return {k: v for k, v in model.state_dict().items() if k != TIED}


def save_checkpoint(folder: str | Path, model: GPT, meta: dict | None = None, tokenizer=None) -> None:
    """Write model.safetensors, tokenizer.json (optional) and config.json into `folder`."""
    folder = Path(folder)
    write_tensors(folder / "model.safetensors", weights(model))
    if tokenizer is not None:
        atomic_write(folder / "tokenizer.json", tokenizer.save)
    write_json(folder / "config.json", {"model": asdict(model.config), **(meta or {})})


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, dict]:
    """Rebuild the model a folder holds; returns (model, the whole config.json)."""
    folder = Path(folder)
    meta = read_json(folder / "config.json")
    try:
        config = GPTConfig(**meta["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder}/config.json has no valid model config ({err})") from None
    model = GPT(config)
    load_weights(model, read_tensors(folder / "model.safetensors", device), str(folder))
    return model.to(device), meta


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy `state` into `model`, insisting on the same names and shapes (the tied head excepted)."""
    expected = {k: v.shape for k, v in weights(model).items()}
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise CheckpointError(f"{source} does not match the model: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unexpected)[:3]}")
    for name, shape in expected.items():
        if state[name].shape != shape:
            raise CheckpointError(f"{source}: {name} has shape {tuple(state[name].shape)}, "
                                  f"the model expects {tuple(shape)}")
    model.load_state_dict(state, strict=False)
