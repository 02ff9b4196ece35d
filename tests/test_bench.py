"""The benchmark's FLOP counts, against PyTorch's own count of the same pass, its time shares, and a whole tiny run."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from experiments import report
from minisub import bench
from minisub.bench import OTHER_OPS, OUTSIDE_OPS, TIME_KINDS, BenchConfig, decode_matmuls, time_shares, train_matmuls
from minisub.model import GPT, GPTConfig, KVCache


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


@settings(max_examples=10, deadline=None)
@given(n_layer=st.integers(1, 3), n_head=st.sampled_from([1, 2, 4]), head_dim=st.sampled_from([4, 8]),
       batch=st.integers(1, 4), prompt_len=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_decode_matmuls_are_what_a_decode_step_multiplies_besides_attention(n_layer, n_head, head_dim, batch,
                                                                            prompt_len, seed):
    cfg = BenchConfig(n_layer=n_layer, n_head=n_head, n_embd=n_head * head_dim, vocab_size=40, block_size=16,
                      batch_size=batch, train_len=2, prompt_len=prompt_len, new_tokens=2)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=cfg.n_embd)).eval()
    idx = torch.randint(cfg.vocab_size, (batch, prompt_len + 1), generator=torch.Generator().manual_seed(seed))
    cache = KVCache(model.config, batch, prompt_len + 1, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        model(idx[:, :-1], cache=cache)
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(idx[:, -1:], cache=cache)  # one new token per row over prompt_len + 1 keys
    attention = n_layer * 2 * 2 * batch * (prompt_len + 1) * cfg.n_embd  # scores and mixing
    assert sum(2 * m * k * n for m, k, n in decode_matmuls(cfg)) == counter.get_total_flops() - attention


def test_time_shares_put_a_matmul_in_matmuls_and_a_layer_norm_in_norms():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=g), torch.randn(512, 512, generator=g)
    x = torch.randn(2048, 512, generator=g)
    norm = torch.nn.LayerNorm(512)
    matmul_shares = time_shares(lambda: [a @ b for _ in range(20)])
    norm_shares = time_shares(lambda: [norm(x) for _ in range(20)])
    for shares in (matmul_shares, norm_shares):
        assert set(shares) == {*TIME_KINDS, OTHER_OPS, OUTSIDE_OPS}
        assert sum(shares.values()) == pytest.approx(1.0) and all(0.0 <= v <= 1.0 for v in shares.values())
    assert matmul_shares["matmuls"] > 0.7
    assert norm_shares["norms, GELU, softmax, loss"] > 0.5 and norm_shares["matmuls"] == 0.0


def test_a_tiny_bench_run_writes_every_result_the_benchmark_page_renders(tmp_path):
    pytest.importorskip("transformers")
    flags = ("--n-layer 1 --n-head 2 --n-embd 16 --vocab-size 64 --block-size 24 --batch-size 4 --train-len 8 "
             "--prompt-len 2 --new-tokens 4 --student-batch 2 --repeats 1").split()
    assert bench.main([*flags, "--out", str(tmp_path / "bench")]) == 0
    results = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert set(report.KEPT["bench"]) <= set(results)
    assert list(results["student_steps_per_s"]) == ["1", *map(str, bench.STACKS)]
    page = report.sources("bench")[0].read_text()
    rendered = report.render("bench", page, results)
    assert "A student step (batch 2, packed)" in rendered and rendered != page
