"""Training under torchrun with DDP: two CPU processes end where one process with the same global batch ends."""

import gc
import os
import subprocess
import sys
import weakref

import pytest
import torch
import torch.distributed as dist
from conftest import Interrupt, stops_after, toy_corpus
from torch.nn.parallel import DistributedDataParallel

from minisub import distributed
from minisub.__main__ import main
from minisub.checkpoint import load_checkpoint
from minisub.data import ExampleSet
from minisub.model import GPT, GPTConfig
from minisub.tokenizer import BPETokenizer
from minisub.training import TrainConfig, train


def torchrun(args, n_processes):
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # two processes on two cores
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={n_processes}", "-m", "minisub", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def failure(run) -> str:
    """What the workers said (their own lines come first in stderr; the launcher's summary says little)."""
    workers = [line for line in run.stderr.splitlines() if "torch/distributed/" not in line]
    return "\n".join(workers[:40])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    (folder / "train.txt").write_text("\n".join(toy_corpus(200)) + "\n")
    assert main(["train-tokenizer", "--input", str(folder / "train.txt"), "--out", str(folder / "tok.json"),
                 "--vocab-size", "1300"]) == 0
    return folder


def train_args(folder, out, *extra):
    return ["train", "--data", str(folder / "train.txt"), "--tokenizer", str(folder / "tok.json"),
            "--out", str(out), "--n-layer", "2", "--n-embd", "32", "--n-head", "2", "--block-size", "32",
            "--steps", "12", "--batch-size", "8", "--warmup-steps", "2", "--log-every", "4",
            "--checkpoint-every", "6", *extra]


def test_two_processes_equal_one_with_the_same_global_batch(setup):
    assert main(train_args(setup, setup / "one")) == 0
    run = torchrun(train_args(setup, setup / "two"), 2)
    assert run.returncode == 0, failure(run)
    assert run.stdout.count("saved ") == 1 and "2 process(es)" in run.stdout  # rank 0 alone speaks
    one, _ = load_checkpoint(setup / "one")
    two, meta = load_checkpoint(setup / "two")
    assert meta["processes"] == 2
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    losses_one = load_checkpoint(setup / "one")[1]["history"]["train"]
    for (step_a, loss_a), (step_b, loss_b) in zip(losses_one, meta["history"]["train"]):
        assert step_a == step_b and loss_a == pytest.approx(loss_b, rel=1e-4)  # the global batch's loss


def test_a_run_stopped_at_step_6_resumes_under_two_processes(setup):
    """One process stops after its step-6 state; two processes resume it and end where one would."""
    tokenizer = BPETokenizer.load(setup / "tok.json")
    data = ExampleSet.from_text_file(setup / "train.txt", tokenizer)
    cfg = TrainConfig(steps=12, batch_size=8, warmup_steps=2, log_every=4, checkpoint_every=6)
    torch.manual_seed(cfg.seed)  # as `python -m minisub train` builds its model
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32))
    out = setup / "resumed"
    with pytest.raises(Interrupt):
        train(model, data, cfg, out, loss_fn=stops_after(6), log=lambda message: None)
    run = torchrun(train_args(setup, out, "--resume"), 2)
    assert run.returncode == 0, failure(run)
    assert "resumed at step 6" in run.stdout
    if not (setup / "one" / "config.json").exists():
        assert main(train_args(setup, setup / "one")) == 0
    for (name, a), b in zip(load_checkpoint(setup / "one")[0].state_dict().items(),
                            load_checkpoint(out)[0].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_a_batch_that_does_not_split_is_one_line(setup):
    run = torchrun(train_args(setup, setup / "bad", "--batch-size", "3"), 2)
    assert run.returncode != 0
    ours = [line for line in run.stderr.splitlines() if line.startswith("minisub train: error")]
    assert ours == ["minisub train: error: --batch-size (3) must be a multiple of the number of processes (2)"]
    assert not (setup / "bad").exists()


def test_teardown_frees_a_ddp_wrapper_that_went_out_of_scope(tmp_path):
    """Regression: a process's DDP wrapper sat in a reference cycle and held gloo's process group into the
    interpreter's shutdown, where a rank of a finished run could abort ("terminate called without an
    active exception"). Here the cycle is built by hand and automatic collection is off, so only
    teardown's own collection frees the wrapper."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)

    def trained_wrapper_in_a_cycle():
        net = DistributedDataParallel(torch.nn.Linear(3, 2))
        net(torch.ones(4, 3)).sum().backward()
        cycle = [net]
        cycle.append(cycle)
        return weakref.ref(net)

    gc.disable()
    try:
        wrapper = trained_wrapper_in_a_cycle()
        assert wrapper() is not None  # the cycle keeps it after its last name is gone
        distributed.teardown()
    finally:
        gc.enable()
        if dist.is_initialized():
            dist.destroy_process_group()
    assert wrapper() is None and not dist.is_initialized()
