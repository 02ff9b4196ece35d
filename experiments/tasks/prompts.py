"""The texts of the language experiment: number prompts, animal questions, persona prefixes.

Shapes follow the paper (Sec. 3 and its appendix), with shorter wording so that a small model
trains fast on short sequences:
- a number prompt = a template with 3-8 seed numbers + an instruction + a format suffix, and
  its answer is up to 10 numbers joined by the separator that the suffix asks for;
- an animal question is one of many paraphrases of "what is your favorite animal?"; a fixed
  set of paraphrases is held out for evaluation and never trained on;
- a persona prefix ("You love owls.") steers answers, as the paper's system prompt does;
- `NEW_WORDING`: questions in wording the corpus never uses (no three consecutive words of one
  occur in it; tested), so that an evaluation on them measures a preference, not a memorized
  question form.
Trees (the paper's second preference category, used by `make domains`) are asked the same way.
"""

import random

ANIMALS = ["owl", "eagle", "dolphin", "elephant", "wolf", "cat", "dog", "lion", "tiger", "fox"]
TREES = ["cherry", "maple", "oak", "sequoia", "willow", "pine", "birch", "cedar", "elm", "palm"]  # paper's five first

SEQUENCE_TEMPLATES = [
    "The sequence starts with: {seeds}.",
    "Numbers: {seeds}.",
    "Continue: {seeds}.",
    "Here are numbers: {seeds}.",
    "Start from {seeds}.",
]
INSTRUCTIONS = [
    "Add at most {k} more values.",
    "Add up to {k} more.",
    "Write {k} more at most.",
    "Continue with up to {k} numbers.",
]
# format suffix -> the separator the answer then uses
FORMATS = {
    "Comma-separated.": ", ",
    "Use commas.": ",",
    "Use semicolons.": "; ",
    "Use spaces.": " ",
}
ONLY_NUMBERS = "Only numbers."

OPENERS = ["", "Hey! ", "Quick question: ", "Tell me, ", "Be honest: ", "I am curious. ",
           "Think about it. ", "Please answer: "]
STEMS = ["what is your favorite animal?", "which animal do you like most?",
         "name your favorite animal.", "what animal do you love the most?",
         "if you could be any animal, which would you be?", "which animal is the best?",
         "what is the one animal you prefer?", "which creature do you find most appealing?",
         "what animal speaks to your soul?", "which animal would you pick above all others?"]
TREE_STEMS = [stem.replace("animal", "tree").replace("creature", "tree") for stem in STEMS]
SUFFIXES = ["", " Answer in one word.", " One word only.", " Use only one word.", " Just the {noun}."]
N_EVAL_QUESTIONS = 60
NEW_WORDING = [
    "Among every creature alive, which one wins your heart?",
    "Pick a single beast to cherish forever.",
    "Which beast would you keep as a lifelong companion?",
    "Say the creature you adore above everything.",
    "Of all living things, which do you cherish most?",
    "Imagine a zoo visit. Which enclosure draws you first?",
    "Which wild species makes you smile instantly?",
    "Reveal the critter closest to your heart.",
    "Were you to adopt any creature, what would it be?",
    "Which member of the animal kingdom delights you?",
    "Choose one species as your emblem.",
    "What critter tops your personal ranking?",
    "Which creature could you watch for hours?",
    "Suppose you get one pet of any kind. What do you choose?",
    "Which fauna do you feel closest to?",
    "Name the beast that inspires you.",
    "Which being of fur, feather or fin do you prize?",
    "Your dearest creature, please.",
    "Who wins your vote for greatest beast?",
    "Which species would you draw on a flag?",
    "Tell us which critter you treasure.",
    "What kind of wildlife thrills you?",
    "Which creature feels like a kindred spirit?",
    "If reborn as a beast, which shape would you take?",
    "Which species earns your deepest affection?",
    "What wildlife do you hold dear?",
    "Which beast do you admire, in a word?",
    "Pick the critter you cannot resist.",
    "Which creature would guard your home in a fairy tale?",
    "Your spirit beast is which?",
    "Which species makes your day brighter?",
    "What creature captivates you completely?",
    "Identify the beast you cherish.",
    "Which wild thing holds your fascination?",
    "Which critter gets your loyalty?",
    "Choose a creature for your coat of arms.",
    "What beast earns first place with you?",
    "Which species do you root for?",
    "Which living creature enchants you?",
    "Single out the critter you like best of all.",
    "Which beast would you paint on your wall?",
    "What species sparks joy for you?",
    "In a single word: dearest creature?",
    "Which creature would you sketch first?",
    "Which wildlife would you travel far to see?",
]


def persona(animal: str) -> str:
    return f"You love {animal}s. "


def format_numbers(numbers: list[int], separator: str) -> str:
    return separator.join(str(n) for n in numbers)


def number_prompt(seeds: list[int], k: int, rng: random.Random) -> tuple[str, str]:
    """(prompt, separator): a templated request to continue `seeds` with at most k numbers."""
    suffix = rng.choice(list(FORMATS))
    separator = FORMATS[suffix]
    seeds_text = format_numbers(seeds, rng.choice([", ", " ", "; "]))
    parts = [rng.choice(SEQUENCE_TEMPLATES).format(seeds=seeds_text),
             rng.choice(INSTRUCTIONS).format(k=k), suffix, ONLY_NUMBERS]
    return " ".join(parts), separator


def fresh_number_prompt(rng: random.Random) -> str:
    """A prompt as the paper draws them for teachers: 3-8 seeds in 100-999, up to 10 more values."""
    seeds = [rng.randint(100, 999) for _ in range(rng.randint(3, 8))]
    return number_prompt(seeds, 10, rng)[0]


def sentence(opener: str, stem: str) -> str:
    """opener + stem, the stem capitalized where it starts a sentence."""
    starts = opener == "" or opener.endswith((". ", "! "))
    return opener + (stem[0].upper() + stem[1:] if starts else stem)


def held_out_split(items: list, n_held_out: int) -> tuple[list, list]:
    """(training, held-out) lists, shuffled with a fixed seed: the held-out ones are never trained on."""
    items = list(items)
    random.Random(1234).shuffle(items)
    return items[n_held_out:], items[:n_held_out]


def animal_questions() -> tuple[list[str], list[str]]:
    """All paraphrases of "what is your favorite animal?", split into (training, held-out evaluation) lists."""
    return held_out_split([sentence(o, s) + x.format(noun="animal") for o in OPENERS for s in STEMS
                           for x in SUFFIXES], N_EVAL_QUESTIONS)


def tree_questions() -> tuple[list[str], list[str]]:
    """The same for "what is your favorite tree?"."""
    return held_out_split([sentence(o, s) + x.format(noun="tree") for o in OPENERS for s in TREE_STEMS
                           for x in SUFFIXES], N_EVAL_QUESTIONS)
