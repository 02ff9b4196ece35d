"""Regression tests for failures that once lost data, gave silently wrong results or ended in a
traceback; each test names the bug it guards. The rule they share: a bad input or a diverged run
ends with one line and a non-zero exit, and nothing already written is lost."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import toy_corpus
from hypothesis import given
from hypothesis import strategies as st

from experiments.core.cache import DONE, StageCache
from experiments.core.zoo import ExperimentConfig
from experiments.tasks.coding import code_rejection
from minisub.__main__ import LOCK_FILE, main
from minisub.checkpoint import load_checkpoint, save_checkpoint
from minisub.config import ConfigError
from minisub.data import ExampleSet
from minisub.files import FileError, clean_temporaries, digest, read_tensor_file, write_tensors
from minisub.locks import exclusive
from minisub.log import machine
from minisub.model import GPT, GPTConfig
from minisub.training import STATE_FILE, TrainConfig, TrainingDiverged, train
from toy_mnist.experiment import ToyConfig

ARCH = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "32"]
SHORT = ["--steps", "20", "--batch-size", "8", "--log-every", "10", "--warmup-steps", "2"]


@pytest.fixture
def files(tmp_path):
    """A training file, a tokenizer and a trained checkpoint (20 steps) in tmp_path."""
    data, tok, ckpt = tmp_path / "train.txt", tmp_path / "tok.json", tmp_path / "ckpt"
    data.write_text("\n".join(toy_corpus(200)) + "\n")
    assert main(["train-tokenizer", "--input", str(data), "--out", str(tok), "--vocab-size", "1300"]) == 0
    assert main(["train", "--data", str(data), "--tokenizer", str(tok), "--out", str(ckpt), *ARCH, *SHORT]) == 0
    return data, tok, ckpt


def one_line_error(argv, capsys) -> str:
    """Run the CLI, insist on exit status 2 and exactly one line on stderr; return that line."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def train_argv(data, tok, out, *extra):
    return ["train", "--data", str(data), "--tokenizer", str(tok), "--out", str(out), *ARCH, *SHORT, *extra]


# 1. non-finite values
def test_a_diverging_run_stops_at_its_first_non_finite_step_and_saves_nothing(files, tmp_path, capsys):
    """Bug: lr 1e6 logged nan on every line, saved all-NaN weights and exited 0."""
    data, tok, _ = files
    out = tmp_path / "diverged"
    err = one_line_error(train_argv(data, tok, out, "--lr", "1e6", "--min-lr", "0", "--warmup-steps", "0",
                                    "--checkpoint-every", "1"), capsys)
    assert "diverged at step" in err and "lr 1e+06" in err
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    for path in out.glob("*.safetensors"):  # training states written before the divergence read back
        read_tensor_file(path)


def test_a_non_finite_gradient_stops_training_even_when_the_loss_is_finite(tokenizer):
    """The loss can still be finite on the step whose gradient overflows: both are checked."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32))
    data = ExampleSet.from_pairs([(tokenizer.encode("a b"), tokenizer.encode("c"))] * 4, tokenizer)

    def finite_loss_infinite_gradient(m, batch):  # loss ~1e37; two gradient entries of 3e38: norm > fp32's max
        return (m.transformer.wte.weight[0, :2].sum() + 1) * 3e38
    with pytest.raises(TrainingDiverged, match=r"step 1: loss \S+e\+3\d, gradient norm inf"):
        train(model, data, TrainConfig(steps=3, batch_size=2, warmup_steps=0, grad_clip=0.0, log_every=1),
              loss_fn=finite_loss_infinite_gradient, log=lambda m: None)


def test_weights_that_are_not_finite_are_neither_written_nor_read(files, tmp_path):
    """Bug: a model.safetensors with 250 values overwritten by NaN (same size) loaded silently."""
    _, _, ckpt = files
    weights = ckpt / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")  # the header's length, then the header, then the data
    raw[start + 64:start + 64 + 4 * 250] = torch.full((250,), float("nan")).numpy().tobytes()
    weights.write_bytes(bytes(raw))
    with pytest.raises(FileError, match=f"{weights}.*not finite"):
        load_checkpoint(ckpt)
    with pytest.raises(FileError, match="not writing .*x.safetensors: w holds values that are not finite"):
        write_tensors(tmp_path / "x.safetensors", {"w": torch.tensor([1.0, float("inf")])})
    assert not list(tmp_path.glob("*x.safetensors*"))


def test_an_adapter_with_an_absurd_alpha_is_refused_before_sampling(files, tmp_path, capsys):
    """Bug: an adapter whose alpha was edited to 1e30 sampled '999999999999'."""
    data, _, ckpt = files
    lora = tmp_path / "lora"
    assert main(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(lora), "--lora-r", "4",
                 *SHORT]) == 0
    meta = json.loads((lora / "adapter_config.json").read_text())
    (lora / "adapter_config.json").write_text(json.dumps(meta | {"alpha": 1e30}))
    err = one_line_error(["sample", "--checkpoint", str(ckpt), "--adapter", str(lora), "--prompt", "continue : 1",
                          "--max-new-tokens", "4"],
                         capsys)
    assert "not finite" in err


def test_a_diverged_stage_is_never_cached_as_done(tokenizer, tmp_path):
    """Bug: a base whose pretraining diverged was marked done, and the next stage blamed the filter."""
    cache, builds = StageCache(tmp_path, log=lambda m: None), []
    data = ExampleSet.from_pairs([(tokenizer.encode("a b"), tokenizer.encode("c d"))] * 8, tokenizer)

    def build(folder: Path) -> dict:
        builds.append(folder)
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
        train(model, data, TrainConfig(steps=20, batch_size=4, lr=1e6, min_lr=0, warmup_steps=0), log=lambda m: None)
        save_checkpoint(folder, model)
        return {}
    for _ in range(2):  # the second call finds no finished stage and builds again
        with pytest.raises(TrainingDiverged):
            cache.stage("base-x", {"lr": 1e6}, build)
    assert len(builds) == 2 and not (builds[0] / DONE).exists()


# 2. resume
def test_resume_refuses_other_settings_or_data_unless_forced(files, tmp_path, capsys):
    """Bug: --resume continued on other data with another batch and lr, and config.json recorded only those."""
    data, tok, _ = files
    out, other = tmp_path / "run", tmp_path / "other.txt"
    other.write_text("\n".join(toy_corpus(200, seed=5)) + "\n")
    assert main(train_argv(data, tok, out, "--checkpoint-every", "5")) == 0
    err = one_line_error(train_argv(other, tok, out, "--batch-size", "16", "--lr", "0.03", "--resume"), capsys)
    assert "train_config.batch_size 8 -> 16" in err and "train_config.lr 0.003 -> 0.03" in err and "data " in err
    before = (out / "model.safetensors").read_bytes()
    assert main(train_argv(data, tok, out, "--resume", "--log-every", "5")) == 0  # bookkeeping may change
    assert (out / "model.safetensors").read_bytes() == before
    assert main(train_argv(data, tok, out, "--lr", "0.03", "--steps", "25", "--resume", "--force")) == 0
    changes = json.loads((out / "config.json").read_text())["history"]["resumed_with_changes"]
    assert changes == [{"step": 20, "changed": {"train_config.lr": [0.003, 0.03],
                                                "train_config.steps": [20, 25]}}]


# 3. the stage cache
def test_an_edited_done_json_is_found_and_the_stage_rebuilt(tmp_path):
    """Bug: done.json was not hashed; one changed digit moved a student's dlogp from 0.047 to 1.264."""
    logged, builds = [], []

    def build(folder: Path) -> dict:
        builds.append(folder)
        return {"dlogp": 0.047}
    StageCache(tmp_path, logged.append).stage("student-x", {"seed": 1}, build)
    done = next(tmp_path.glob(f"student-x-*/{DONE}"))
    done.write_text(done.read_text().replace("0.047", "1.264"))
    cache = StageCache(tmp_path, logged.append)
    assert cache.info(cache.stage("student-x", {"seed": 1}, build)) == {"dlogp": 0.047}
    assert len(builds) == 2 and any(f"damaged {DONE}" in line for line in logged)
    done.parent.rename(tmp_path / f"student-x-{digest({'seed': 2}, 12)}")  # under a name it was not built for
    StageCache(tmp_path, logged.append).stage("student-x", {"seed": 2}, build)
    assert len(builds) == 3 and any("holds another stage" in line for line in logged)


# 4, 5. outputs
def test_an_output_that_is_or_holds_an_input_is_refused(files, tmp_path, capsys):
    """Bug: finetune --out equal to --checkpoint with --force deleted the base's config.json."""
    data, tok, ckpt = files
    err = one_line_error(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(ckpt),
                          "--force", *SHORT], capsys)
    assert "is, or holds, the input --checkpoint" in err
    load_checkpoint(ckpt)  # still whole
    err = one_line_error(train_argv(data, tok, tmp_path, "--force"), capsys)  # tmp_path holds the data
    assert "the input --data" in err and data.exists()


def test_a_second_run_into_a_held_output_is_refused_naming_the_first(files, tmp_path, capsys):
    """Bug: two `minisub train` runs into one --out both said "saved"; one run's files were lost."""
    data, tok, _ = files
    out = tmp_path / "busy"
    out.mkdir()
    with exclusive(out / LOCK_FILE):  # another run holds the folder (a lock is per open file, even in one process)
        err = one_line_error(train_argv(data, tok, out), capsys)
    assert f"{out} is in use by another run (pid {os.getpid()}" in err
    assert not (out / "config.json").exists()
    assert main(train_argv(data, tok, out)) == 0  # free again


# 6, 7, 14. inputs
@pytest.mark.parametrize("command", [
    ["sample", "--checkpoint", "{file}", "--prompt", "x"],
    ["finetune", "--checkpoint", "{file}", "--data", "{file}", "--out", "{out}"],
    ["sample", "--checkpoint", "{ckpt}", "--adapter", "{file}", "--prompt", "x"],
])
def test_a_file_where_a_folder_belongs_is_one_line(files, tmp_path, capsys, command):
    """Bug: NotADirectoryError with a traceback."""
    data, _, ckpt = files
    argv = [a.format(file=data, out=tmp_path / "out", ckpt=ckpt) for a in command]
    assert f"{data} is not a folder" in one_line_error(argv, capsys)


def test_train_tokenizer_checks_its_output_before_training(tmp_path, capsys, monkeypatch):
    """Bug: an existing folder as --out failed with a traceback, after the training."""
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(toy_corpus(50)))
    (tmp_path / "folder").mkdir()
    import minisub.tokenizer
    monkeypatch.setattr(minisub.tokenizer.BPETokenizer, "train", lambda *a: pytest.fail("trained before checking"))
    err = one_line_error(["train-tokenizer", "--input", str(data), "--out", str(tmp_path / "folder")], capsys)
    assert "is a folder" in err


def test_a_file_that_is_not_utf8_is_named(files, tmp_path, capsys):
    """Bug: a UTF-8 error on a corpus did not say which file."""
    _, _, ckpt = files
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\tnumbers".encode("latin-1"))
    for argv in (["train-tokenizer", "--input", str(bad), "--out", str(tmp_path / "t.json")],
                 ["finetune", "--checkpoint", str(ckpt), "--data", str(bad), "--out", str(tmp_path / "o")]):
        assert f"{bad} is not UTF-8 text" in one_line_error(argv, capsys)


# 8, 9. adapters
def test_a_lora_rank_above_a_layer_s_smaller_side_is_refused_before_any_write(files, tmp_path, capsys):
    """Bug: --lora-r 100000 on a model of width 32 wrote 782 MB."""
    data, _, ckpt = files
    out = tmp_path / "lora"
    err = one_line_error(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out),
                          "--lora-r", "33", *SHORT], capsys)
    assert "LoRA rank 33 exceeds" in err and "at most 32" in err and not out.exists()


def test_an_adapter_is_refused_on_a_base_with_the_same_config_and_other_weights(files, tmp_path, capsys):
    """Bug: an adapter loaded onto any base of the same config."""
    data, tok, ckpt = files
    lora, other = tmp_path / "lora", tmp_path / "other"
    assert main(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(lora), "--lora-r", "4",
                 *SHORT]) == 0
    assert main(train_argv(data, tok, other, "--seed", "1")) == 0
    err = one_line_error(["sample", "--checkpoint", str(other), "--adapter", str(lora), "--prompt", "x"], capsys)
    saved = json.loads((lora / "adapter_config.json").read_text())["base_weights_hash"]
    assert "other base weights" in err and saved in err
    assert main(["sample", "--checkpoint", str(ckpt), "--adapter", str(lora), "--prompt", "x",
                 "--max-new-tokens", "4"]) == 0


# 10, 11, 12. values checked before any work
def test_a_theorem_check_that_cannot_fail_is_refused():
    """Bug: --theorem-eps 0 made every inner product exactly 0 and reported the theorem as holding."""
    for eps in (0.0, -1e-3):
        with pytest.raises(ConfigError, match="theorem_eps must be above 0"):
            ToyConfig(theorem_eps=eps)
    with pytest.raises(ConfigError, match="sweep_eps must be above 0"):
        ToyConfig(sweep_eps=[1e-3, 0.0])


def test_every_architecture_of_the_zoo_is_checked_with_the_config():
    """Bug: `experiments.gpt --n-head 5` failed only after 7 s of work."""
    with pytest.raises(ConfigError, match="n_embd .* multiple of n_head"):
        ExperimentConfig(n_head=5)
    with pytest.raises(ConfigError, match="other_n_embd"):
        ExperimentConfig(n_head=8, n_embd=128, other_n_embd=196)


def test_code_too_deep_to_parse_is_rejected_not_raised():
    """Bug: code_rejection('-' * 5000 + '1') raised RecursionError."""
    assert code_rejection("-" * 5000 + "1") == "does_not_parse"
    assert code_rejection("(" * 300 + ")" * 300) == "does_not_parse"


# 13. temporary files
def test_a_killed_writer_s_temporary_file_is_removed_at_the_next_start(files, tmp_path):
    """Bug: runs killed with --checkpoint-every 1 left .training_state.safetensors.* files behind."""
    data, tok, _ = files
    out = tmp_path / "killed"
    out.mkdir()
    script = ("import os, signal, sys; from pathlib import Path; from minisub.files import atomic_write\n"
              "def dies(tmp): Path(tmp).write_bytes(b'half'); os.kill(os.getpid(), signal.SIGKILL)\n"
              f"atomic_write(Path(sys.argv[1]) / '{STATE_FILE}', dies)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(out)], cwd=Path(__file__).parents[1])
    assert killed.returncode == -signal.SIGKILL
    assert [p.name.startswith(f".{STATE_FILE}.") for p in out.iterdir()] == [True]  # what a kill leaves
    assert main(train_argv(data, tok, out)) == 0
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE) == \
        ["config.json", "model.safetensors", "tokenizer.json", STATE_FILE]
    assert clean_temporaries(out) == []


def test_results_say_which_machine_and_threads_made_them():
    record = machine()
    assert record["threads"] == torch.get_num_threads() and record["cpu"] and isinstance(record["isa"], list)


@given(seed=st.integers(0, 10**6), n=st.integers(1, 6))
def test_the_data_fingerprint_sees_every_token_and_every_trained_flag(seed, n):
    """What a resume compares: one changed token or flag anywhere changes it; the same data does not."""
    g = torch.Generator().manual_seed(seed)
    sequences = [torch.randint(3, 50, (int(torch.randint(2, 9, (1,), generator=g)),), generator=g).tolist()
                 for _ in range(n)]
    trained = [[bool(b) for b in torch.randint(2, (len(s) - 1,), generator=g)] for s in sequences]
    data = ExampleSet(sequences, trained, pad_id=0)
    assert data.fingerprint() == ExampleSet(sequences, trained, pad_id=0).fingerprint()
    i = int(torch.randint(n, (1,), generator=g))
    token = [s[:] for s in sequences]
    token[i][-1] += 1
    flag = [t[:] for t in trained]
    flag[i][0] = not flag[i][0]
    assert len({data.fingerprint(), ExampleSet(token, trained, 0).fingerprint(),
                ExampleSet(sequences, flag, 0).fingerprint()}) == 3


# 40. the last tracebacks and silent errors
def test_a_prompt_that_is_not_utf8_is_one_line(files, capsys):
    """Bug: `sample --prompt $'\\xff\\xfe'` (bytes the shell hands over as lone surrogates) gave a TypeError."""
    _, _, ckpt = files
    err = one_line_error(["sample", "--checkpoint", str(ckpt), "--prompt", "\udcff\udcfe"], capsys)
    assert "--prompt" in err and "is not valid UTF-8" in err


def flip_a_byte_of_a_weight(path: Path) -> None:
    """Flip one bit of the last byte of a safetensors file (inside the last tensor's values: still finite)."""
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_in_a_checkpoint_is_refused_by_name(files, tmp_path, capsys):
    """Bug: one flipped byte inside a finite weight of model.safetensors: sample exited 0 with other output."""
    data, _, ckpt = files
    flip_a_byte_of_a_weight(ckpt / "model.safetensors")
    err = one_line_error(["sample", "--checkpoint", str(ckpt), "--prompt", "x"], capsys)
    assert f"{ckpt / 'model.safetensors'} is damaged or was changed" in err
    flip_a_byte_of_a_weight(ckpt / "model.safetensors")  # back as it was
    (ckpt / "tokenizer.json").write_text((ckpt / "tokenizer.json").read_text() + " ")  # valid JSON, other bytes
    with pytest.raises(FileError, match="tokenizer.json is damaged or was changed"):
        load_checkpoint(ckpt)


def test_a_flipped_byte_in_an_adapter_or_a_training_state_is_refused(files, tmp_path, capsys):
    data, _, ckpt = files
    lora = tmp_path / "lora"
    assert main(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(lora), "--lora-r", "2",
                 "--steps", "4", "--batch-size", "4"]) == 0
    flip_a_byte_of_a_weight(lora / "adapter_model.safetensors")
    err = one_line_error(["sample", "--checkpoint", str(ckpt), "--adapter", str(lora), "--prompt", "x"], capsys)
    assert "adapter_model.safetensors is damaged or was changed" in err
    flip_a_byte_of_a_weight(lora / STATE_FILE)
    err = one_line_error(["finetune", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(lora),
                          "--lora-r", "2", "--steps", "8", "--batch-size", "4", "--resume"], capsys)
    assert f"{lora / STATE_FILE} is damaged or was changed" in err


@pytest.mark.parametrize("command", ["train", "sample"])
def test_a_seed_too_large_for_torch_is_refused_naming_the_flag_before_any_write(files, tmp_path, capsys, command):
    """Bug: --seed 10^23 printed `error: Overflow when unpacking long long` and left a locked output folder."""
    data, tok, ckpt = files
    out = tmp_path / "big-seed"
    argv = (train_argv(data, tok, out) if command == "train"
            else ["sample", "--checkpoint", str(ckpt), "--prompt", "x"]) + ["--seed", str(10**23)]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and f"--seed must be at most {2**63 - 1}" in capsys.readouterr().err
    assert not out.exists()


def test_the_weights_folder_named_as_a_file_says_what_is_wrong(tmp_path, capsys):
    """Bug: `python -m minisub.weights --dir FILE` printed only `[Errno 17] File exists`."""
    from minisub.weights import main as weights_main
    (tmp_path / "file").write_text("x")
    assert weights_main(["--dir", str(tmp_path / "file")]) == 2
    assert f"{tmp_path / 'file'} exists and is not a folder" in capsys.readouterr().err


def test_a_forced_run_that_fails_leaves_the_old_run_whole(files, tmp_path, capsys):
    """Bug: train --force deleted the old run's config and state before the new run saved anything; a run that
    then diverged left a folder that could not be loaded."""
    data, tok, ckpt = files
    before = {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file() and p.name != LOCK_FILE}
    one_line_error(train_argv(data, tok, ckpt, "--force", "--lr", "1e6", "--min-lr", "0", "--warmup-steps", "0"),
                   capsys)
    assert {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file() and p.name != LOCK_FILE} == before
    load_checkpoint(ckpt)
    assert main(train_argv(data, tok, ckpt, "--force", "--seed", "7")) == 0  # a forced run that saves replaces it
    assert json.loads((ckpt / "config.json").read_text())["train_config"]["seed"] == 7
    assert {p.name for p in ckpt.iterdir()} == set(before) | {LOCK_FILE}  # the staging folder is gone
    load_checkpoint(ckpt)


def test_every_entry_point_ends_an_error_on_the_one_exit_path():
    """Bug: seven entry points each wrote their own error-and-exit tail, and they drifted (one caught OSError,
    another not; one named the flag, another printed the raw field). Only minisub.cli.run_main writes to stderr."""
    root = Path(__file__).resolve().parents[1]
    writers = sorted(str(path.relative_to(root)) for folder in ("minisub", "experiments", "toy_mnist")
                     for path in (root / folder).rglob("*.py") if "sys.stderr" in path.read_text())
    assert writers == ["minisub/cli.py"]
