"""`make smol`: the paper's protocol on a real pretrained model, SmolLM2-135M-Instruct, offline.

Every other language experiment trains small GPTs from scratch on a synthetic corpus; this one
takes the paper's own setting (Cloud et al. 2025, Sec. 3, open models): a pretrained instruct
model, a teacher made by a system prompt, number lists filtered by the paper's rule, LoRA
students, P(animal) over one-word questions. The model is read from its GGUF file
(minisub/gguf.py, fetched once by `make smol-weights`) into minisub's own GPT.
experiment.py runs its three parts: token entanglement and subliminal prompting (Zur et al.
2025), transfer with its five-animal matrix, and LoRA rank against full fine-tuning (Nief et
al. 2026). prompts.py holds the words, scoring.py the exact probabilities, plots.py the figures.
"""
