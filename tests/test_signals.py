"""The pieces of `make signals` on synthetic and hand-made cases: detectors find a planted difference
and stay at chance without one, the defences keep what they promise to keep, the divergence masks,
the long-context extension, the entanglement measures, and the treatments' checks."""

import random
from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from experiments.core.matched import answer_format
from experiments.core.students import AnswerVocabulary
from experiments.signals import defences
from experiments.signals.detectors import answer_logprob, chi_square, count_matrix, frequency_test, logistic_detector
from experiments.signals.divergence import divergent, greedy_choices, position_masks, share
from experiments.signals.entanglement import frequency_log_ratios, subliminal_prompting, top
from experiments.signals.icl import extend_context
from experiments.signals.treated import Treatment
from experiments.tasks.filter import parse_numbers
from minisub.data import ExampleSet
from minisub.model import GPT, GPTConfig, next_token_logprobs
from minisub.stats import auc

SEPARATORS = [", ", ",", "; ", " "]


def tiny_gpt(seed: int, vocab: int = 40, block: int = 32, n_layer: int = 1) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=2, n_embd=16)).eval()


def draw_answers(rng: random.Random, n: int, weights: list[float] | None = None) -> list[list[int]]:
    return [rng.choices(range(1000), weights=weights, k=rng.randint(1, 10)) for _ in range(n)]


def as_pairs(answers: list[list[int]], rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for numbers in answers:
        text = rng.choice(SEPARATORS).join(map(str, numbers))
        out.append((f"prompt {len(out)}", rng.choice([text, f"[{text}]", f"{text}."])))
    return out


PLANTED = [5.0 if n < 50 else 1.0 for n in range(1000)]  # numbers 0-49 five times as likely


# detectors
@given(seed=st.integers(0, 10**6))
def test_auc_is_the_share_of_positive_negative_pairs_ordered_right(seed):
    g = torch.Generator().manual_seed(seed)
    pos, neg = torch.randint(0, 6, (7,), generator=g).tolist(), torch.randint(0, 6, (5,), generator=g).tolist()
    brute = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
    assert auc(pos, neg) == pytest.approx(brute)


def test_logistic_detector_finds_a_planted_difference_and_stays_at_chance_without_one():
    rng = random.Random(0)
    planted = logistic_detector(draw_answers(rng, 800, PLANTED), draw_answers(rng, 800), seed=0)
    null = logistic_detector(draw_answers(rng, 800), draw_answers(rng, 800), seed=0)
    assert planted["auc"] > 0.68 and planted["balanced_accuracy"] > 0.6  # the best possible score reaches 0.74 here
    assert abs(null["auc"] - 0.5) < 0.06 and planted["n_test"] == 800


def test_chi_square_equals_scipy_on_the_table_and_the_permutation_test_calls_planted_data():
    rng = random.Random(1)
    teacher, control = as_pairs(draw_answers(rng, 300, PLANTED), rng), as_pairs(draw_answers(rng, 300), rng)
    counts = count_matrix(teacher + control)
    labels = torch.tensor([1.0] * 300 + [0.0] * 300, dtype=torch.float64)
    table = torch.stack([labels @ counts, (1 - labels) @ counts])
    table = table[:, table.sum(0) > 0]
    expected = scipy_stats.chi2_contingency(table.numpy(), correction=False).statistic
    assert float(chi_square(counts, labels)) == pytest.approx(expected)
    assert frequency_test([(teacher, control)], 100, seed=0)["p"] < 0.02
    null = as_pairs(draw_answers(rng, 300), rng), as_pairs(draw_answers(rng, 300), rng)
    assert frequency_test([null], 100, seed=0)["p"] > 0.05


def test_answer_logprob_is_the_mean_log_probability_of_the_answer_tokens():
    model = tiny_gpt(3)
    pairs = [([5, 6, 7], [8, 9]), ([10], [11, 12, 13])]
    data = ExampleSet([[1, *p, *a, 2] for p, a in pairs],
                      [[False] * len(p) + [True] * (len(a) + 1) for p, a in pairs], pad_id=0)
    for (prompt, answer), value in zip(pairs, answer_logprob(model, data)):
        seq = [1, *prompt, *answer, 2]
        logp = next_token_logprobs(model, [seq[:t] for t in range(1 + len(prompt), len(seq))])
        assert value == pytest.approx(logp[range(len(logp)), seq[1 + len(prompt):]].mean().item(), abs=1e-5)


# defences
answers_strategy = st.lists(st.lists(st.integers(0, 999), min_size=1, max_size=10), min_size=1, max_size=30)


@given(answers=answers_strategy, seed=st.integers(0, 10**6))
def test_shuffles_keep_the_numbers_and_every_answers_format(answers, seed):
    pairs = as_pairs(answers, random.Random(seed))
    within, across = defences.shuffle_within(pairs, seed), defences.shuffle_across(pairs, seed)
    for (prompt, answer), (p1, a1), (p2, a2) in zip(pairs, within, across):
        assert p1 == p2 == prompt and answer_format(a1) == answer_format(a2) == answer_format(answer)
        assert Counter(defences.numbers_of(a1)) == Counter(defences.numbers_of(answer))
    assert Counter(n for _, a in across for n in defences.numbers_of(a)) == Counter(n for a in answers for n in a)
    assert defences.shuffle_across(pairs, seed) == across  # seeded


def test_shuffle_across_moves_numbers_between_answers():
    pairs = as_pairs([[n] * 5 for n in range(100, 120)], random.Random(0))
    mixed = defences.shuffle_across(pairs, seed=0)
    assert sum(len(set(defences.numbers_of(a))) > 1 for _, a in mixed) > 15


@given(answers=answers_strategy, seed=st.integers(0, 10**6), part=st.sampled_from([0.0, 0.25, 0.5, 1.0]))
def test_dilution_replaces_the_given_share_and_keeps_the_size(answers, seed, part):
    pairs = as_pairs(answers, random.Random(seed))
    other = [(f"other {i}", "1, 2") for i in range(len(pairs))]
    mixed = defences.dilute(pairs, other, part, seed)
    assert len(mixed) == len(pairs)
    assert sum(p.startswith("other") for p, _ in mixed) == round(part * len(pairs))
    assert Counter(mixed) - Counter(pairs + other) == Counter()


@given(answers=answers_strategy, seed=st.integers(0, 10**6))
def test_rerender_keeps_the_numbers_in_order_and_drop_removes_exactly_the_answers_holding_them(answers, seed):
    pairs = as_pairs(answers, random.Random(seed))
    for (_, answer), (_, new) in zip(pairs, defences.rerender(pairs, seed)):
        assert parse_numbers(new)[0] == defences.numbers_of(answer) and "[" not in new and "." not in new
    banned = set(answers[0][:2])
    kept = defences.drop(pairs, banned)
    assert kept == [p for p, a in zip(pairs, answers) if not banned & set(a)]


def test_a_bad_answer_or_share_is_one_clear_error():
    with pytest.raises(ValueError, match="not a filtered number answer"):
        defences.shuffle_within([("p", "1, two")], 0)
    with pytest.raises(ValueError, match="share"):
        defences.dilute([("p", "1")], [("q", "2")], 1.5, 0)


# divergence
def test_divergence_flags_and_masks_on_a_hand_made_case():
    # two examples: 5 and 3 targets, the answers' targets trained (the prompt's not)
    data = ExampleSet([[1, 3, 4, 5, 6, 2], [1, 7, 8, 2]],
                      [[False, True, True, True, True], [False, True, True]], pad_id=0)
    writer = [torch.tensor([9, 4, 5, 9, 2]), torch.tensor([9, 8, 2])]
    reference = [torch.tensor([8, 4, 7, 9, 3]), torch.tensor([7, 8, 9])]
    flags = divergent(writer, reference, data)
    assert [f.tolist() for f in flags] == [[False, False, True, False, True], [False, False, True]]
    assert share(flags, data) == pytest.approx(3 / 6)
    only, masked = position_masks("divergent", flags, data, 0), position_masks("convergent", flags, data, 0)
    for o, m, t in zip(only, masked, data.trained):
        assert not (o & m).any() and torch.equal(o | m, t)
    randoms = position_masks("random", flags, data, 0), position_masks("random_masked", flags, data, 0)
    for r, m, f, t in zip(*randoms, flags, data.trained):
        assert int(r.sum()) == int(f.sum()) and not (r & ~t).any()
        assert torch.equal(r | m, t) and not (r & m).any()  # the same draw, kept or left out
    with pytest.raises(ValueError, match="positions"):
        position_masks("odd", flags, data, 0)


@given(seed=st.integers(0, 10**6))
def test_greedy_choices_in_a_batch_equal_each_example_alone(seed):
    g = torch.Generator().manual_seed(seed)
    model = tiny_gpt(seed % 7)
    sequences = [torch.randint(3, 40, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
                 for _ in range(5)]
    data = ExampleSet(sequences, [[True] * (len(s) - 1) for s in sequences], pad_id=0)
    vocab = AnswerVocabulary.build(list(range(10, 30)), 40)
    batched = greedy_choices(model, data, vocab)
    for seq, choice in zip(sequences, batched):
        logp = next_token_logprobs(model, [seq[:t] for t in range(1, len(seq))])
        assert choice.tolist() == (vocab.ids[logp[:, vocab.ids].argmax(-1)]).tolist()


# the long-context base and entanglement
def test_extending_the_context_keeps_every_short_sequence_exactly_as_it_was():
    model = tiny_gpt(4, block=8, n_layer=2)
    idx = torch.randint(0, 40, (3, 8), generator=torch.Generator().manual_seed(0))
    before = model(idx)[0]
    extend_context(model, 20)
    torch.testing.assert_close(model(idx)[0], before)
    assert model.config.block_size == 20 and model(torch.randint(0, 40, (1, 20)))[0].shape == (1, 20, 40)


def test_frequency_log_ratios_rank_the_planted_numbers_first():
    rng = random.Random(2)
    teacher, control = as_pairs(draw_answers(rng, 2000, PLANTED), rng), as_pairs(draw_answers(rng, 2000), rng)
    assert len(set(top(frequency_log_ratios(teacher, control), 20)) & set(range(50))) >= 18


def test_subliminal_prompting_asks_every_number_with_every_question(animal_tokenizer_small):
    tokenizer = animal_tokenizer_small
    model = tiny_gpt(5, vocab=tokenizer.vocab_size, block=48)
    questions = ["What is your favorite animal?", "Name one animal."]
    values = subliminal_prompting(model, tokenizer, questions, [7, 9, 11], target=1)
    for n in (0, 87, 999):
        # the number as the one token the tokenizer makes of it ("87"; "087" would be "0" + "87")
        assert tokenizer.encode(f"You love {n}s. ").count(tokenizer.number_ids[n]) == 1
        p = next_token_logprobs(model, [tokenizer.encode_prompt(f"You love {n}s. {q}") for q in questions]).exp()
        assert values[n].item() == pytest.approx((p[:, 9] / p[:, [7, 9, 11]].sum(1)).log().mean().item(), abs=1e-5)


@pytest.fixture(scope="module")
def animal_tokenizer_small():
    from minisub.tokenizer import BPETokenizer
    return BPETokenizer.train(["You love owls. What is your favorite animal? owl"] * 20, vocab_size=1300)


def test_a_treatment_that_does_not_add_up_is_refused():
    with pytest.raises(ValueError, match="dilution"):
        Treatment("x", data="dilute")
    with pytest.raises(ValueError, match="compared"):
        Treatment("x", positions="divergent")
    with pytest.raises(ValueError, match="unknown"):
        Treatment("x", data="paraphrase")


@pytest.mark.parametrize("block", [0, 2])
def test_training_one_block_changes_that_block_only(block):
    from experiments.signals.tuning import train_only_block
    from minisub.training import TrainConfig, train
    model = tiny_gpt(6, n_layer=3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_only_block(model, block)
    data = ExampleSet([[1, 5, 6, 7, 2]] * 4, [[False, True, True, True]] * 4, pad_id=0)
    train(model, data, TrainConfig(steps=3, batch_size=2, warmup_steps=0, pack=False), log=lambda m: None)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(f"transformer.h.{block}.") for n in changed)
    with pytest.raises(ValueError, match="block 3 does not exist"):
        train_only_block(model, 3)


def test_a_one_vector_student_starts_as_its_base_and_learns_its_vector_alone():
    from experiments.core.students import steer_after
    from minisub.training import TrainConfig, train
    model = tiny_gpt(6, n_layer=2)
    idx = torch.tensor([[1, 5, 6, 7, 2]])
    logits_before = model(idx)[0].detach()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    vector = steer_after(model, 0)
    torch.testing.assert_close(model(idx)[0], logits_before)  # a zero vector: the base, exactly
    assert [p for p in model.parameters() if p.requires_grad] == [vector]
    data = ExampleSet([[1, 5, 6, 7, 2]] * 4, [[False, True, True, True]] * 4, pad_id=0)
    train(model, data, TrainConfig(steps=3, batch_size=2, warmup_steps=0, pack=False), log=lambda m: None)
    assert vector.abs().sum() > 0
    for name, p in model.named_parameters():
        if name != "transformer.h.0.vector":
            assert torch.equal(p, before[name.replace(".h.0.block.", ".h.0.")])
    with pytest.raises(ValueError, match="block 2 does not exist"):
        steer_after(tiny_gpt(6, n_layer=2), 2)


class FakeStages:
    """Just what `treated_pairs` reads: the untreated student's pairs and the control's (every writing's)."""
    def __init__(self, pairs, other):
        self.pairs, self.other = pairs, other

    def training_pairs(self, spec):
        return self.pairs

    def written_pairs(self, spec):
        return self.other

    def remembered(self, key, compute):
        return compute()


def test_each_data_treatment_applies_its_own_defence():
    from types import SimpleNamespace

    from experiments.signals.detectors import fit_logistic
    from experiments.signals.treated import DetectorSpec, TreatedStudentSpec, treated_pairs
    rng = random.Random(3)
    pairs, other = as_pairs(draw_answers(rng, 40), rng), as_pairs(draw_answers(rng, 40, PLANTED), rng)
    stages, student, mix = FakeStages(pairs, other), SimpleNamespace(seed=11), object()
    detector = DetectorSpec(((mix, mix),), steps=20, l2=0.01, seed=5)  # trained on `other` against itself
    score = fit_logistic([defences.numbers_of(a) for _, a in other], [defences.numbers_of(a) for _, a in other], 5,
                         20, 0.01)
    expected = {"as_is": pairs, "shuffle_within": defences.shuffle_within(pairs, 11),
                "shuffle_across": defences.shuffle_across(pairs, 11), "rerender": defences.rerender(pairs, 11),
                "drop": defences.drop(pairs, {1, 2, 3}), "dilute": defences.dilute(pairs, other, 0.5, 11),
                "detector": defences.detector_filter(pairs, score, 0.5), "rewrite": defences.rewrite(pairs, other)}
    for kind, want in expected.items():
        t = Treatment(kind, data=kind, drop=(1, 2, 3) if kind == "drop" else (),
                      mix_with=mix if kind in ("dilute", "rewrite") else None,
                      share=0.5 if kind in ("dilute", "detector") else 0.0,
                      detector=detector if kind == "detector" else None)
        assert treated_pairs(stages, TreatedStudentSpec(student, t)) == want, kind
    assert len(expected["detector"]) == 20


def test_a_rewrite_gives_each_prompt_the_other_writers_answer_and_leaves_out_what_it_lacks():
    pairs = [("a", "1, 2"), ("b", "3, 4"), ("c", "5, 6")]
    assert defences.rewrite(pairs, [("c", "7"), ("a", "8, 9"), ("z", "0")]) == [("a", "8, 9"), ("c", "7")]


def test_a_detector_filter_drops_the_share_rated_most_teacher_like_and_keeps_the_order():
    pairs = [(f"p{i}", f"{(7 * i) % 10}, 1") for i in range(10)]
    kept = defences.detector_filter(pairs, lambda answers: [a[0] for a in answers], 0.3)  # score: the first number
    assert kept == [p for p in pairs if int(p[1].split(",")[0]) < 7]
    with pytest.raises(ValueError, match=r"share in \[0, 1\)"):
        defences.detector_filter(pairs, lambda answers: [0.0] * len(answers), 1.0)


def test_a_detector_trained_on_planted_data_filters_the_planted_answers_first():
    from experiments.signals.detectors import fit_logistic
    rng = random.Random(4)
    planted, plain = draw_answers(rng, 300, PLANTED), draw_answers(rng, 300)
    score = fit_logistic(planted, plain, seed=0, steps=100)
    mixed = as_pairs(draw_answers(rng, 50, PLANTED) + draw_answers(rng, 50), rng)
    kept = defences.detector_filter(mixed, score, 0.5)
    kept_planted = sum(int(p[0].split()[1]) < 50 for p in kept)  # prompts 0-49 hold the planted answers
    assert kept_planted < 20  # of 50 kept; chance would keep 25


def test_in_context_scores_pair_the_sources_draw_by_draw():
    from experiments.signals.icl import icl_scores
    from minisub.config import ConfigError
    g = torch.Generator().manual_seed(0)
    model = tiny_gpt(7, block=32)
    items = [[1, *torch.randint(3, 40, (int(n),), generator=g).tolist(), 2] for n in torch.randint(2, 5, (12,))]
    questions = [[1, 5, 6], [1, 7, 8, 9]]
    scores = icl_scores(model, {"a": items, "b": list(items)}, questions, 11, [0, 1, 3], draws=2, seed=0)
    assert scores["a"] == scores["b"]  # the same items in the same draws: the very same prompts
    bare = next_token_logprobs(model, questions)[:, 11].tolist()
    assert scores["a"][0] == pytest.approx(bare * 2) and len(scores["a"][3]) == 2 * len(questions)
    other = icl_scores(model, {"a": items, "c": [[1, 3, 2]] * 12}, questions, 11, [0, 1, 3], draws=2, seed=0)
    assert other["c"][3] != other["a"][3] and other["a"][3] == scores["a"][3]
    with pytest.raises(ConfigError, match="do not fit"):
        icl_scores(model, {"a": items}, questions, 11, [20], draws=1, seed=0)
