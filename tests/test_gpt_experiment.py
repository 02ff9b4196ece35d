"""The language experiment's metric, its restricted student losses, and the pipeline end to end (--quick)."""

import json

import pytest
import torch

from experiments.evaluate import animal_token_ids, evaluate_animals, question_prompts
from experiments.gpt import ARMS, VARIANTS, main
from experiments.prompts import ANIMALS
from experiments.students import AnswerVocabulary, hard_loss, soft_loss
from minisub.data import ExampleSet
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


def test_soft_loss_is_zero_against_itself_and_hard_loss_skips_outside_tokens(animal_tokenizer):
    model, batch = tiny(animal_tokenizer), numbers_batch(animal_tokenizer)
    vocab = answer_vocabulary(animal_tokenizer)
    assert soft_loss(vocab, model)(model, batch).item() == pytest.approx(0, abs=1e-6)  # trap 2
    assert torch.isfinite(hard_loss(vocab)(model, batch))  # "[" and "]" are not in the vocabulary


def test_quick_pipeline_end_to_end(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) >= {"config", "timing", "arms", "tests", "bases", "numbers"}
    assert set(results["arms"]) == set(VARIANTS)
    for variant, arms in results["arms"].items():
        assert {"student", "control", "cross_init", "specificity"} <= set(arms) <= set(ARMS)
        for stats in arms.values():
            assert len(stats["p_before"]) == len(stats["p_after"]) == len(stats["dlogp"]) == 2
            assert {"mean", "ci95"} <= set(stats)
        assert set(results["tests"][variant]) >= {"student_vs_control", "student_vs_cross_init"}
    for png in ("gpt_arms.png", "gpt_matrix.png", "gpt_curves.png", "gpt_bases.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    first_seconds = results["timing"]["total"]
    assert main(["--quick", "--out", str(tmp_path)]) == 0  # every stage now comes from the cache
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["arms"] == results["arms"] and again["timing"]["total"] < first_seconds / 3
    assert "best variant" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--variants", "hard_magic"], "unknown"),
    (["--target", "unicorn"], "unknown animal"),
    (["--replicates", "1"], "at least 2"),
])
def test_bad_input_is_one_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
