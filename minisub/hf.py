"""Hugging Face GPT-2 weights in minisub's GPT: the bridge for parity checks (tests, `make bench`).

HF's `GPT2LMHeadModel` uses GPT-2's parameter names, as minisub does, but its Conv1D layers
store weights as (in, out), the transpose of nn.Linear's. Built with
`activation_function="gelu"` (the exact GELU of minisub's MLP; HF's default is the tanh
approximation) and no dropout, the two compute the same function, so a speed comparison
between them compares implementations, not math. Works on the model object: nothing here
imports transformers.
"""

import torch

from minisub.checkpoint import load_weights
from minisub.model import GPT, GPTConfig

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def from_hf_gpt2(hf_model) -> GPT:
    """A minisub GPT with the weights of an HF GPT2LMHeadModel (exact GELU, biases, tied head)."""
    c = hf_model.config
    if c.activation_function != "gelu":
        raise ValueError(f"HF model uses activation {c.activation_function!r}; minisub's MLP is the exact 'gelu'")
    model = GPT(GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer,
                          n_head=c.n_head, n_embd=c.n_embd, dropout=0.0, bias=True))
    ours = set(model.state_dict())
    state = {name: value.T if name.endswith(CONV1D_WEIGHTS) else value
             for name, value in hf_model.state_dict().items() if name in ours and name != "lm_head.weight"}
    with torch.no_grad():
        load_weights(model, state, "HF GPT-2")
    return model.to(hf_model.dtype).eval()
