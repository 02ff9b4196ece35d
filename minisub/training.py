"""The training loop: AdamW, warm-up + cosine schedule, clipping, eval, resumable checkpoints.

Used for pretraining (`python -m minisub train`), fine-tuning, full or LoRA
(`python -m minisub finetune`), and by the experiments, which pass their own loss function.
- AdamW decays only matrices that are not embeddings: no weight decay on norms, biases or
  embeddings. Only parameters with requires_grad train (LoRA freezes the rest).
- Linear warm-up to `lr`, then cosine decay to `min_lr` at the last step.
- Every `checkpoint_every` steps and at the end, training_state.safetensors in the output
  folder holds everything a resumed run needs (weights, AdamW moments, both RNG states, and in
  its header the step and the history), so a run stopped at step k and resumed ends with the
  same weights as one that never stopped. It is one file renamed into place: a kill at any
  moment leaves either the previous state or the new one, never a mix. The state also records
  the run's setup (the training config, a fingerprint of the data, the model's config and its
  adapters); a resume that would change any of it is refused, naming the fields, unless the
  caller allows it, and then the change is kept in the history.
- A run may stop early (`until`), its state written there, and a later run may start from that
  state in another folder (`fork_from`): with the same seed it is the run as if never stopped;
  with another seed it is a fork, the same weights, moments and schedule position but its own
  data order from there on (experiments/forks/).
- The first step whose loss or gradient norm is not finite stops training with a
  `TrainingDiverged` error that names the step: a diverged model is never returned as trained.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from minisub import distributed
from minisub.checkpoint import load_weights, weights
from minisub.config import ConfigError, check, option
from minisub.data import Batch, ExampleSet
from minisub.files import FileError, read_tensor_file, tensors_digest, write_tensors
from minisub.lora import lora_layers
from minisub.precision import autocast
from minisub.seeds import MAX_SEED, derive_seed

LossFn = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass
class TrainConfig:
    steps: int = option(2000, "optimizer steps", low=1)
    batch_size: int = option(64, "examples per step", low=1)
    lr: float = option(3e-3, "peak learning rate", low=0.0)
    min_lr: float = option(3e-4, "learning rate at the last step (cosine decay)", low=0.0)
    warmup_steps: int = option(100, "linear warm-up steps", low=0)
    optimizer: str = option("adamw", "adamw, or sgd (plain gradient descent: no momentum, no weight decay)",
                            choices=("adamw", "sgd"))
    weight_decay: float = option(0.1, "AdamW weight decay on matrices (not on norms, biases, embeddings)", low=0.0)
    beta1: float = option(0.9, "AdamW beta1", low=0.0)
    beta2: float = option(0.95, "AdamW beta2", low=0.0)
    grad_clip: float = option(1.0, "gradient-norm clip (0: off)", low=0.0)
    eval_every: int = option(250, "steps between evaluations on the validation set", low=1)
    eval_batches: int = option(8, "batches per evaluation", low=1)
    checkpoint_every: int = option(500, "steps between resumable training states (one is always "
                                        "written at the end)", low=1)
    log_every: int = option(50, "steps between progress lines", low=1)
    seed: int = option(0, "seed for init, batches and dropout", low=0, high=MAX_SEED)
    pack: bool = option(True, "pack several examples into each row, attention kept inside each: the same "
                              "loss on far fewer padded positions")
    device: str = option("cpu", "torch device (cpu or cuda)", device=True)
    precision: str = option("fp32", "fp32 (exact), or bf16 (autocast matmuls; faster on some CPUs)",
                            choices=("fp32", "bf16"))

    # fields that change no weight: a resume may change them freely
    BOOKKEEPING = ("eval_every", "eval_batches", "checkpoint_every", "log_every", "device")

    def __post_init__(self):
        check(self)
        if self.min_lr > self.lr:
            raise ConfigError("min_lr", f"({self.min_lr}) must not exceed lr ({self.lr})")
        for name in ("beta1", "beta2"):
            if getattr(self, name) >= 1:
                raise ConfigError(name, f"must be below 1, not {getattr(self, name)}")


class TrainingDiverged(ValueError):
    """The loss or the gradient stopped being finite; the message names the step."""


class ResumeMismatch(ValueError):
    """A resume asked for another setup than the saved run's; the message names what differs."""


def lm_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Next-token cross-entropy over the vocabulary on the masked (answer) positions."""
    return model(batch.idx, batch.targets, batch.loss_mask, segments=batch.segments)[1]


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2 and id(p) not in embeddings]
    no_decay = [p for p in trainable if p.dim() < 2 or id(p) in embeddings]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)


@torch.no_grad()
def evaluate(model: nn.Module, data: ExampleSet, cfg: TrainConfig, loss_fn: LossFn = lm_loss) -> float:
    """Mean loss over the same `eval_batches` batches every time (a fixed seed picks them)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(derive_seed(cfg.seed, "eval batches"))
    losses = [loss_fn(model, data.sample(cfg.batch_size, generator).to(cfg.device)).item()
              for _ in range(cfg.eval_batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


STATE_FILE = "training_state.safetensors"


def setup_of(model: nn.Module, cfg: TrainConfig, data: ExampleSet) -> dict:
    """What a run's weights depend on besides its seed's randomness: what a resume must keep."""
    adapters = {name: [layer.r, layer.alpha, layer.lora_dropout.p] for name, layer in lora_layers(model).items()}
    config = {k: v for k, v in asdict(cfg).items() if k not in TrainConfig.BOOKKEEPING}
    return {"train_config": config, "data": data.fingerprint(), "model": asdict(model.config), "lora": adapters}


def differences(saved: dict, now: dict, prefix: str = "") -> dict[str, list]:
    """{field: [saved value, value now]} for every leaf that differs between two nested dicts."""
    changed = {}
    for name in sorted(set(saved) | set(now)):
        a, b = saved.get(name), now.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            changed |= differences(a, b, f"{prefix}{name}.")
        elif a != b:
            changed[prefix + name] = [a, b]
    return changed


def save_training_state(folder: Path, model: nn.Module, opt: torch.optim.Optimizer,
                        generator: torch.Generator, step: int, history: dict, setup: dict) -> None:
    opt_state = opt.state_dict()
    tensors = {f"model.{k}": v for k, v in weights(model).items()}
    for index, state in opt_state["state"].items():
        tensors.update({f"optim.{index}.{name}": value for name, value in state.items()})
    tensors["rng.data"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    header = {"step": step, "history": history, "setup": setup, "param_groups": opt_state["param_groups"],
              "tensors_sha256": tensors_digest(tensors, 64)}  # checked at resume: a flipped byte is refused
    write_tensors(folder / STATE_FILE, tensors, {"training_state": json.dumps(header)})


def load_training_state(folder: Path, model: nn.Module, opt: torch.optim.Optimizer,
                        generator: torch.Generator, setup: dict, allow_changes: bool) -> tuple[int, dict]:
    """Restore a saved run into model, opt and generator; returns (step, history). A saved setup
    other than `setup` is a ResumeMismatch unless allow_changes, which records it in the history."""
    path = folder / STATE_FILE
    tensors, header = read_tensor_file(path)
    if "training_state" not in header:
        raise FileError(f"{path} holds no training state")
    meta = json.loads(header["training_state"])
    if "tensors_sha256" in meta and tensors_digest(tensors, 64) != meta["tensors_sha256"]:  # older states have none
        raise FileError(f"{path} is damaged or was changed: its tensors do not match the SHA-256 in its header")
    changed = differences(meta.get("setup", {}), json.loads(json.dumps(setup)))
    if changed and not allow_changes:
        listed = "; ".join(f"{name} {a!r} -> {b!r}" for name, (a, b) in changed.items())
        raise ResumeMismatch(f"the run in {folder} was made with other settings ({listed}); resume with the "
                             "same ones, or allow the change (--force)")
    if changed:
        meta["history"].setdefault("resumed_with_changes", []).append({"step": meta["step"], "changed": changed})
    load_weights(model, {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    groups = [group | {"betas": tuple(group["betas"])} for group in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
    generator.set_state(tensors["rng.data"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta["step"], meta["history"]


def fork(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, generator: torch.Generator,
         setup: dict) -> tuple[int, dict]:
    """Restore the training state in `folder` as `load_training_state` does; where `setup`'s seed is not the
    state's, reseed the data order and dropout with it. Any other difference of setup is a ResumeMismatch."""
    if not has_training_state(folder):
        raise ValueError(f"fork_from: no training state in {folder}")
    header = read_tensor_file(folder / STATE_FILE)[1]
    if "training_state" not in header:
        raise FileError(f"{folder / STATE_FILE} holds no training state")
    saved_seed = json.loads(header["training_state"])["setup"]["train_config"]["seed"]
    seed = setup["train_config"]["seed"]
    as_saved = json.loads(json.dumps(setup))
    as_saved["train_config"]["seed"] = saved_seed
    step, history = load_training_state(folder, model, opt, generator, as_saved, allow_changes=False)
    if seed != saved_seed:
        generator.manual_seed(seed)
        torch.manual_seed(seed)
        history.setdefault("forked", []).append({"step": step, "seed": seed})
    return step, history


def has_training_state(folder: str | Path) -> bool:
    return (Path(folder) / STATE_FILE).is_file()


def train(model: nn.Module, train_set: ExampleSet, cfg: TrainConfig, out_dir: str | Path | None = None,
          val_set: ExampleSet | None = None, loss_fn: LossFn = lm_loss, resume: bool = False,
          log: Callable[[str], None] = print,
          on_step: Callable[[int, nn.Module], None] | None = None, allow_changes: bool = False,
          until: int | None = None, fork_from: str | Path | None = None) -> dict:
    """Train `model` in place for cfg.steps steps; returns the history of train and eval losses.

    on_step(step, model), if given, runs after every optimizer step (e.g. to track a metric).
    resume: continue from the training state in out_dir; allow_changes: even if its setup differs.
    until: stop after this step of the cfg.steps-step schedule (the state is written there, in out_dir).
    fork_from: start from the training state in that folder (weights, moments, step, history); if it was
    made with another seed than cfg.seed, the data order (and dropout) from there on are cfg.seed's own:
    a fork. Its setup may differ from cfg's in the seed alone.
    Under torchrun (minisub/distributed.py) each process trains on its slice of every batch;
    the loss function must then call the model itself (its forward), which DDP wraps, and
    average over `batch.loss_mask` positions, so that weighting each slice by its share of those
    positions makes the step equal to one process's on the whole batch.
    """
    out_dir = Path(out_dir) if out_dir is not None else None
    procs, device = distributed.setup(cfg.device)
    distributed.check_split(cfg.batch_size, procs)
    torch.manual_seed(cfg.seed)  # dropout
    generator = torch.Generator().manual_seed(cfg.seed)  # batch sampling: the same on every process
    model.to(device).train()
    net = DistributedDataParallel(model) if procs.distributed else model  # what the loss calls
    log = log if procs.is_main else (lambda message: None)
    opt = make_optimizer(model, cfg)
    trainable = [p for group in opt.param_groups for p in group["params"]]
    start, history = 0, {"train": [], "eval": []}
    setup = setup_of(model, cfg, train_set) if out_dir is not None or fork_from is not None else {}
    if resume:
        if out_dir is None or not has_training_state(out_dir):
            raise ValueError(f"resume: no training state in {out_dir}")
        start, history = load_training_state(out_dir, model, opt, generator, setup, allow_changes)
        log(f"resumed at step {start}")
    elif fork_from is not None:
        start, history = fork(Path(fork_from), model, opt, generator, setup)
        log(f"started at step {start} from {fork_from}")
    end = cfg.steps if until is None else until
    if not start <= end <= cfg.steps:
        raise ValueError(f"until: step {end} is not between the start ({start}) and the last step ({cfg.steps})")
    pack_to = model.config.block_size if cfg.pack else None
    tokens, clock = 0, time.perf_counter()
    for step in range(start, end):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        rows = distributed.share(train_set.sample_rows(cfg.batch_size, generator), procs)
        batch = train_set.batch(rows, pack_to).to(device)
        with autocast(device, cfg.precision):
            loss = loss_fn(net, batch)
        if procs.distributed:  # DDP averages gradients over processes: weight by this slice's share
            trained = batch.loss_mask.sum().to(loss.dtype)
            total = distributed.all_sum(trained, procs)
            loss = loss * trained * procs.world_size / total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        done = step + 1
        grad_norm = nn.utils.get_total_norm([p.grad for p in trainable if p.grad is not None])
        if not torch.isfinite(loss.detach() + grad_norm):  # one check, one host sync, for both
            raise TrainingDiverged(f"training diverged at step {done}: loss {loss.item():.4g}, gradient norm "
                                   f"{grad_norm.item():.4g}; a lower learning rate (lr {cfg.lr:g}) may help")
        if cfg.grad_clip > 0:
            nn.utils.clip_grads_with_norm_(trainable, cfg.grad_clip, grad_norm)
        opt.step()
        tokens += batch.idx.numel() * procs.world_size
        if on_step is not None:
            on_step(done, model)
        if done % cfg.log_every == 0 or done == cfg.steps:
            value = distributed.all_sum(loss.detach(), procs).item() / procs.world_size
            history["train"].append([done, value])
            log(f"step {done:>6}/{cfg.steps}  loss {value:.4f}  lr {lr_at(step, cfg):.2e}  "
                f"{tokens / (time.perf_counter() - clock):,.0f} tok/s")
            tokens, clock = 0, time.perf_counter()
        if val_set is not None and (done % cfg.eval_every == 0 or done == cfg.steps):
            history["eval"].append([done, evaluate(model, val_set, cfg, loss_fn)])
            log(f"step {done:>6}  eval loss {history['eval'][-1][1]:.4f}")
        if out_dir is not None and (done % cfg.checkpoint_every == 0 or done == end) and procs.is_main:
            save_training_state(out_dir, model, opt, generator, done, history, setup)
    if out_dir is not None and start == end and procs.is_main:  # no step taken: the state is where it started
        save_training_state(out_dir, model, opt, generator, end, history, setup)
    distributed.barrier(procs)  # nobody reads the final state before rank 0 has written it
    model.eval()
    return history
