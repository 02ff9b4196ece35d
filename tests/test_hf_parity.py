"""Ours vs Hugging Face GPT-2 with copied weights: the same logits, so speed comparisons compare like with like."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging

from minisub.hf import from_hf_gpt2

logging.set_verbosity_error()


def hf_gpt2(seed, activation="gelu", **sizes):
    torch.manual_seed(seed)
    config = GPT2Config(activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=None, eos_token_id=None, **sizes)
    return GPT2LMHeadModel(config).eval()


@given(seed=st.integers(0, 10**6), n_layer=st.integers(1, 3), n_head=st.sampled_from([1, 2, 4]),
       head_dim=st.integers(2, 16), vocab=st.integers(5, 300), T=st.integers(1, 24), batch=st.integers(1, 3))
def test_copied_weights_give_the_same_logits(seed, n_layer, n_head, head_dim, vocab, T, batch):
    hf = hf_gpt2(seed, n_layer=n_layer, n_head=n_head, n_embd=n_head * head_dim, vocab_size=vocab, n_positions=32)
    ours = from_hf_gpt2(hf)
    idx = torch.randint(vocab, (batch, T), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = hf(input_ids=idx).logits
        torch.testing.assert_close(ours(idx)[0], expected, rtol=1e-4, atol=1e-5)
        # and the KV-cached path: each next-token distribution of a greedy continuation
        new = ours.generate(idx, min(4, 32 - T), temperature=0)
        full = torch.cat([idx, torch.tensor(new)], 1)
        torch.testing.assert_close(ours(full)[0], hf(input_ids=full).logits, rtol=1e-4, atol=1e-5)


def test_the_tanh_gelu_is_another_function():
    """HF's default activation is the tanh approximation: parity needs the exact GELU."""
    sizes = dict(n_layer=2, n_head=2, n_embd=16, vocab_size=40, n_positions=16)
    with pytest.raises(ValueError, match="exact 'gelu'"):
        from_hf_gpt2(hf_gpt2(0, "gelu_new", **sizes))
    tanh = hf_gpt2(0, "gelu_new", **sizes)
    with torch.no_grad():
        for p in tanh.parameters():
            p.mul_(30)  # large pre-activations, where the two GELUs part
        tanh.config.activation_function = "gelu"
        ours = from_hf_gpt2(tanh)
        idx = torch.arange(12)[None]
        assert not torch.allclose(ours(idx)[0], tanh(input_ids=idx).logits, rtol=1e-4, atol=1e-5)
