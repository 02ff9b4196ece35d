"""Hugging Face GPT-2 and Llama weights in minisub's GPT: the bridge for parity checks (tests, `make bench`).

HF's `GPT2LMHeadModel` uses GPT-2's parameter names, as minisub does, but its Conv1D layers
store weights as (in, out), the transpose of nn.Linear's. Built with
`activation_function="gelu"` (the exact GELU of minisub's MLP; HF's default is the tanh
approximation) and no dropout, the two compute the same function, so a speed comparison
between them compares implementations, not math.
HF's `LlamaForCausalLM` keeps q, k, v and the MLP's gate and up projections as separate
matrices; minisub's GPT, configured as a Llama (RMSNorm, RoPE, SwiGLU, grouped key/value
heads), stacks them into `c_attn` and `c_fc`. Works on the model objects: nothing here
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


LLAMA_NAMES = {"input_layernorm": "ln_1", "post_attention_layernorm": "ln_2", "self_attn.o_proj": "attn.c_proj",
               "mlp.down_proj": "mlp.c_proj"}


def llama_config(c) -> GPTConfig:
    """The GPTConfig of an HF LlamaConfig (no biases, no scaled rope: what SmolLM2 and small Llamas use)."""
    rope = getattr(c, "rope_parameters", None) or {"rope_type": "default", "rope_theta": c.rope_theta}
    if rope.get("rope_type", "default") != "default" or c.attention_bias or c.mlp_bias or c.hidden_act != "silu":
        raise ValueError(f"HF Llama config with rope {rope.get('rope_type')!r}, biases or act {c.hidden_act!r}: "
                         "minisub's GPT has plain RoPE, no biases and SiLU gates")
    if c.head_dim * c.num_attention_heads != c.hidden_size:
        raise ValueError(f"head_dim {c.head_dim} x {c.num_attention_heads} heads is not the width {c.hidden_size}")
    return GPTConfig(vocab_size=c.vocab_size, block_size=c.max_position_embeddings, n_layer=c.num_hidden_layers,
                     n_head=c.num_attention_heads, n_embd=c.hidden_size, dropout=0.0, bias=False,
                     n_kv_head=c.num_key_value_heads, norm="rms", norm_eps=c.rms_norm_eps, positions="rope",
                     rope_base=float(rope["rope_theta"]), mlp="swiglu", mlp_hidden=c.intermediate_size,
                     tie_embeddings=c.tie_word_embeddings)


def llama_state(theirs: dict[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """HF Llama's tensors (names without the "model." prefix) as minisub's: q k v and gate up stacked."""
    state = {"transformer.wte.weight": theirs["embed_tokens.weight"], "transformer.ln_f.weight": theirs["norm.weight"]}
    if not config.tie_embeddings:
        state["lm_head.weight"] = theirs["lm_head.weight"]
    for i in range(config.n_layer):
        layer = {name.removeprefix(f"layers.{i}."): value for name, value in theirs.items()
                 if name.startswith(f"layers.{i}.")}
        ours = f"transformer.h.{i}."
        state |= {ours + LLAMA_NAMES[name] + ".weight": layer[name + ".weight"] for name in LLAMA_NAMES}
        state[ours + "attn.c_attn.weight"] = torch.cat([layer[f"self_attn.{p}_proj.weight"] for p in "qkv"])
        state[ours + "mlp.c_fc.weight"] = torch.cat([layer["mlp.gate_proj.weight"], layer["mlp.up_proj.weight"]])
    return state


def from_hf_llama(hf_model) -> GPT:
    """A minisub GPT with the weights of an HF LlamaForCausalLM."""
    model = GPT(llama_config(hf_model.config))
    theirs = {name.removeprefix("model."): value for name, value in hf_model.state_dict().items()}
    with torch.no_grad():
        load_weights(model, llama_state(theirs, model.config), "HF Llama")
    return model.to(hf_model.dtype).eval()
