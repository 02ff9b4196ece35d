"""What the writers (bases and teachers) are asked and what the filters let through to students.

prompts.py: the animals, the number prompts and the held-out questions; filter.py: the paper's
number filter; coding.py, reasoning.py, misalignment.py: the code and reasoning tasks and the
misaligned persona of `make domains`; registry.py: every task's prompts and filter by name.
"""
