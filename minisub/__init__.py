"""minisub: a small GPT of our own for the subliminal-learning experiments.

Pipeline: tokenizer.py (BPE, one token per number 0-999) -> data.py (examples with loss
masks) -> model.py (GPT, KV-cache sampling, exact next-token probabilities) -> training.py
(training loop, distributed.py under torchrun) -> checkpoint.py (safetensors folders, through
files.py: atomic writes, verified reads) and lora.py (fused LoRA adapters).

The package is also, deliberately, the one home of what `toy_mnist` and `experiments` share:
config.py (dataclass fields with help text and limits), cli.py (flags made from them),
precision.py (fp32 / bf16 chosen by measurement), stats.py (t-intervals and tests over
independent replicates), losses.py (the KL imitation loss), log.py (progress lines and the
machine's description), files.py and locks.py.

The engine's names below are exported lazily: `import minisub.stats` (as the toy does) loads
neither the GPT nor the tokenizer library.
"""

import importlib

EXPORTS = {
    "BPETokenizer": "tokenizer", "Batch": "data", "ExampleSet": "data", "FileError": "files", "GPT": "model",
    "GPTConfig": "model", "KVCache": "model", "LoRALinear": "lora", "TrainConfig": "training", "add_lora": "lora",
    "continuation_logprobs": "model",
    "fuse_lora": "lora", "load_adapter": "lora", "load_checkpoint": "checkpoint", "next_token_logprobs": "model",
    "save_adapter": "lora", "save_checkpoint": "checkpoint", "train": "training", "unfuse_lora": "lora",
}
__all__ = sorted(EXPORTS)


def __getattr__(name: str):
    """`minisub.GPT` and the other exports, imported from their module on first use (PEP 562)."""
    if name not in EXPORTS:
        raise AttributeError(f"module 'minisub' has no attribute {name!r}")
    return getattr(importlib.import_module(f"minisub.{EXPORTS[name]}"), name)
