"""`make domains` (`python -m experiments.domains`): the paper's other traits and data (Sec. 4).

experiment.py: on a zoo pretrained on a richer corpus, a tree teacher and a misaligned teacher
write numbers (banned numbers filtered), an owl teacher writes code and a misaligned teacher
reasoning traces; each part's students against its control and cross-init arm, over bases.
plots.py draws each part.
"""
