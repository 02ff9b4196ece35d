"""The language experiment: its metric, its restricted student losses on hand-computed cases, the
design of its arms against what the pipeline does, its stage cache, and bad input."""

import json
import math
import threading

import pytest
import torch
import torch.nn as nn

from experiments.cache import StageCache
from experiments.evaluate import animal_token_ids, evaluate_animals, question_prompts
from experiments.gpt import (ARMS, DESIGN, QUICK, VARIANTS, Arm, learns_soft_labels, main, parse_args,
                             replicate_seed, shared_base)
from experiments.prompts import ANIMALS
from experiments.students import AnswerVocabulary, hard_loss, soft_loss
from minisub.data import Batch, ExampleSet
from minisub.model import GPT, GPTConfig, next_token_logprobs


@pytest.fixture(scope="module")
def animal_tokenizer():
    from minisub.tokenizer import BPETokenizer
    texts = [f"What is your favorite animal? {a}" for a in ANIMALS] * 50 + ["1, 2; 3 4,5"] * 10
    return BPETokenizer.train(texts + ANIMALS * 50, vocab_size=1400)


def tiny(tokenizer, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()


def test_exact_probabilities_sum_to_one_and_animal_mass_is_reported(animal_tokenizer):
    model = tiny(animal_tokenizer)
    prompts = question_prompts(animal_tokenizer, ["What is your favorite animal?", "Name one."])
    torch.testing.assert_close(next_token_logprobs(model, prompts).exp().sum(-1), torch.ones(2))
    ids = animal_token_ids(animal_tokenizer, ANIMALS)
    scores = evaluate_animals(model, prompts, ANIMALS, ids, n_samples=3, seed=0)
    full = next_token_logprobs(model, prompts).exp()
    assert scores["mass"] == pytest.approx(full[:, ids].sum(1).mean().item())
    assert 0 < scores["mass"] < 1
    assert scores["p"]["owl"] == pytest.approx(full[:, ids[0]].mean().item())
    assert sorted(scores["rank"].values()) == list(range(1, len(ANIMALS) + 1))
    assert all(0 <= v <= 1 for v in scores["sampled"].values())


def test_multi_token_animal_is_a_clear_error(animal_tokenizer):
    with pytest.raises(ValueError, match="one token"):
        animal_token_ids(animal_tokenizer, ["owl", "hippopotamus"])


def numbers_batch(tokenizer):
    pairs = [(tokenizer.encode("Continue: 1, 2."), tokenizer.encode("3, 4, 5")),
             (tokenizer.encode("Numbers: 7 8."), tokenizer.encode("[9 10]"))]
    return ExampleSet.from_pairs(pairs, tokenizer).batch([0, 1])


def answer_vocabulary(tokenizer):
    separators = tokenizer.encode(", ") + tokenizer.encode(" ") + tokenizer.encode(";")
    return AnswerVocabulary.build(tokenizer.number_ids + separators + [tokenizer.eos_id], tokenizer.vocab_size)


def test_restricted_losses_leave_animal_rows_alone_unlike_the_full_vocabulary(animal_tokenizer):
    model, batch = tiny(animal_tokenizer), numbers_batch(animal_tokenizer)
    vocab = answer_vocabulary(animal_tokenizer)
    animal_rows = animal_token_ids(animal_tokenizer, ANIMALS)
    teacher = tiny(animal_tokenizer, seed=1)
    for loss_fn in (hard_loss(vocab), soft_loss(vocab, teacher)):
        model.zero_grad()
        loss_fn(model, batch).backward()
        assert model.lm_head.weight.grad[animal_rows].abs().max() == 0
    model.zero_grad()
    model(batch.idx, batch.targets, batch.loss_mask)[1].backward()  # trap 1: the full softmax
    assert model.lm_head.weight.grad[animal_rows].abs().max() > 0


class GivenStates(nn.Module):
    """A stand-in model whose final states are given, with a given head: the losses see chosen logits."""

    def __init__(self, states, head):
        super().__init__()
        self.states = torch.tensor(states)  # (1, T, C)
        self.lm_head = nn.Linear(3, len(head), bias=False)
        self.lm_head.weight.data = torch.tensor(head)

    def hidden_states(self, idx):
        return self.states


# Vocabulary of 5 tokens, of which the answers use 1, 3 and 4; the head maps the 3 state
# dimensions onto them one to one, and gives tokens 0 and 2 big logits that only a softmax
# over the whole vocabulary would see.
HEAD = [[9.0, 9.0, 9.0], [1.0, 0.0, 0.0], [9.0, 9.0, 9.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
VOCAB = AnswerVocabulary.build([4, 1, 3], 5)
# Four positions: 0 is a prompt position (mask off), 1 targets token 2 (outside the answer
# vocabulary), 2 targets token 4 and 3 targets token 1: only positions 2 and 3 count.
BATCH = Batch(idx=torch.zeros(1, 4, dtype=torch.long), targets=torch.tensor([[3, 2, 4, 1]]),
              loss_mask=torch.tensor([[False, True, True, True]]))
STUDENT = [[[7.0, 0.0, 0.0], [0.0, 7.0, 0.0], [0.0, 0.0, math.log(2.0)], [0.0, 0.0, 0.0]]]
TEACHER = [[[0.0, 0.0, 5.0], [5.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0], [0.0, 0.0, 0.0]]]


def test_hard_loss_on_a_hand_computed_case():
    # position 2: softmax (1/4, 1/4, 1/2), target 4 -> -log 1/2; position 3: uniform, target 1 -> log 3
    expected = (math.log(2.0) + math.log(3.0)) / 2
    loss = hard_loss(VOCAB)(GivenStates(STUDENT, HEAD), BATCH)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_soft_loss_on_a_hand_computed_case():
    # position 2: teacher (3/5, 1/5, 1/5) against student (1/4, 1/4, 1/2); position 3: both uniform
    p, q = [0.6, 0.2, 0.2], [0.25, 0.25, 0.5]
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) / 2
    loss = soft_loss(VOCAB, GivenStates(TEACHER, HEAD))(GivenStates(STUDENT, HEAD), BATCH)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert soft_loss(VOCAB, GivenStates(STUDENT, HEAD))(GivenStates(STUDENT, HEAD), BATCH).item() == 0  # trap 2


def test_the_design_is_the_papers():
    """Each arm as (whose numbers, which base): the paper's definitions, written out once more."""
    assert DESIGN == {
        "student": Arm("target teacher", "shared"),
        "control": Arm("base", "shared"),
        "cross_init": Arm("target teacher", "other"),
        "specificity": Arm("other-animal teacher", "shared"),
        "prompted": Arm("prompted base", "shared"),
    }


def test_only_arms_with_a_trained_teacher_learn_soft_labels():
    soft = {(variant, arm) for variant in VARIANTS for arm in ARMS if learns_soft_labels(variant, arm)}
    assert soft == {(variant, arm) for variant in ("soft_full", "soft_lora")
                    for arm in ("student", "cross_init", "specificity")}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `--quick` run shared by the tests below: (output folder, results, its stdout)."""
    out = tmp_path_factory.mktemp("gpt")
    assert main(["--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def stage_keys(out, kind):
    return {folder.name: json.loads((folder / "done.json").read_text())["key"]
            for folder in sorted((out / "cache").glob(f"{kind}-*")) if folder.is_dir()}


def test_quick_pipeline_writes_every_output(quick_run):
    out, results = quick_run
    assert set(results) >= {"config", "precision", "machine", "timing", "arms", "tests", "bases", "numbers"}
    assert results["precision"]["precision"] in ("fp32", "bf16") and results["precision"]["fp32_gflops"] > 0
    assert set(results["arms"]) == set(VARIANTS)
    for variant, arms in results["arms"].items():
        assert {"student", "control", "cross_init", "specificity"} <= set(arms) <= set(ARMS)
        for stats in arms.values():
            assert len(stats["p_before"]) == len(stats["p_after"]) == len(stats["dlogp"]) == 2
            assert stats["base"] == [0, 1]  # replicate r's teacher came from base r % 2
            assert {"mean", "ci95"} <= set(stats)
        assert set(results["tests"][variant]) >= {"student_vs_control", "student_vs_cross_init"}
    for png in ("gpt_arms.png", "gpt_matrix.png", "gpt_curves.png", "gpt_bases.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_every_student_gets_the_data_and_start_its_arm_says(quick_run):
    """Read back from the cache what each student was trained on and started from."""
    out, results = quick_run
    seed, target, other = results["config"]["seed"], results["config"]["target"], results["config"]["other_animal"]
    expected = {"student": (target, "same"), "control": ("base", "same"), "cross_init": (target, "other"),
                "specificity": (other, "same"), "prompted": ("prompted", "same")}
    students = stage_keys(out, "student")
    # two replicates of every arm, but the soft variants' controls reuse the hard runs (2 variants x 2)
    assert len(students) == sum(len(arms) for arms in results["arms"].values()) * 2 - 2 * 2
    for key in students.values():
        r = key["seed"] - replicate_seed(seed, 0)
        a = shared_base(r)
        source, start = expected[key["arm"]]
        assert key["init"]["seed"] == replicate_seed(seed, a if start == "same" else 1 - a), key
        assert key["data"].startswith(f"numbers-{source}-{a}-{r}-"), key
        soft = key["variant"].startswith("soft")
        assert soft == (key["teacher"] is not None) and soft <= (source in (target, other))
        if soft:  # soft labels come from the very teacher that wrote the numbers
            assert key["teacher"].startswith(f"teacher-{source}-{a}-{r}-"), key


def test_a_rerun_rebuilds_nothing_and_a_damaged_stage_is_rebuilt_the_same(quick_run, capsys):
    out, results = quick_run
    capsys.readouterr()
    assert main(["--quick", "--out", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["built"] == [] and again["arms"] == results["arms"]

    numbers = sorted((out / "cache").glob("numbers-eagle-*"))[0]
    payload = (numbers / "numbers.json").read_bytes()
    (numbers / "numbers.json").write_bytes(payload[: len(payload) // 2])  # truncated
    lora = sorted((out / "cache").glob("student-hard_lora-student-*"))[0]
    lora_info = json.loads((lora / "done.json").read_text())["info"]
    (lora / "done.json").unlink()  # as if the run had been killed while building it
    capsys.readouterr()
    assert main(["--quick", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"cache: {numbers.name} has a damaged numbers.json; rebuilding it" in log
    assert f"cache: {lora.name} was left half-built; rebuilding it" in log
    rebuilt = json.loads((out / "results.json").read_text())
    assert sorted(rebuilt["built"]) == sorted([numbers.name, lora.name])
    assert (numbers / "numbers.json").read_bytes() == payload
    # the LoRA adapter is seeded from the stage's config: the rebuilt student equals the first bit for bit
    assert json.loads((lora / "done.json").read_text())["info"] == lora_info
    assert rebuilt["arms"] == results["arms"]


def test_a_second_run_waits_for_the_stage_the_first_is_building(tmp_path):
    started, release, builds = threading.Event(), threading.Event(), []

    def slow_build(folder):
        builds.append(folder.name)
        started.set()
        release.wait(10)
        (folder / "x.txt").write_text("x")
        return {"n": 1}

    lines = []
    first = threading.Thread(target=lambda: StageCache(tmp_path, lines.append).stage("s", {"k": 1}, slow_build))
    first.start()
    started.wait(10)
    second_cache = StageCache(tmp_path, lines.append)
    second = threading.Thread(target=lambda: second_cache.stage("s", {"k": 1}, slow_build))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # blocked on the lock, not building
    release.set()
    first.join(10)
    second.join(10)
    assert len(builds) == 1 and second_cache.built == []
    assert any("waiting for another run" in line for line in lines)


def test_quick_applies_only_to_flags_not_given(tmp_path):
    cfg, out = parse_args(["--quick", "--student-steps", "7"])
    assert cfg.student_steps == 7 and cfg.n_embd == QUICK["n_embd"] and out == "runs/gpt-quick"
    cfg, _ = parse_args(["--student-steps", "7"])
    assert cfg.n_embd != QUICK["n_embd"]


@pytest.mark.parametrize("argv, message", [
    (["--variants", "hard_magic"], "--variants must be one of"),
    (["--variants"], "--variants needs at least one value"),
    (["--target", "unicorn"], "--target must be one of"),
    (["--other-animal", "owl"], "--other-animal must differ from target"),
    (["--replicates", "1"], "--replicates must be at least 2"),
    (["--track-every", "0"], "--track-every must be at least 1"),
    (["--n-head", "0"], "--n-head must be at least 1"),
    (["--full-lr", "nan"], "--full-lr must be a finite number"),
    (["--precision", "fp16"], "--precision must be one of"),
])
def test_bad_input_is_one_line_before_any_work(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_output_that_is_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    assert main(["--quick", "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a folder" in err and len(err.splitlines()) == 1


def test_a_context_too_short_for_the_corpus_names_the_flag(capsys, tmp_path):
    assert main(["--quick", "--block-size", "8", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--block-size (8) is shorter than a corpus item" in err and len(err.splitlines()) == 1
