"""Training on several processes with PyTorch's DistributedDataParallel, launched by torchrun.

`python -m minisub train` and `minisub.training.train` run unchanged under
`torchrun --nproc_per_node N`: torchrun sets RANK, LOCAL_RANK and WORLD_SIZE, and `setup`
joins the process group (gloo on CPU, nccl on CUDA, one GPU per process). The batch size stays
the *global* batch: every rank draws the same batch indices and trains on its own slice, DDP
averages the gradients, and the loss is weighted so that the result equals one process
training on the whole batch (see `minisub/training.py`). Only rank 0 logs and writes files.
Without torchrun there is one process and nothing here does anything.
"""

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from minisub.config import ConfigError


@dataclass(frozen=True)
class Processes:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> tuple[Processes, str]:
    """Join torchrun's process group if launched by it (once per process); returns the processes
    and this rank's device ('cuda' becomes 'cuda:LOCAL_RANK')."""
    procs = Processes(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                      int(os.environ.get("LOCAL_RANK", 0)))
    if not procs.distributed:
        return procs, device
    if torch.device(device).type == "cuda":
        device = f"cuda:{procs.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return procs, device


def teardown() -> None:
    """Leave the process group at the end of a run, every rank together. DDP's wrapper can sit in a
    reference cycle, and then holds the group until the garbage collector runs; left to the interpreter's
    shutdown, gloo's threads are torn down under it and a rank can abort ("terminate called without
    an active exception"), failing a run that trained and saved."""
    if dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def barrier(procs: Processes) -> None:
    if procs.distributed:
        dist.barrier()


def all_sum(value: torch.Tensor, procs: Processes) -> torch.Tensor:
    """The sum of `value` over all processes (itself with one process)."""
    if procs.distributed:
        value = value.clone()
        dist.all_reduce(value)
    return value


def check_split(batch_size: int, procs: Processes) -> None:
    """The global batch must split evenly over the processes."""
    if batch_size % procs.world_size:
        raise ConfigError("batch_size", f"({batch_size}) must be a multiple of the number of processes "
                                        f"({procs.world_size})")


def share(rows: list[int], procs: Processes) -> list[int]:
    """This rank's slice of a global batch's rows (the batch size is a multiple of the world size)."""
    per_rank = len(rows) // procs.world_size
    return rows[procs.rank * per_rank:(procs.rank + 1) * per_rank]
