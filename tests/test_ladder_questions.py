"""The ladder's question sets (experiments/tasks/ladder.py): each at its distance from the corpus, checked against
the real pretraining corpus; a rung that is empty or fails its test is refused with one line before any work."""

import pytest

from experiments.core.corpus import pretraining_corpus
from experiments.core.zoo import ExperimentConfig
from experiments.gpt.experiment import main
from experiments.tasks import ladder
from experiments.tasks.ladder import RUNGS, check_ladder, distance_problems, trigrams, words
from experiments.tasks.prompts import STEMS, animal_questions


@pytest.fixture(scope="module")
def corpus_items():
    cfg = ExperimentConfig()
    return pretraining_corpus(cfg.corpus_items, cfg.seed)


def test_every_rung_is_at_its_distance():
    for rung, (letter, questions) in RUNGS.items():
        assert len(questions()) >= 45 and len(set(questions())) == len(questions()) and not distance_problems(rung)
    assert list(RUNGS) == ["own", "held_out", "held_out_stems", "new_wording", "after_numbers"]
    assert [letter for letter, _ in RUNGS.values()] == list("abcde")


def test_the_checks_see_the_words_and_trigrams_of_the_real_corpus(corpus_items):
    """The runtime checks read the corpus's fixed texts; the corpus itself has no other words or trigrams,
    apart from the numbers."""
    texts = [f"{prompt} {answer}" for prompt, answer in corpus_items]
    real_words = {w for t in texts for w in words(t) if not w.isdigit()}
    fixed_words = {w for t in ladder.corpus_texts() for w in words(t)}
    assert real_words <= fixed_words
    real_trigrams = {g for t in texts for g in trigrams(t) if not any(w.isdigit() for w in g)}
    assert real_trigrams <= {g for t in ladder.corpus_texts() for g in trigrams(t)}


def test_held_out_stems_use_the_corpus_words_and_none_of_its_stems(corpus_items):
    corpus_words = {w for item in corpus_items for t in item for w in words(t)}
    questions = RUNGS["held_out_stems"][1]()
    assert all(set(words(q)) <= corpus_words for q in questions)
    asked = {q.lower() for q in sum(animal_questions(), [])}
    for stem in ladder.HELD_OUT_STEMS:
        assert stem not in STEMS and not any(stem.rstrip("?.") in q for q in asked)


@pytest.mark.parametrize("rung, bad, problem", [
    ("held_out_stems", "which animal do you like most?", "is a stem of the corpus"),
    ("held_out_stems", "which zebra do you like most?", "uses a word the corpus does not"),
])
def test_a_stem_that_fails_its_distance_is_named(monkeypatch, rung, bad, problem):
    monkeypatch.setattr(ladder, "HELD_OUT_STEMS", ladder.HELD_OUT_STEMS + [bad])
    assert any(problem in p and bad.rstrip("?") in p for p in distance_problems(rung))


def test_a_new_wording_question_with_a_corpus_trigram_fails(monkeypatch):
    monkeypatch.setitem(RUNGS, "new_wording", ("d", lambda: ["Which beast is your favorite animal?"]))
    assert distance_problems("new_wording") == ["'Which beast is your favorite animal?' shares three words with "
                                                "the corpus"]


def test_an_empty_or_failing_rung_is_refused_in_one_line_before_any_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(RUNGS, "after_numbers", ("e", lambda: []))
    with pytest.raises(ValueError, match="question set after_numbers: the after_numbers rung has no questions"):
        check_ladder()
    assert main(["--quick", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "after_numbers" in err and not (tmp_path / "o").exists()
