"""minisub: a small GPT of our own for the subliminal-learning experiments.

Pipeline: tokenizer.py (BPE, one token per number 0-999) -> data.py (examples with loss
masks) -> model.py (GPT, KV-cache sampling, exact next-token probabilities) -> train.py
(training loop, distributed.py under torchrun) -> checkpoint.py (safetensors folders) and
lora.py (fused LoRA adapters).

The package is also, deliberately, the one home of what `toy_mnist` and `experiments` share:
config.py (dataclass fields with help text and limits), cli.py (flags made from them),
precision.py (fp32 / bf16 chosen by measurement), stats.py (t-intervals and tests over
independent replicates), losses.py (the KL imitation loss) and log.py (progress lines).
"""

from minisub.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minisub.data import Batch, ExampleSet
from minisub.lora import LoRALinear, add_lora, fuse_lora, load_adapter, save_adapter, unfuse_lora
from minisub.model import GPT, GPTConfig, KVCache, next_token_logprobs
from minisub.tokenizer import BPETokenizer
from minisub.train import TrainConfig, train

__all__ = [
    "BPETokenizer", "Batch", "CheckpointError", "ExampleSet", "GPT", "GPTConfig", "KVCache",
    "LoRALinear", "TrainConfig", "add_lora", "fuse_lora", "load_adapter", "load_checkpoint",
    "next_token_logprobs", "save_adapter", "save_checkpoint", "train", "unfuse_lora",
]
