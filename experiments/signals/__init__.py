"""`make signals` (`python -m experiments.signals`): where the hidden signal lives, and what removes it.

experiment.py runs the five parts on `make gpt`'s cache: icl.py (the numbers in context instead
of in training), detectors.py (can the data be told apart?), entanglement.py (numbers tied to
the animal), divergence.py (the positions where teacher and base disagree) and defend.py (every
defence, at the teacher, in the data or at the student, and its price; defences.py the rewrites
of the data, tuning.py the changes to a student's training); treated.py is the stage of a student
whose data or training one of them changes. plots.py draws each part, render.py its page.
"""
