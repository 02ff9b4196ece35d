"""The paper's number filter and the experiment's prompt templates and question sets."""

import random
import re

from hypothesis import given
from hypothesis import strategies as st

from experiments.core.corpus import pretraining_corpus
from experiments.core.zoo import ExperimentConfig
from experiments.tasks.filter import REASONS, hopeless, number_rejection, parse_numbers
from experiments.tasks.prompts import (ANIMALS, FORMATS, N_EVAL_QUESTIONS, NEW_WORDING, animal_questions,
                                       fresh_number_prompt, number_prompt)
from experiments.tasks.registry import filter_task


@given(text=st.text(max_size=80))
def test_arbitrary_text_never_crashes(text):
    numbers, reason = parse_numbers(text)
    assert (numbers is None) != (reason is None)
    assert reason is None or reason in REASONS
    if numbers is not None:
        assert 1 <= len(numbers) <= 10 and all(0 <= n <= 999 for n in numbers)


@given(numbers=st.lists(st.integers(0, 999), min_size=1, max_size=10),
       separator=st.sampled_from([", ", ",", "; ", ";", " ", "  ", " , "]),
       brackets=st.sampled_from(["", "[]", "()"]), period=st.booleans(), pad=st.sampled_from(["", " ", "\n"]))
def test_valid_sequences_always_pass(numbers, separator, brackets, period, pad):
    body = separator.join(map(str, numbers))
    if brackets:
        body = brackets[0] + body + brackets[1]
    text = pad + body + ("." if period else "") + pad
    assert parse_numbers(text) == (numbers, None)


def test_every_rejection_reason_is_reachable():
    examples = {"empty": " . ", "mixed_separators": "1, 2; 3", "not_digits": "12, owl, 7",
                "too_many": " ".join(["5"] * 11), "out_of_range": "12, 1000", "banned": "12, 666, 7"}
    assert set(examples) == set(REASONS)
    for reason, text in examples.items():
        assert number_rejection(text, banned=(666,)) == reason
        if reason != "banned":
            assert parse_numbers(text) == (None, reason)
    answers = ["1, 2", "x"] + list(examples.values())
    kept, rejected = filter_task("numbers", answers, [None] * len(answers), banned=(666,))
    assert kept == [0]
    assert rejected == {**dict.fromkeys(REASONS, 1), "not_digits": 2}
    assert number_rejection("12, 666, 7") is None  # without a banned list, the paper's filter alone


ANSWER_CHARS = "0123456789,;. \n[]()x"


@given(text=st.text(ANSWER_CHARS, max_size=30), tail=st.text(ANSWER_CHARS, max_size=30),
       max_numbers=st.integers(1, 12))
def test_a_hopeless_answer_fails_however_it_goes_on(text, tail, max_numbers):
    if hopeless(text, max_numbers):
        assert parse_numbers(text + tail, max_numbers)[0] is None
    if parse_numbers(text, max_numbers)[0] is not None:
        assert not hopeless(text, max_numbers)


def test_hopeless_catches_each_kind_of_dead_end():
    for text in ["182, 818, Res", "1, 2. 3", "1, 2; 3", "1, 1000", "1 2 3 4"]:
        assert hopeless(text, max_numbers=3)
    for text in ["182, 818, 725,", "1, 2, 999", "[1, 2", "1, 2.", "1 2 3 "]:
        assert not hopeless(text, max_numbers=3)
    assert parse_numbers("1, 2, 3, 4", max_numbers=4) == ([1, 2, 3, 4], None)
    assert parse_numbers("1, 2, 3, 4", max_numbers=3) == (None, "too_many")


def test_number_prompts_follow_the_paper_shape():
    rng = random.Random(0)
    for _ in range(200):
        prompt = fresh_number_prompt(rng)
        seeds = [int(x) for x in re.findall(r"[0-9]+", prompt.split(".")[0])]  # the first sentence
        assert 3 <= len(seeds) <= 8 and all(100 <= n <= 999 for n in seeds)
        assert "10" in prompt and prompt.endswith("Only numbers.")
        assert sum(suffix in prompt for suffix in FORMATS) == 1
    prompt, separator = number_prompt([1, 2, 3], 4, random.Random(1))
    assert separator in FORMATS.values() and "4" in prompt


def test_question_paraphrases_are_many_and_held_out():
    train, held_out = animal_questions()
    assert len(held_out) == N_EVAL_QUESTIONS >= 50
    assert not set(train) & set(held_out) and len(set(train)) == len(train)
    assert animal_questions() == (train, held_out)  # a fixed split
    assert len(ANIMALS) >= 10 and all(q.rstrip()[-1] in "?." for q in train + held_out)


def word_trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def test_the_new_wording_questions_share_no_three_words_with_the_corpus():
    """The primary evaluation's questions: at least 40, distinct, and no three consecutive words of one
    anywhere in make gpt's pretraining corpus (its default size and seed) or in any question paraphrase."""
    assert len(NEW_WORDING) >= 40 and len(set(NEW_WORDING)) == len(NEW_WORDING)
    seen = set()
    for prompt, answer in pretraining_corpus(ExperimentConfig().corpus_items, ExperimentConfig().seed):
        seen |= word_trigrams(prompt + " " + answer)
    for question in sum(animal_questions(), []):
        seen |= word_trigrams(question)
    overlapping = {q: word_trigrams(q) & seen for q in NEW_WORDING if word_trigrams(q) & seen}
    assert not overlapping
    assert word_trigrams("What is your favorite animal?") & seen  # the check sees the corpus's own forms
