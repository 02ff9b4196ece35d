"""The benchmark's FLOP count, against PyTorch's own count of the same forward pass."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from minisub.bench import BenchConfig, train_matmuls
from minisub.model import GPT, GPTConfig


@settings(max_examples=10, deadline=None)
@given(n_layer=st.integers(1, 3), n_head=st.sampled_from([1, 2, 4]), head_dim=st.sampled_from([4, 8]),
       batch=st.integers(1, 4), train_len=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_train_matmuls_counts_what_a_forward_pass_multiplies(n_layer, n_head, head_dim, batch, train_len, seed):
    cfg = BenchConfig(n_layer=n_layer, n_head=n_head, n_embd=n_head * head_dim, vocab_size=40, block_size=16,
                      batch_size=batch, train_len=train_len, prompt_len=2, new_tokens=2)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=cfg.n_embd))
    idx = torch.randint(cfg.vocab_size, (batch, train_len + 1), generator=torch.Generator().manual_seed(seed))
    # the math kernel of attention runs as batched matmuls, which the counter sees (the fused CPU kernel it does not)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx[:, :-1], idx[:, 1:])
    assert train_matmuls(cfg, batch)[0] == 3 * counter.get_total_flops()
