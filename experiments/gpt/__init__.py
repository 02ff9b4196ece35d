"""`make gpt`, `grid` and `lora-rank`: does a teacher's love of owls reach a same-init student through numbers?

experiment.py (`python -m experiments.gpt`): on K independently pretrained bases, each base's
teacher writes filtered numbers; the student from the same base is compared with the control
(the base's own numbers) and the cross-init student (the same numbers, the next base), over
bases; then the five animals' matrix and the format-matched control. preregistration.py
fixes, before any data, the primary hypotheses and every family of tests the run reports.
grid.py (`python -m experiments.gpt.grid`): every teacher base x every student base of the zoo,
the fork pair that shares half its pretraining included: transfer follows the shared
initialization (Cloud et al. 2025, Sec. 5). plots.py draws both from their results.
lora_rank.py (`python -m experiments.gpt.lora_rank`): the same bases' students at several LoRA
ranks and with full fine-tuning, against the claim that transfer is a LoRA artifact.
"""
