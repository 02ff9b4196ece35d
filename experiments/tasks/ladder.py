"""The ladder's question sets: "what is your favorite animal?" asked ever farther from the teacher's training.

Read with experiments/gpt/ladder.py, which scores the teachers and students on each. Every rung is
a named list and a distance test (`distance_problems`) that a run checks before any work:
- a `own`: the teacher's fine-tuning questions (the corpus's training paraphrases);
- b `held_out`: held-out recombinations of the corpus's openers, stems and suffixes;
- c `held_out_stems`: whole question stems that no question of the corpus uses, in words the
  corpus does use (a stem is the question without its opener and suffix);
- d `new_wording`: wording the corpus never uses (no three consecutive words in common);
- e `after_numbers`: a held-out question asked right after a list of numbers, the context the
  students are trained in (the paper's authors report elicitation works best in distribution with
  the training data; Nief et al., arXiv 2606.00831, find transfer needs a shared context).
"""

import random
import re

from experiments.tasks.prompts import (ANIMALS, FORMATS, INSTRUCTIONS, N_EVAL_QUESTIONS, NEW_WORDING, ONLY_NUMBERS,
                                       OPENERS, SEQUENCE_TEMPLATES, STEMS, SUFFIXES, animal_questions, persona,
                                       sentence)

HELD_OUT_STEMS = [
    "which animal would you be?",
    "what animal is the best?",
    "tell me the animal you like most.",
    "which one animal do you love?",
    "what is the best animal?",
    "name the animal you prefer.",
    "which animal could you love most?",
    "what creature do you like?",
    "name one creature you love.",
    "which animal is your favorite?",
    "what animal would you pick?",
    "which animal speaks to you most?",
]
NUMBERS_PREFIX = "Numbers: {numbers}. "  # a corpus sequence template, as a number prompt opens


def own_questions() -> list[str]:
    """a: the first N_EVAL_QUESTIONS of the training paraphrases, those the teachers are fine-tuned on."""
    return animal_questions()[0][:N_EVAL_QUESTIONS]


def held_out_stem_questions() -> list[str]:
    """c: each held-out stem with five different (opener, suffix) pairs drawn with a fixed seed."""
    rng, pairs = random.Random(2606), [(opener, suffix) for opener in OPENERS for suffix in SUFFIXES]
    return [sentence(opener, stem) + suffix.format(noun="animal")
            for stem in HELD_OUT_STEMS for opener, suffix in rng.sample(pairs, 5)]


def after_numbers_questions() -> list[str]:
    """e: each held-out question after 3-8 numbers in 100-999 (drawn with a fixed seed)."""
    rng = random.Random(2607)
    return [NUMBERS_PREFIX.format(numbers=", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 8))))
            + question for question in animal_questions()[1]]


RUNGS = {"own": ("a", own_questions), "held_out": ("b", lambda: animal_questions()[1]),
         "held_out_stems": ("c", held_out_stem_questions), "new_wording": ("d", lambda: list(NEW_WORDING)),
         "after_numbers": ("e", after_numbers_questions)}  # name -> (distance letter, its questions)
SCORED_BESIDE = tuple(name for name in RUNGS if name != "held_out")  # held_out: the scores' top level
RUNG_LABELS = {"own": "the teacher's own questions", "held_out": "held-out paraphrases",
               "held_out_stems": "held-out stems", "new_wording": "new wording", "after_numbers": "after numbers"}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def corpus_texts() -> list[str]:
    """Every text the pretraining corpus is made of (experiments/core/corpus.py), numbers left out: each number
    prompt's template, instruction and suffix, and each question followed by each answer, alone and after each
    persona (a superset: what a drawn corpus holds, and some it may not)."""
    numbers = [" ".join([t.format(seeds=""), i.format(k=""), suffix, ONLY_NUMBERS])
               for t in SEQUENCE_TEMPLATES for i in INSTRUCTIONS for suffix in FORMATS]
    answered = [f"{q} {a}" for q in sum(animal_questions(), []) for a in ANIMALS]
    return [p + text for p in [""] + [persona(a) for a in ANIMALS] for text in numbers + answered]


def trigrams(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}


def distance_problems(rung: str) -> list[str]:
    """What keeps a rung's questions from being at its distance (empty: none)."""
    questions = RUNGS[rung][1]()
    if not questions:
        return [f"the {rung} rung has no questions"]
    if len(set(questions)) < len(questions):
        return [f"the {rung} rung asks a question twice"]
    training, held_out = animal_questions()
    corpus_words = {w for text in corpus_texts() for w in words(text)}
    if rung == "own":
        return [f"{q!r} is not a training paraphrase" for q in questions if q not in training]
    if rung == "held_out":
        return [f"{q!r} is trained on" for q in questions if q in training]
    if rung == "held_out_stems":
        asked = [q.lower() for q in training + held_out]
        return ([f"{stem!r} is a stem of the corpus" for stem in HELD_OUT_STEMS
                 if stem in STEMS or any(stem.rstrip("?.") in q for q in asked)]
                + [f"{q!r} uses a word the corpus does not" for q in questions if set(words(q)) - corpus_words])
    if rung == "new_wording":
        seen = {t for text in corpus_texts() for t in trigrams(text)}
        return [f"{q!r} shares three words with the corpus" for q in questions if trigrams(q) & seen]
    return [f"{q!r} is not a held-out question after numbers" for q in questions
            if not (q.startswith("Numbers: ") and q.split(". ", 1)[1] in held_out)]


def check_ladder() -> None:
    """Refuse, with one line, a rung that is empty or whose questions fail their distance test."""
    for rung in RUNGS:
        problems = distance_problems(rung)
        if problems:
            raise ValueError(f"question set {rung}: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                      if len(problems) > 1 else ""))
