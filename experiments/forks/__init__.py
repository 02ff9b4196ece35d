"""`make forks`: transfer between two models that share the first part of their pretraining, swept over how much they
share (experiments/forks/experiment.py)."""
