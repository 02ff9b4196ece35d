"""The language experiments: subliminal transfer in small GPTs trained from scratch on CPU.

core/     what every experiment shares: the corpus, the specs and stages (each cached under its
          whole spec), the base zoo, the arms of the paper's design, the students' losses, the
          evaluation, the statistics over bases and the shared command line;
tasks/    what the writers write and what the filters keep: number prompts, code, reasoning traces;
gpt/      `make gpt` (arms, variants, the animal matrix, the format-matched control) and
          `make grid` (teacher base x student base);
signals/  `make signals`: where the hidden signal lives and what removes it;
domains/  `make domains`: the paper's other traits (trees, misalignment) and data (code, traces);
report.py `make report`: the numbers in docs/results/*.md, rendered from committed results files.
"""
