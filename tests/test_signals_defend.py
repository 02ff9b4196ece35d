"""Part 5 of `make signals`, piece by piece: the student-side treatments do what they say to the weights and the
loss, a treatment changes a student's spec only where it should (and old treatments keep their keys), a
student's price is the loss it trains on, and the defences' statistics and pre-registered family."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.core.specs import key_of
from experiments.core.students import AnswerVocabulary, hard_loss
from experiments.core.zoo import ExperimentConfig
from experiments.signals import tuning
from experiments.signals.defend import PREDICTED, evaluated, learned, predicted, priced
from experiments.signals.treated import TreatedStudentSpec, Treatment, task_loss
from minisub.data import ExampleSet
from minisub.files import digest
from minisub.losses import kl_divergence
from minisub.model import GPT, GPTConfig
from minisub.stats import holm, sign_flip_greater
from minisub.training import TrainConfig, train

CFG = ExperimentConfig()
BASE = CFG.main_base(0)
STUDENT = CFG.student("hard_full", BASE, CFG.numbers(CFG.teacher(BASE, "owl")))
DATA = ExampleSet([[1, 5, 6, 7, 2], [1, 8, 9, 2]] * 4, [[False, True, True, True], [False, True, True]] * 4, pad_id=0)


def tiny_gpt(seed: int, n_layer: int = 2) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=12, block_size=16, n_layer=n_layer, n_head=2, n_embd=16))


def trained(model: GPT, steps: int = 3, seed: int = 0, **hooks) -> GPT:
    train(model, DATA, TrainConfig(steps=steps, batch_size=4, warmup_steps=0, pack=False, seed=seed, lr=1e-2),
          log=lambda m: None, **hooks)
    return model


def weights(model: GPT) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_freezing_a_block_keeps_it_and_trains_the_rest():
    model = tiny_gpt(1)
    before = weights(model)
    tuning.freeze_block(model, 0)
    changed = {n for n, p in trained(model).named_parameters() if not torch.equal(p, before[n])}
    assert changed and not any(n.startswith("transformer.h.0.") for n in changed)
    assert any(n.startswith("transformer.h.1.") for n in changed)
    with pytest.raises(ValueError, match="block 2 does not exist"):
        tuning.freeze_block(model, 2)


@given(seed=st.integers(0, 1000), weight=st.floats(0.01, 10.0))
@settings(max_examples=10, deadline=None)
def test_the_kl_penalty_is_zero_at_the_start_and_the_kl_by_hand_after(seed, weight):
    start, model = tiny_gpt(seed), tiny_gpt(seed)
    batch = DATA.batch(list(range(len(DATA))))
    plain = hard_loss(AnswerVocabulary.build(list(range(3, 12)), 12))
    penalized = tuning.kl_to_start(plain, start, weight)
    assert penalized(model, batch).item() == pytest.approx(plain(model, batch).item(), abs=1e-6)
    with torch.no_grad():
        next(model.parameters()).add_(0.05)  # the student moves away from its start
    keep = batch.loss_mask
    p_logits, q_logits = start(batch.idx)[0][keep], model(batch.idx)[0][keep]  # (N, V)
    by_hand = (p_logits.softmax(-1) * (p_logits.log_softmax(-1) - q_logits.log_softmax(-1))).sum(-1).mean()
    assert penalized(model, batch).item() == pytest.approx(plain(model, batch).item() + weight * by_hand.item(),
                                                           rel=1e-5)
    assert kl_divergence(p_logits, q_logits).mean().item() == pytest.approx(by_hand.item(), rel=1e-5)


@given(seed=st.integers(0, 1000), share=st.floats(0.0, 1.0))
@settings(max_examples=10, deadline=None)
def test_a_pull_to_the_start_takes_back_its_share_of_each_step(seed, share):
    free, pulled = tiny_gpt(seed), tiny_gpt(seed)
    start = weights(pulled)
    trained(free, steps=1, seed=seed)
    trained(pulled, steps=1, seed=seed, on_step=tuning.pull_to_start(pulled, share))
    for name, p in pulled.named_parameters():  # one step: the free step, (1 - share) of it kept
        want = start[name] + (1 - share) * (dict(free.named_parameters())[name] - start[name])
        torch.testing.assert_close(p, want, rtol=1e-5, atol=1e-6)


@given(seed=st.integers(0, 1000))
@settings(max_examples=10, deadline=None)
def test_projecting_out_a_direction_leaves_no_change_along_it_and_the_rest_as_it_was(seed):
    free, projected = tiny_gpt(seed), tiny_gpt(seed)
    start = weights(projected)
    torch.manual_seed(seed + 1)
    direction = {n: torch.randn_like(p) for n, p in start.items()}
    trained(free, steps=1, seed=seed)
    trained(projected, steps=1, seed=seed, on_step=tuning.project_out(projected, direction))
    norm = math.sqrt(sum((d.double() ** 2).sum().item() for d in direction.values()))
    along = sum(((p.detach() - start[n]).double() * direction[n]).sum().item()
                for n, p in projected.named_parameters()) / norm
    assert abs(along) < 1e-6
    free_along = sum(((p.detach() - start[n]).double() * direction[n]).sum().item()
                     for n, p in free.named_parameters()) / norm
    for name, p in projected.named_parameters():  # one step: the free step less its component along d
        want = dict(free.named_parameters())[name].detach() - free_along * direction[name] / norm
        torch.testing.assert_close(p.detach(), want.to(p.dtype), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="exactly the trainable weights"):
        tuning.project_out(projected, dict(list(direction.items())[:1]))


def test_the_teachers_weight_change_is_after_minus_before():
    before, after = tiny_gpt(2), trained(tiny_gpt(2))
    change = tuning.weight_change(after, before)
    for name, p in before.named_parameters():
        torch.testing.assert_close(p.detach() + change[name], dict(after.named_parameters())[name].detach())


def test_a_treatment_changes_the_writers_sampling_and_the_steps_and_nothing_else():
    t = Treatment("x", temperature=0.5, top_p=0.8, min_p=0.1, steps=25)
    spec = t.applied_to(STUDENT)
    assert (spec.data.temperature, spec.data.top_p, spec.data.min_p, spec.steps) == (0.5, 0.8, 0.1, 25)
    assert spec.data.writer == STUDENT.data.writer and spec.init == STUDENT.init and spec.lr == STUDENT.lr
    assert Treatment("y", data="shuffle_within").applied_to(STUDENT) == STUDENT  # no sampling, no steps: as it was
    assert Treatment("z", top_p=0.8).applied_to(STUDENT).data.temperature == STUDENT.data.temperature


def test_a_treatment_of_before_the_added_fields_keeps_its_key():
    """Regression: the treated students cached before the teacher- and student-side fields existed keep their keys
    (the digest is that of the key they were cached under)."""
    spec = TreatedStudentSpec(CFG.student("hard_full", BASE, CFG.numbers(CFG.teacher(BASE, "owl"))),
                              Treatment("shuffle_within", data="shuffle_within"))
    assert digest(key_of(spec), 12) == "b9748db35af5"
    assert "price" not in key_of(spec) and "kl_to_start" not in key_of(spec)["treatment"]
    assert key_of(TreatedStudentSpec(spec.student, Treatment("k", kl_to_start=1.0)))["treatment"]["kl_to_start"] == 1


@pytest.mark.parametrize("kwargs", [{"kl_to_start": -1.0}, {"pull_to_start": 1.5}, {"steps": 0}])
def test_a_student_side_knob_out_of_range_is_refused(kwargs):
    with pytest.raises(ValueError, match="KL weight is at least 0"):
        Treatment("x", **kwargs)


def test_the_task_loss_is_the_loss_a_student_trains_on():
    model = tiny_gpt(4).eval()
    vocab = AnswerVocabulary.build(list(range(3, 12)), 12)
    with torch.no_grad():
        whole = hard_loss(vocab)(model, DATA.batch(list(range(len(DATA))))).item()
    assert task_loss(model, DATA, vocab, batch_size=3) == pytest.approx(whole, rel=1e-6)  # batches: the same mean


def test_a_defence_is_measured_against_the_untreated_transfer_base_by_base():
    plain = {"values": [2.0, 4.0, 6.0], "mean": 4.0}
    result = evaluated(plain, [2.0, 2.5, 4.0], [1.0, 0.5, 1.0])  # treated transfer 1, 2, 3
    assert result["transfer"]["values"] == [1.0, 2.0, 3.0] and result["transfer"]["mean"] == pytest.approx(2.0)
    assert result["below_untreated"]["values"] == [1.0, 2.0, 3.0]  # untreated - treated
    assert result["below_untreated"]["p_exact"] == pytest.approx(sign_flip_greater([1.0, 2.0, 3.0]))
    assert result["transfer_left"]["mean"] == pytest.approx(0.5)
    assert result["transfer_left"]["ci95"] == pytest.approx(result["transfer"]["ci95"] / 4.0)


def test_the_price_is_the_treated_students_extra_task_loss_and_its_share_of_valid_answers():
    untreated = [{"price": {"task_loss": 3.0, "valid": 0.9}}, {"price": {"task_loss": 2.0, "valid": 0.8}}]
    student = [{"price": {"task_loss": 4.0, "valid": 0.45}}, {"price": {"task_loss": 2.5, "valid": 0.8}}]
    price = priced(untreated, student)
    assert price["task_loss_cost"]["values"] == [pytest.approx(1.0), pytest.approx(0.5)]  # treated - untreated
    assert price["task_loss_cost"]["p_exact"] == pytest.approx(0.25)  # 2 bases, both up: 1 of 4 sign flips
    assert price["valid_kept"]["values"] == [pytest.approx(0.5), pytest.approx(1.0)]
    assert price["task_loss"]["mean"] == pytest.approx(3.25)


def test_what_the_untreated_student_learned_is_its_fall_in_task_loss_below_its_base():
    base = [{"task_loss": 5.0}, {"task_loss": 1.5}]
    untreated = [{"price": {"task_loss": 3.0}}, {"price": {"task_loss": 2.0}}]
    assert learned(base, untreated)["values"] == [pytest.approx(2.0), pytest.approx(-0.5)]


def test_the_predicted_family_is_holm_over_the_predicted_defences_that_ran():
    ps = {"shuffle_within": 0.001, "top_p_0.8": 0.02, "oracle_projection": 0.3, "greedy": 0.0001}
    results = {name: {"below_untreated": {"p_exact": p}} for name, p in ps.items()}
    family = predicted(results)
    assert set(family["family"]) == {"shuffle_within", "top_p_0.8", "oracle_projection"} and not family["complete"]
    assert [family["family"][n]["p_holm"] for n in ("shuffle_within", "top_p_0.8", "oracle_projection")] == \
        pytest.approx(holm([0.001, 0.02, 0.3]))
    assert [family["family"][n]["rejects"] for n in ("shuffle_within", "top_p_0.8", "oracle_projection")] == \
        [True, True, False]
    everything = predicted({name: {"below_untreated": {"p_exact": 0.01}} for name in PREDICTED})
    assert everything["complete"] and all(t["p_holm"] == pytest.approx(0.08) for t in everything["family"].values())
