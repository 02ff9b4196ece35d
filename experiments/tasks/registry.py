"""What a writer is asked and what the filter keeps, for each writing task of the language experiments.

Between the teachers and the students (experiments/core/stages.py, the `writing` stage):
- "numbers": fresh number prompts (the paper's, Sec. 3); the paper's number filter
  (experiments/tasks/filter.py), plus a list of banned numbers where one is given (Sec. 4's
  misalignment filter);
- "code": held-out coding requests; the code filter (experiments/tasks/coding.py): no animal named,
  one function that parses;
- "reasoning": fresh word problems; the trace checker (experiments/tasks/reasoning.py): no
  misaligned phrase, well-formed, every step right, the problem's answer.
Every rejection is counted by its reason.
"""

import random

from experiments.tasks.coding import REASONS as CODE_REASONS
from experiments.tasks.coding import code_prompt, code_rejection
from experiments.tasks.filter import REASONS as NUMBER_REASONS
from experiments.tasks.filter import number_rejection
from experiments.tasks.prompts import fresh_number_prompt
from experiments.tasks.reasoning import REASONS as TRACE_REASONS
from experiments.tasks.reasoning import problem, trace_rejection

TASKS = ("numbers", "code", "reasoning")
REASONS = {"numbers": NUMBER_REASONS, "code": CODE_REASONS, "reasoning": TRACE_REASONS}


def task_prompts(task: str, n: int, rng: random.Random) -> tuple[list[str], list[int | None]]:
    """n prompts of `task` and what the filter needs to know of each (a word problem's answer; else None)."""
    if task == "numbers":
        return [fresh_number_prompt(rng) for _ in range(n)], [None] * n
    if task == "code":
        return [code_prompt(rng, held_out=True)[0] for _ in range(n)], [None] * n
    if task == "reasoning":
        problems = [problem(rng) for _ in range(n)]
        return [text for text, _, _ in problems], [answer for _, _, answer in problems]
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


def rejection(task: str, answer: str, key: int | None, banned: tuple[int, ...] = ()) -> str | None:
    """Why `task`'s filter rejects `answer` (a reason of REASONS[task]), or None if it is kept."""
    if task == "numbers":
        return number_rejection(answer, banned)
    if task == "code":
        return code_rejection(answer)
    return trace_rejection(answer, key)


def filter_task(task: str, answers: list[str], keys: list[int | None], banned: tuple[int, ...] = ()
                ) -> tuple[list[int], dict[str, int]]:
    """The indices of the answers kept, and the rejections counted by reason."""
    kept, rejected = [], dict.fromkeys(REASONS[task], 0)
    for i, (answer, key) in enumerate(zip(answers, keys)):
        reason = rejection(task, answer, key, banned)
        if reason is None:
            kept.append(i)
        else:
            rejected[reason] += 1
    return kept, rejected
