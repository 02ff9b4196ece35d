"""Ours configured as a Llama vs Hugging Face's LlamaForCausalLM with copied weights: the same logits, the
same cached greedy continuation, for grouped key/value heads, tied or untied heads and any RoPE base."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging

from minisub.checkpoint import load_checkpoint, save_checkpoint
from minisub.hf import from_hf_llama

logging.set_verbosity_error()


def hf_llama(seed, n_layer=2, n_head=4, n_kv_head=2, head_dim=4, hidden=24, vocab=50, tie=False, rope_base=1e4):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=n_head * head_dim, intermediate_size=hidden,
                         num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_kv_head,
                         max_position_embeddings=32, rms_norm_eps=1e-5, rope_theta=rope_base,
                         tie_word_embeddings=tie, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms away from 1, so that a misplaced norm weight shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


@given(seed=st.integers(0, 10**6), n_layer=st.integers(1, 3), heads=st.sampled_from([(1, 1), (2, 1), (4, 2), (4, 4)]),
       head_dim=st.sampled_from([2, 4, 8]), hidden=st.integers(1, 40), vocab=st.integers(5, 300),
       tie=st.booleans(), rope_base=st.sampled_from([10.0, 1e4, 1e5]), T=st.integers(1, 20), batch=st.integers(1, 3))
def test_copied_weights_give_the_same_logits_and_the_same_cached_greedy_tokens(seed, n_layer, heads, head_dim, hidden,
                                                                               vocab, tie, rope_base, T, batch):
    hf = hf_llama(seed, n_layer, *heads, head_dim, hidden, vocab, tie, rope_base)
    ours = from_hf_llama(hf)
    idx = torch.randint(vocab, (batch, T), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0], hf(input_ids=idx).logits, rtol=1e-5, atol=1e-5)
        new = torch.tensor(ours.generate(idx, min(5, 32 - T), temperature=0))  # through the KV cache
        theirs = hf.generate(idx, max_new_tokens=new.shape[1], do_sample=False, min_new_tokens=new.shape[1])
        assert torch.equal(new, theirs[:, T:])
        full = torch.cat([idx, new], 1)
        torch.testing.assert_close(ours(full)[0], hf(input_ids=full).logits, rtol=1e-5, atol=1e-5)


def test_an_untied_head_survives_a_checkpoint(tmp_path):
    """Regression: the checkpoint left out lm_head.weight always, which lost an untied head."""
    ours = from_hf_llama(hf_llama(0))
    save_checkpoint(tmp_path, ours)
    loaded, _ = load_checkpoint(tmp_path)
    assert loaded.lm_head.weight is not loaded.transformer.wte.weight
    torch.testing.assert_close(loaded.lm_head.weight, ours.lm_head.weight, rtol=0, atol=0)
    idx = torch.arange(10)[None]
    torch.testing.assert_close(loaded(idx)[0], ours(idx)[0], rtol=0, atol=0)


def test_a_llama_with_what_our_gpt_lacks_is_refused():
    hf = hf_llama(0)
    hf.config.attention_bias = True
    with pytest.raises(ValueError, match="no biases"):
        from_hf_llama(hf)
