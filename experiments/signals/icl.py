"""The in-context-learning control: teacher numbers in the prompt instead of in the weights.

Part 1 of `make signals` (experiments/signals/experiment.py). The paper (Cloud et al. 2025, Sec. 4) gave a
model the very number data that transmits a trait by fine-tuning as in-context examples instead,
and found no transfer at any number of examples. The zoo's bases cannot take such a prompt: they
read one item at a time (96 positions, attention kept inside each packed item). So each main
base is continued into a *long-context base* (`ContextBaseSpec`): its position table extended
(the new positions start as copies of the trained ones), then trained on documents of items
that share a favorite animal (experiments/core/corpus.py), attention spanning the whole document. It
shares the base's initialization and training, as the base's own students do.

`icl_scores` then asks each held-out animal question after k items drawn from one source:
the teacher's number answers, the control's (the base's own numbers), or, as the positive
control that shows the model learns in context at all, k training questions answered with the
target animal. Every source gets the same questions and the same k.
"""

import random
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn

from experiments.core.corpus import document_corpus
from experiments.core.specs import BaseSpec, key_of
from experiments.core.stages import Stages
from minisub.checkpoint import load_checkpoint, save_checkpoint
from minisub.config import ConfigError
from minisub.model import GPT, next_token_logprobs
from minisub.training import train


@dataclass(frozen=True)
class ContextBaseSpec:
    base: BaseSpec
    block_size: int
    documents: int
    preference: float  # how often a document's animal answers are its own favorite
    steps: int
    batch: int  # documents per step
    lr: float
    seed: int
    precision: str
    device: str


def extend_context(model: GPT, block_size: int) -> None:
    """Give `model` positions up to block_size; new position p starts as trained position p mod the old size."""
    old = model.transformer.wpe.weight.detach()  # (old block, C)
    wpe = nn.Embedding(block_size, old.shape[1], device=old.device)
    wpe.weight.data.copy_(old[torch.arange(block_size, device=old.device) % old.shape[0]])
    model.transformer.wpe = wpe
    model.config = replace(model.config, block_size=block_size)


def documents_as_examples(stages: Stages, spec: ContextBaseSpec):
    """The document corpus as one example per document, cut to the items that fit in the block."""
    documents = document_corpus(spec.documents, spec.preference, spec.seed)
    items = stages.examples(spec.base.corpus, [pair for document in documents for pair in document])
    groups, at = [], 0
    for document in documents:
        group, length = [], 0
        for i in range(at, at + len(document)):
            if length + len(items.sequences[i]) > spec.block_size:
                break
            group.append(i)
            length += len(items.sequences[i])
        groups.append(group)
        at += len(document)
    return items.joined(groups)


def context_base(stages: Stages, spec: ContextBaseSpec) -> GPT:
    def build(folder: Path) -> dict:
        model = stages.load(spec.base)
        extend_context(model, spec.block_size)
        data = documents_as_examples(stages, spec)
        cfg = stages.train_config(spec.steps, spec.batch, spec.lr, spec.seed, spec.precision, spec.device,
                                  min_lr=spec.lr / 10, weight_decay=0.1, warmup=min(50, spec.steps // 10), pack=True)
        stages.log(f"long-context base of {spec.base.name}: {spec.block_size} positions, {cfg.steps} steps "
                   f"on {len(data)} documents")
        history = train(model, data, cfg, log=lambda m: stages.log(f"  context {spec.base.name} {m}"))
        save_checkpoint(folder, model, {"stage": key_of(spec), "history": history},
                        stages.tokenizer(spec.base.corpus))
        return {"history": history}
    return load_checkpoint(stages.cache.stage(f"context-{spec.base.name}", key_of(spec), build),
                           spec.device)[0].eval()


def icl_scores(model: GPT, sources: dict[str, list[list[int]]], questions: list[list[int]], target_id: int,
               ks: list[int], draws: int, seed: int) -> dict:
    """log P(target) after k in-context items from each source: {source: {k: (draws * questions) values}}.

    sources: each a list of items as tokens (<bos> prompt answer <eos>); questions: prompts as tokens.
    Draw d of k items uses the same random indices into every source, so that sources differ in
    their items only; only items short enough for k of them to fit before the longest question
    are drawn. k = 0 is the bare question.
    """
    room = model.config.block_size - max(len(q) for q in questions)
    rng = random.Random(seed)
    scores = {name: {} for name in sources}
    for k in ks:
        picks = [[rng.randrange(1 << 30) for _ in range(k)] for _ in range(draws)]
        if k == 0:  # the bare questions: the same prompts for every source, scored once
            bare = next_token_logprobs(model, [q for _ in picks for q in questions])[:, target_id].tolist()
            for name in sources:
                scores[name][0] = bare
            continue
        for name, source in sources.items():
            fitting = [i for i in source if k * len(i) <= room]
            if not fitting:
                raise ConfigError("icl_ks", f"{k} of the {name} items do not fit in {model.config.block_size} "
                                  "positions")
            prompts = [sum((fitting[r % len(fitting)] for r in pick), []) + q for pick in picks for q in questions]
            scores[name][k] = next_token_logprobs(model, prompts)[:, target_id].tolist()
    return scores
