"""Training loop, checkpoints and the minisub CLI: round trips, exact resume, clear errors."""

import json
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import Interrupt, stops_after, toy_corpus

from minisub.__main__ import main
from minisub.checkpoint import load_checkpoint, save_checkpoint
from minisub.data import ExampleSet
from minisub.files import FileError
from minisub.model import GPT, GPTConfig
from minisub.training import (STATE_FILE, ResumeMismatch, TrainConfig, lm_loss, load_training_state, lr_at,
                              make_optimizer, train)


def small_setup(tokenizer, seed=0):
    lines = [line.split("\t") for line in toy_corpus(300, seed)]
    pairs = [(tokenizer.encode(p), tokenizer.encode(a)) for p, a in lines]
    data = ExampleSet.from_pairs(pairs, tokenizer)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32))
    return model, data


def quiet(_):
    pass


def test_example_batches_mask_only_answers(tokenizer):
    data = ExampleSet.from_pairs([([5, 6, 7], [8, 9]), ([5], [4])], tokenizer)
    batch = data.batch([0, 1])
    assert batch.idx[0].tolist() == [tokenizer.bos_id, 5, 6, 7, 8, 9]
    assert batch.targets[0].tolist() == [5, 6, 7, 8, 9, tokenizer.eos_id]
    assert batch.loss_mask[0].tolist() == [False, False, False, True, True, True]
    assert batch.loss_mask[1].tolist() == [False, True, True, False, False, False]  # padding is not trained


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_loss_falls_well_below_its_start(tokenizer, precision):
    model, data = small_setup(tokenizer)
    cfg = TrainConfig(steps=150, batch_size=32, lr=3e-3, warmup_steps=10, log_every=150, eval_batches=2,
                      precision=precision)
    start = sum(lm_loss(model, data.sample(32, torch.Generator().manual_seed(i))).item() for i in range(3)) / 3
    train(model, data, cfg, log=quiet)
    end = sum(lm_loss(model, data.sample(32, torch.Generator().manual_seed(i))).item() for i in range(3)) / 3
    assert end < 0.35 * start, (start, end)


def test_schedule_and_weight_decay_groups(tokenizer):
    cfg = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55) and lr_at(99, cfg) == pytest.approx(0.1, abs=1e-3)
    model, _ = small_setup(tokenizer)
    decay, no_decay = (set(map(id, g["params"])) for g in make_optimizer(model, cfg).param_groups)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(".weight" in names[i] and "ln_" not in names[i] and "wte" not in names[i] and "wpe" not in names[i]
               for i in decay)
    assert {names[i] for i in no_decay} >= {"transformer.wte.weight", "transformer.wpe.weight",
                                            "transformer.ln_f.weight"}


@settings(max_examples=10, deadline=None)
@given(st.floats(1e-4, 1e-1), st.integers(0, 2**31 - 1))
def test_an_sgd_step_is_the_weights_minus_lr_times_their_gradient(tokenizer, lr, seed):
    model, data = small_setup(tokenizer, seed % 5)
    cfg = TrainConfig(steps=1, batch_size=8, lr=lr, min_lr=lr, warmup_steps=0, grad_clip=0.0, optimizer="sgd",
                      seed=seed, pack=False, log_every=1)
    batch = data.sample_rows(8, torch.Generator().manual_seed(seed))  # the rows train() draws first
    model.zero_grad()
    lm_loss(model, data.batch(batch)).backward()
    expected = {n: (p - lr * p.grad).detach().clone() for n, p in model.named_parameters()}
    assert isinstance(make_optimizer(model, cfg), torch.optim.SGD)
    train(model, data, cfg, log=quiet)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, expected[n], rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip(tokenizer, tmp_path):
    model, _ = small_setup(tokenizer)
    save_checkpoint(tmp_path, model, {"note": "x"}, tokenizer)
    loaded, meta = load_checkpoint(tmp_path)
    assert meta["note"] == "x" and meta["model"]["n_layer"] == 2
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert (tmp_path / "tokenizer.json").exists() and not list(tmp_path.glob(".*"))  # no temp files left


def test_truncated_or_mismatched_checkpoints_are_clear_errors(tokenizer, tmp_path):
    model, _ = small_setup(tokenizer)
    save_checkpoint(tmp_path, model, tokenizer=tokenizer)
    weights = tmp_path / "model.safetensors"
    payload = weights.read_bytes()
    weights.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(FileError, match="truncated or corrupt"):
        load_checkpoint(tmp_path)
    weights.write_bytes(payload)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["n_layer"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileError, match="does not match"):
        load_checkpoint(tmp_path)
    config["model"]["n_embd"] = 48
    config["model"]["n_layer"] = 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileError, match="shape"):
        load_checkpoint(tmp_path)
    config["model"]["n_head"] = 0
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileError, match="n_head must be at least 1"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_resumed_run_ends_with_identical_weights(tokenizer, tmp_path, dropout):
    cfg = TrainConfig(steps=12, batch_size=8, checkpoint_every=5, log_every=100, warmup_steps=3)
    _, data = small_setup(tokenizer)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32,
                       dropout=dropout)
    torch.manual_seed(0)
    reference, stopped = GPT(config), GPT(config)
    stopped.load_state_dict(reference.state_dict())
    train(reference, data, cfg, log=quiet)

    with pytest.raises(Interrupt):
        train(stopped, data, cfg, tmp_path, loss_fn=stops_after(5), log=quiet)
    torch.manual_seed(99)
    resumed = GPT(config)  # other weights: everything must come from the saved state
    train(resumed, data, cfg, tmp_path, resume=True, log=quiet)
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10), st.integers(0, 2**31 - 1))
def test_a_run_stopped_with_until_and_continued_from_its_state_with_its_own_seed_is_the_run_never_stopped(
        tokenizer, tmp_path_factory, fork_step, seed):
    cfg = TrainConfig(steps=10, batch_size=8, log_every=100, warmup_steps=3, seed=seed)
    _, data = small_setup(tokenizer)
    folder = tmp_path_factory.mktemp("state")
    reference, stopped, continued = (small_setup(tokenizer)[0] for _ in range(3))
    train(reference, data, cfg, log=quiet)
    train(stopped, data, cfg, folder, until=fork_step, log=quiet)
    history = train(continued, data, cfg, fork_from=folder, log=quiet)
    assert "forked" not in history
    for (name, a), b in zip(reference.state_dict().items(), continued.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_fork_has_its_parents_state_and_its_own_data_order_from_the_fork_on(tokenizer, tmp_path):
    cfg = TrainConfig(steps=10, batch_size=8, log_every=100, warmup_steps=3, seed=1)
    _, data = small_setup(tokenizer)
    parent, child, other_child = (small_setup(tokenizer)[0] for _ in range(3))
    train(parent, data, cfg, tmp_path, until=6, log=quiet)
    history = train(child, data, replace(cfg, seed=2), fork_from=tmp_path, log=quiet)
    train(other_child, data, replace(cfg, seed=3), fork_from=tmp_path, log=quiet)
    assert history["forked"] == [{"step": 6, "seed": 2}]
    assert not torch.equal(child.lm_head.weight, other_child.lm_head.weight)
    # the same as resuming the parent's state and drawing batches from the child's seed from step 6 on
    by_hand = small_setup(tokenizer)[0]
    opt, generator = make_optimizer(by_hand, cfg), torch.Generator()
    load_training_state(tmp_path, by_hand, opt, generator, {}, allow_changes=True)
    generator.manual_seed(2)
    for step in range(6, 10):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = lm_loss(by_hand, data.batch(data.sample_rows(8, generator), by_hand.config.block_size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(by_hand.parameters(), cfg.grad_clip)
        opt.step()
    for (name, a), b in zip(child.state_dict().items(), by_hand.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_a_fork_that_changes_more_than_the_seed_or_starts_from_nothing_is_refused(tokenizer, tmp_path):
    cfg = TrainConfig(steps=6, batch_size=8, log_every=100, warmup_steps=1)
    model, data = small_setup(tokenizer)
    train(model, data, cfg, tmp_path / "parent", until=3, log=quiet)
    with pytest.raises(ResumeMismatch, match="lr"):
        train(model, data, replace(cfg, seed=5, lr=1e-2), fork_from=tmp_path / "parent", log=quiet)
    with pytest.raises(ValueError, match="no training state"):
        train(model, data, cfg, fork_from=tmp_path / "nothing", log=quiet)
    with pytest.raises(ValueError, match="until: step 7"):
        train(model, data, cfg, until=7, log=quiet)


def test_training_state_is_one_file_and_a_crash_while_writing_keeps_the_previous_one(tokenizer, tmp_path,
                                                                                     monkeypatch):
    model, data = small_setup(tokenizer)
    cfg = TrainConfig(steps=4, batch_size=4, checkpoint_every=2, log_every=100, warmup_steps=1)
    train(model, data, cfg, tmp_path, log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]
    before = (tmp_path / STATE_FILE).read_bytes()

    import minisub.files as files

    def dies_halfway(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "save_file", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        train(model, data, TrainConfig(steps=6, batch_size=4, checkpoint_every=2, log_every=100, warmup_steps=1),
              tmp_path, resume=True, log=quiet, allow_changes=True)  # 2 more steps than saved
    assert (tmp_path / STATE_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]  # no temporary file left


def make_checkpoint(tmp_path):
    data = tmp_path / "train.txt"
    data.write_text("\n".join(toy_corpus(200)) + "\n")
    tok, ckpt = tmp_path / "tok.json", tmp_path / "ckpt"
    assert main(["train-tokenizer", "--input", str(data), "--out", str(tok), "--vocab-size", "1300"]) == 0
    assert main(["train", "--data", str(data), "--tokenizer", str(tok), "--out", str(ckpt),
                 "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "32", *SHORT]) == 0
    return data, tok, ckpt


SHORT = ["--steps", "20", "--batch-size", "8", "--log-every", "10", "--warmup-steps", "2"]


def test_cli_end_to_end(tmp_path, capsys):
    data, tok, ckpt = make_checkpoint(tmp_path)
    lora = tmp_path / "lora"
    assert main(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(lora),
                 "--lora-r", "4", *SHORT]) == 0
    assert (lora / "adapter_model.safetensors").exists()
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(ckpt), "--adapter", str(lora), "--prompt", "continue : 100, 101",
                 "--prompt", "what", "--numbers-only", "--max-new-tokens", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    numbers = lines[0].split("-> ")[1].strip("'")
    assert numbers.isdigit()  # --numbers-only: nothing but number tokens
    config = json.loads((ckpt / "config.json").read_text())
    assert config["train_config"]["steps"] == 20 and config["history"]["train"]


def test_finetune_twice_gives_the_same_adapter_bit_for_bit(tmp_path):
    data, _, ckpt = make_checkpoint(tmp_path)
    for name in ("a", "b"):
        torch.manual_seed(len(name) * 7 + ord(name))  # a different global RNG each time must not matter
        assert main(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(tmp_path / name),
                     "--lora-r", "4", *SHORT]) == 0
    assert (tmp_path / "a" / "adapter_model.safetensors").read_bytes() == \
        (tmp_path / "b" / "adapter_model.safetensors").read_bytes()


def test_an_output_holding_a_run_is_refused_unless_resumed_or_forced(tmp_path, capsys):
    data, tok, ckpt = make_checkpoint(tmp_path)
    weights = (ckpt / "model.safetensors").read_bytes()
    train_again = ["train", "--data", str(data), "--tokenizer", str(tok), "--out", str(ckpt),
                   "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "32", *SHORT]
    capsys.readouterr()
    assert main(train_again + ["--seed", "3"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (ckpt / "model.safetensors").read_bytes() == weights  # untouched
    assert main(train_again + ["--resume"]) == 0  # at its last step already: nothing changes
    assert (ckpt / "model.safetensors").read_bytes() == weights
    assert main(train_again + ["--seed", "3", "--force"]) == 0
    assert (ckpt / "model.safetensors").read_bytes() != weights
    empty = tmp_path / "empty"
    assert main(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(empty), "--resume"]) == 2
    assert "holds no training state" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["sample", "--checkpoint", "/nonexistent", "--prompt", "x"], "missing"),
    (["train"], "required"),
    (["bogus"], "invalid choice"),
    (["train", "--data", "x", "--tokenizer", "/nonexistent.json", "--out", "o"], "cannot load tokenizer"),
    (["train", "--data", "x", "--tokenizer", "t", "--out", "o", "--n-head", "0"], "--n-head must be at least 1"),
    (["train", "--data", "x", "--tokenizer", "t", "--out", "o", "--n-embd", "0"], "--n-embd must be at least 1"),
    (["train", "--data", "x", "--tokenizer", "t", "--out", "o", "--n-layer", "-1"], "--n-layer must be at least 1"),
    (["train", "--data", "x", "--tokenizer", "t", "--out", "o", "--n-embd", "30"], "multiple of n_head"),
    (["train", "--data", "x", "--tokenizer", "t", "--out", "o", "--checkpoint-every", "0"],
     "--checkpoint-every must be at least 1"),
    (["train", "--data", "x", "--tokenizer", "t", "--out", "o", "--min-lr", "1"], "--min-lr (1.0) must not exceed"),
    (["train", "--data", "x", "--tokenizer", "t", "--out", "o", "--precision", "fp8"], "--precision must be one of"),
    (["finetune", "--checkpoint", "c", "--data", "x", "--out", "o", "--lora-r", "-1"], "--lora-r must be at least 0"),
    (["finetune", "--checkpoint", "c", "--data", "x", "--out", "o", "--lora-targets"], "--lora-targets needs"),
    (["sample", "--checkpoint", "c", "--prompt", "x", "--top-k", "0"], "--top-k must be at least 1"),
    (["sample", "--checkpoint", "c", "--prompt", "x", "--max-new-tokens", "-2"], "--max-new-tokens must be at least 0"),
    (["sample", "--checkpoint", "c", "--prompt", "x", "--temperature", "-1"], "--temperature must be at least 0"),
    (["sample", "--checkpoint", "c", "--prompt", "x", "--temperature", "inf"], "--temperature must be a finite"),
    (["sample", "--checkpoint", "c", "--prompt", "x", "--temperature", "nan"], "--temperature must be a finite"),
    (["sample", "--checkpoint", "c", "--prompt", "x", "--top-p", "0"], "--top-p must be above 0"),
    (["sample", "--checkpoint", "c", "--prompt", "x", "--top-p", "1.5"], "--top-p must be at most 1"),
    (["sample", "--checkpoint", "c", "--prompt", "x", "--min-p", "1"], "--min-p must be below 1"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", "c", "--prompt", "x", "--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert "--device 'cuda' asks for CUDA" in err and len(err.splitlines()) == 1


def test_an_output_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    data, tok, _ = make_checkpoint(tmp_path)
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file", tmp_path / "file" / "below"):
        assert main(["train", "--data", str(data), "--tokenizer", str(tok), "--out", str(out), "--steps", "100000",
                     "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "32"]) == 2
        err = capsys.readouterr().err.strip()
        assert str(tmp_path / "file") in err and len(err.splitlines()) == 1


def test_every_name_minisub_exports_is_that_name_not_a_submodule():
    """Bug: `from minisub import TrainConfig, train` (the README's line) gave the module minisub.train, not the
    function: importing a submodule sets the package attribute of its name, which hid the export."""
    import types

    import minisub
    for name in minisub.__all__:
        exported = getattr(minisub, name)
        assert not isinstance(exported, types.ModuleType) and exported.__name__ == name, name
