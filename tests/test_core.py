"""The core of the language experiments: the metric, the restricted student losses on hand-computed
cases, the design of the arms, the stage cache, the shared command line and its one-line errors."""

import math
import threading

import pytest
import torch
import torch.nn as nn
from conftest import QUICK, QUICK_BASES, QUICK_CONFIG, FakeClock

from experiments.core.cache import StageCache, counting_flops
from experiments.core.cli import parse_args, resolve_precision
from experiments.core.design import DESIGN, Arm, arm_student
from experiments.core.evaluate import animal_token_ids, evaluate_options, question_prompts
from experiments.core.students import AnswerVocabulary, hard_loss, soft_loss
from experiments.core.zoo import VARIANTS, ExperimentConfig
from experiments.domains.experiment import main as domains_main
from experiments.gpt.experiment import main
from experiments.gpt.grid import main as grid_main
from experiments.gpt.lora_rank import main as lora_rank_main
from experiments.signals.experiment import main as signals_main
from experiments.tasks.prompts import ANIMALS
from minisub.data import Batch, ExampleSet
from minisub.log import Progress
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
    scores = evaluate_options(model, prompts, {a: [i] for a, i in zip(ANIMALS, ids)}, n_samples=3, seed=0)
    full = next_token_logprobs(model, prompts).exp()
    assert scores["mass"] == pytest.approx(full[:, ids].sum(1).mean().item())
    assert 0 < scores["mass"] < 1
    assert scores["p"]["owl"] == pytest.approx(full[:, ids[0]].mean().item())
    assert sorted(scores["rank"].values()) == list(range(1, len(ANIMALS) + 1))
    assert all(0 <= v <= 1 for v in scores["sampled"].values())
    # an option of several first tokens holds their summed mass, and is sampled when any of them is
    pair = evaluate_options(model, prompts, {"owl or eagle": ids[:2], "wolf": [ids[4]]}, n_samples=3, seed=0)
    assert pair["p"]["owl or eagle"] == pytest.approx(full[:, ids[:2]].sum(1).mean().item())
    assert pair["sampled"]["owl or eagle"] == pytest.approx(scores["sampled"]["owl"] + scores["sampled"]["eagle"])
    with pytest.raises(ValueError, match="share a first token"):
        evaluate_options(model, prompts, {"a": ids[:2], "b": ids[1:3]}, n_samples=0, seed=0)


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

    def hidden_states(self, idx, segments=None):
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
        "student": Arm("teacher", "own"),
        "control": Arm("base", "own"),
        "cross_init": Arm("teacher", "next"),
        "cross_pair": Arm("teacher", "partner"),  # pre-registration v2's H2: disjoint pairs of bases
        "prompted": Arm("persona", "own"),
        "neutral": Arm("neutral", "own"),
        "matched": Arm("teacher", "own", matched=True),
        "matched_control": Arm("base", "own", matched=True),
    }


@pytest.mark.parametrize("arm", list(DESIGN))
def test_each_arm_trains_on_the_data_and_start_its_row_says(arm):
    cfg = QUICK_CONFIG
    bases = QUICK_BASES[:2] if DESIGN[arm].start == "partner" else QUICK_BASES  # pairs need an even number
    n = len(bases)
    for i in range(n):
        spec = arm_student(cfg, "hard_full", arm, bases, i)
        writer = spec.data.writer
        start = {"own": i, "next": (i + 1) % n, "partner": i ^ 1}[DESIGN[arm].start]
        assert spec.init == bases[start]
        assert spec.init != bases[i] or DESIGN[arm].start == "own"  # cross-init never starts from its own base
        if DESIGN[arm].data in ("teacher", "neutral"):
            trait = cfg.target if DESIGN[arm].data == "teacher" else "neutral"
            assert writer.base == bases[i] and writer.trait == trait and spec.data.persona == ""
        else:
            assert writer == bases[i] and (spec.data.persona != "") == (DESIGN[arm].data == "persona")
        assert (spec.matched_to is not None) == DESIGN[arm].matched == (not spec.eos_in_loss)
        if spec.matched_to is not None:  # matched to the other side: teacher <-> control
            other_side = bases[i] if DESIGN[arm].data == "teacher" else cfg.teacher(bases[i], cfg.target)
            assert spec.matched_to.writer == other_side


def test_only_arms_with_a_trained_teacher_learn_soft_labels():
    soft = {(variant, arm) for variant in VARIANTS for arm in DESIGN
            if arm_student(QUICK_CONFIG, variant, arm, QUICK_BASES, 0).soft}
    assert soft == {(variant, arm) for variant in ("soft_full", "soft_lora")
                    for arm in ("student", "cross_init", "cross_pair", "neutral", "matched")}


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
    cfg, _, out, cache, _ = parse_args(["--quick", "--student-steps", "7"], "gpt", "", "gpt")
    assert cfg.student_steps == 7 and cfg.n_embd == QUICK["n_embd"] and out == "runs/gpt-quick"
    assert cache == "runs/cache-quick"
    cfg, _, _, cache, _ = parse_args(["--student-steps", "7"], "gpt", "", "gpt")
    assert cfg.n_embd != QUICK["n_embd"] and cache == "runs/cache"


@pytest.mark.parametrize("argv, message", [
    (["--variants", "hard_magic"], "--variants must be one of"),
    (["--variants"], "--variants needs at least one value"),
    (["--target", "unicorn"], "--target must be one of"),
    (["--animals", "eagle", "wolf"], "--animals must include the target (owl)"),
    (["--animals", "owl", "owl"], "--animals needs at least two different animals"),
    (["--bases", "1"], "--bases must be at least 2"),
    (["--bases", "65"], "--bases must be at most 64"),
    (["--fork-shared", "1"], "--fork-shared must be below 1"),
    (["--track-every", "0"], "--track-every must be at least 1"),
    (["--n-head", "0"], "--n-head must be at least 1"),
    (["--full-lr", "nan"], "--full-lr must be a finite number"),
    (["--precision", "fp16"], "--precision must be one of"),
    (["--temperature", "-1"], "--temperature must be at least 0"),
])
@pytest.mark.parametrize("entry", [main, grid_main, lora_rank_main, signals_main, domains_main])
def test_bad_input_is_one_line_before_any_work(entry, argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        entry(argv + ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_an_output_that_is_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    assert main(["--quick", "--out", str(tmp_path / "file"), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a folder" in err and len(err.splitlines()) == 1


def test_a_context_too_short_for_the_corpus_names_the_flag(capsys, tmp_path):
    assert main(["--quick", "--block-size", "8", "--out", str(tmp_path), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--block-size (8) is shorter than a corpus item" in err and len(err.splitlines()) == 1


def test_each_meter_counts_each_stage_once_not_again_in_the_stages_that_need_it(tmp_path):
    clock, flops = FakeClock(), FakeClock()  # a second fake meter stands in for the FLOP count
    cache = StageCache(tmp_path, lambda line: None, clock, flops)

    def inner(folder):
        clock.advance(0.2)
        flops.advance(7e9)
        return {}

    def outer(folder):
        clock.advance(0.01)
        flops.advance(1e9)
        cache.stage("inner", {"k": 1}, inner)  # an upstream stage built on demand
        clock.advance(0.04)
        flops.advance(2e9)
        return {}

    cache.stage("outer", {"k": 2}, outer)
    assert cache.spent["seconds"] == {"inner": pytest.approx(0.2), "outer": pytest.approx(0.05)}
    assert cache.spent["flops"] == {"inner": pytest.approx(7e9), "outer": pytest.approx(3e9)}
    assert sum(cache.spent["seconds"].values()) == pytest.approx(clock())  # the two stages, each counted once
    record = cache.work_record(total=1.0)
    assert record["gflop"] == {"inner": 7.0, "outer": 3.0}
    assert record["timing"]["total"] == 1.0 and len(record["built"]) == 2
    assert "gflop" not in StageCache(tmp_path, lambda line: None, clock).work_record(total=1.0)


def test_counting_flops_counts_forward_and_backward_matmuls_inside_only():
    m, k, n = 5, 7, 3
    a, b = torch.randn(m, k, requires_grad=True), torch.randn(k, n)
    with counting_flops() as flops:
        (a @ b).sum().backward()  # forward, and the backward's matmul for a's gradient (b needs none)
        inside = flops()
    torch.randn(m, k) @ b
    assert inside == 2 * (2 * m * k * n) and flops() == inside


def test_auto_precision_times_a_real_pretraining_step_and_records_it():
    cfg, record = resolve_precision(ExperimentConfig(**{**QUICK, "precision": "auto"}), Progress())
    assert cfg.precision in ("fp32", "bf16") and record["requested"] == "auto" and record["timed"] == "step"
    assert (cfg.precision == "bf16") == (record["bf16_speedup"] >= 1.3)
    fixed, record = resolve_precision(ExperimentConfig(**QUICK), Progress())
    assert fixed.precision == "fp32" and record["timed"] == "matmuls"


def test_two_bases_are_enough_and_the_grid_may_take_more_main_bases_than_make_gpt():
    cfg = ExperimentConfig(bases=2)  # the grid's default of 4 main bases does not constrain make gpt
    assert cfg.bases == 2 and cfg.grid_bases == 4
    assert cfg.main_base(3).name == "main-3" and cfg.main_base(3).seed != cfg.main_base(1).seed
