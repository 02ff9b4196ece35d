"""The shared core of the language experiments, upstream first.

corpus.py (the synthetic pretraining corpus) -> specs.py (frozen dataclasses, the cache keys) ->
stages.py (corpus, base, teacher, writing, scores, student; cached by cache.py) -> zoo.py (the
experiments' config and the bases it names) -> design.py (the paper's arms) -> students.py (the
restricted losses) and evaluate.py (P(animal)) -> arms.py (an arm over every base) ->
analysis.py (its statistics, counting bases) and matched.py (the format-matched subsets);
cli.py is the command line every experiment shares, plots.py what their plots share.
"""
