"""toy_mnist: the paper's one-step theorem and its MNIST MLP demo, many seeds in parallel.

Pipeline: data.py (MNIST) -> mlp.py (N batched MLPs, student inits) -> train.py (teachers,
distillation) and theorem.py (one-step measurements) -> experiment.py (all arms) ->
report.py (plots, table). Run it with `python -m toy_mnist` (`make toy`).
"""
