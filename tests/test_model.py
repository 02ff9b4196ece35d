"""The GPT: causality, KV-cache sampling against the uncached model, ragged batches, the loss mask, packing;
the invariants hold for both families the config picks (GPT-2's and Llama's)."""

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minisub.config import ConfigError
from minisub.model import (GPT, GPTConfig, KVCache, common_prefix, continuation_logprobs, next_token_logprobs,
                           sampling_logits)


# Llama's choices: RMSNorm, rotary positions, SwiGLU, one key/value head for every query head, no
# biases, an untied head
FAMILIES = {"gpt2": {}, "llama": dict(norm="rms", positions="rope", mlp="swiglu", mlp_hidden=24, n_kv_head=1,
                                      bias=False, tie_embeddings=False)}
families = st.sampled_from(sorted(FAMILIES))


def tiny_gpt(seed=0, n_layer=2, n_head=2, n_embd=16, vocab_size=37, block_size=24, dtype=torch.float32,
             family="gpt2"):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd, dropout=0.0, **FAMILIES[family])).to(dtype).eval()
    with torch.no_grad():  # larger weights than GPT-2's init, so that the tests see real differences
        for p in model.parameters():
            p.mul_(20 if p.dim() >= 2 else 1)
    return model


def tokens(shape, vocab, seed):
    return torch.randint(vocab, shape, generator=torch.Generator().manual_seed(seed))


@given(seed=st.integers(0, 10**6), T=st.integers(2, 24), t=st.data(), n_head=st.sampled_from([1, 2, 4]),
       family=families)
def test_changing_token_t_leaves_earlier_logits_unchanged(seed, T, t, n_head, family):
    model = tiny_gpt(seed, n_head=n_head, family=family)
    idx = tokens((2, T), 37, seed)
    pos = t.draw(st.integers(0, T - 1))
    changed = idx.clone()
    changed[:, pos] = (changed[:, pos] + 1) % 37
    before, after = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(before[:, :pos], after[:, :pos], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, pos:], after[:, pos:])


@given(seed=st.integers(0, 10**6), prompt_len=st.integers(1, 10), steps=st.integers(1, 12),
       batch=st.integers(1, 3), family=families)
def test_cached_logits_equal_uncached_at_every_step(seed, prompt_len, steps, batch, family):
    model = tiny_gpt(seed, family=family)
    seq = tokens((batch, prompt_len + steps), 37, seed)
    cache = KVCache(model.config, batch, prompt_len + steps, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        cached = [model(seq[:, :prompt_len], cache=cache)[0][:, -1]]
        cached += [model(seq[:, t:t + 1], cache=cache)[0][:, -1] for t in range(prompt_len, prompt_len + steps - 1)]
        for step, logits in enumerate(cached):
            full = model(seq[:, :prompt_len + step])[0][:, -1]
            torch.testing.assert_close(logits, full, rtol=0, atol=1e-5)


def greedy_without_cache(model, prompt, n):
    seq = list(prompt)
    for _ in range(n):
        seq.append(int(model(torch.tensor([seq]))[0][0, -1].argmax()))
    return seq[len(prompt):]


@given(seed=st.integers(0, 10**6), lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       n=st.integers(1, 10), family=families)
def test_greedy_and_ragged_batches_match_one_by_one_uncached(seed, lengths, n, family):
    model = tiny_gpt(seed, family=family)
    prompts = [tokens((k,), 37, seed + i).tolist() for i, k in enumerate(lengths)]
    batched = model.generate(prompts, n, temperature=0)
    for prompt, out in zip(prompts, batched):
        assert out == greedy_without_cache(model, prompt, n)
        assert out == model.generate([prompt], n, temperature=0)[0]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ragged_logprobs_equal_one_by_one(family):
    model = tiny_gpt(3, family=family)
    prompts = [[1, 2, 3, 4, 5], [7], [8, 9]]
    batched = next_token_logprobs(model, prompts)
    for row, prompt in enumerate(prompts):
        alone = torch.log_softmax(model(torch.tensor([prompt]))[0][0, -1], -1)
        torch.testing.assert_close(batched[row], alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(batched.exp().sum(-1), torch.ones(3))


@given(seed=st.integers(0, 10**6), prompt_lens=st.lists(st.integers(1, 7), min_size=1, max_size=3),
       cont_lens=st.lists(st.integers(1, 5), min_size=1, max_size=6), max_rows=st.integers(1, 12), family=families)
def test_continuation_logprobs_equal_the_chain_rule_on_whole_sequences(seed, prompt_lens, cont_lens, max_rows,
                                                                       family):
    """The cached, branched, right-padded, chunked path against log-softmax over each whole sequence alone."""
    model = tiny_gpt(seed % 1000, family=family)
    prompts = [tokens((n,), 37, seed + i).tolist() for i, n in enumerate(prompt_lens)]
    continuations = [tokens((n,), 37, seed + 100 + i).tolist() for i, n in enumerate(cont_lens)]
    got = continuation_logprobs(model, prompts, continuations, max_rows=max_rows)
    for i, p in enumerate(prompts):
        for k, c in enumerate(continuations):
            logp = torch.log_softmax(model(torch.tensor([p + c]))[0][0], -1)  # (T, V)
            expected = sum(logp[len(p) - 1 + t, c[t]] for t in range(len(c)))
            assert torch.allclose(got[i, k], expected, atol=1e-5), (i, k)


def test_sampling_is_reproducible_with_a_generator_and_respects_allowed_tokens():
    model = tiny_gpt(4)
    allowed = [3, 5, 11, 30]
    draw = lambda seed: model.generate([[1, 2], [3]], 15, temperature=1.0, allowed_tokens=allowed,  # noqa: E731
                                       generator=torch.Generator().manual_seed(seed))
    first = draw(0)
    assert first == draw(0) and first != draw(1)
    assert {t for row in first for t in row} <= set(allowed)
    top1 = model.generate([[1, 2]], 10, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(5))
    assert top1 == model.generate([[1, 2]], 10, temperature=0)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 40), st.floats(0.01, 1.0), st.floats(0.0, 0.99),
       st.floats(0.2, 3.0))
def test_top_p_keeps_the_fewest_likeliest_tokens_reaching_p_and_min_p_those_near_the_likeliest(seed, V, top_p, min_p,
                                                                                                temperature):
    logits = torch.randn(3, V, generator=torch.Generator().manual_seed(seed)) * 3  # (B, V)
    assert torch.equal(sampling_logits(logits, temperature), logits / temperature)  # the defaults keep every token
    for row, kept in zip(F.softmax(logits / temperature, -1), sampling_logits(logits, temperature, top_p=top_p)):
        ranked = row.sort(descending=True).values
        need = int((ranked.cumsum(0) < top_p - 1e-6).sum()) + 1  # the fewest likeliest with mass >= top_p
        assert int(torch.isfinite(kept).sum()) in (need, min(V, need + 1)), (need, kept)  # +1: a float tie at top_p
        assert row[torch.isfinite(kept)].min() >= torch.cat([row[~torch.isfinite(kept)], torch.zeros(1)]).max()
    for row, kept in zip(F.softmax(logits / temperature, -1), sampling_logits(logits, temperature, min_p=min_p)):
        near = row >= min_p * row.max()
        assert torch.equal(torch.isfinite(kept), near) or torch.isclose(row, min_p * row.max()).any()
    assert torch.equal(sampling_logits(logits, temperature, min_p=0.99, top_p=1e-6).isfinite(),
                       logits == logits.max(-1, keepdim=True).values)  # both down to the likeliest token


def test_sampling_with_top_p_or_min_p_only_draws_kept_tokens():
    model = tiny_gpt(4)
    logits = model(torch.tensor([[1, 2]]))[0][:, -1]  # (1, V)
    for kwargs in ({"top_p": 0.3}, {"min_p": 0.5}):
        kept = set(torch.isfinite(sampling_logits(logits, 1.0, **kwargs))[0].nonzero()[:, 0].tolist())
        drawn = {row[0] for seed in range(40) for row in model.generate([[1, 2]], 1, generator=torch.Generator()
                                                                        .manual_seed(seed), **kwargs)}
        assert drawn <= kept and len(kept) < model.config.vocab_size


def test_stop_token_ends_a_row_and_is_not_returned():
    model = tiny_gpt(5)
    free = model.generate([[1, 2, 3]], 12, temperature=0)[0]
    stop = free[4]
    stopped = model.generate([[1, 2, 3]], 12, temperature=0, stop_token=stop)[0]
    assert stopped == free[:free.index(stop)]


def test_ragged_batch_with_stop_token_matches_one_by_one():
    """Rows stop at different steps; finished rows leave the batch and the rest must not notice."""
    model = tiny_gpt(7)
    prompts = [tokens((k,), 37, 40 + k).tolist() for k in (1, 3, 6, 2, 8, 4, 5, 7)]
    free = [model.generate([p], 12, temperature=0)[0] for p in prompts]
    stop = max(set(t for row in free for t in row), key=lambda t: sum(t in row for row in free))
    batched = model.generate(prompts, 12, temperature=0, stop_token=stop)
    assert batched == [model.generate([p], 12, temperature=0, stop_token=stop)[0] for p in prompts]
    assert len({len(row) for row in batched}) > 1  # the rows really stopped at different steps


def test_give_up_ends_each_row_where_it_says_and_the_others_do_not_notice():
    """A row ends with the token after which give_up says so (that token kept); the batch goes on without it."""
    model = tiny_gpt(8)
    prompts = [tokens((k,), 37, 60 + k).tolist() for k in (1, 3, 6, 2, 8, 4, 5, 7)]
    free = model.generate(prompts, 12, temperature=0)
    cut = {row: 2 + row for row in range(0, len(prompts), 2)}  # even rows give up after 2 + row tokens
    asked = []

    def give_up(row, written):
        asked.append((row, len(written)))
        assert written == free[row][:len(written)]  # it sees the row's own tokens so far
        return len(written) == cut.get(row)
    ended = model.generate(prompts, 12, temperature=0, give_up=give_up)
    assert ended == [free[r][:cut[r]] if r in cut else free[r] for r in range(len(prompts))]
    assert (0, 3) not in asked  # a row that gave up is not asked again
    stop = free[1][5]  # with a stop token as well, whichever comes first ends the row
    both = model.generate(prompts, 12, temperature=0, stop_token=stop, give_up=give_up)
    for r, row in enumerate(free):
        until_stop = row[:row.index(stop)] if stop in row else row
        assert both[r] == (until_stop if r not in cut or len(until_stop) < cut[r] else row[:cut[r]])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prompts_with_a_shared_beginning_sample_as_if_each_were_alone(family):
    """generate computes the prompts' common beginning once and branches its cache: same tokens as one by one."""
    model = tiny_gpt(9, family=family)
    shared = tokens((6,), 37, 90).tolist()
    prompts = [shared + tokens((k,), 37, 91 + k).tolist() for k in (1, 4, 2, 7)] + [shared[:3] + [5]]
    assert common_prefix(prompts) == 3 and common_prefix(prompts[:4]) == 6
    assert common_prefix([[1, 2], [1, 2]]) == 1  # each prompt keeps a token of its own
    for group in (prompts, prompts[:4]):
        assert model.generate(group, 10, temperature=0) == [model.generate([p], 10, temperature=0)[0] for p in group]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4),
       samples=st.integers(1, 5), steps=st.integers(1, 4), family=families)
def test_samples_per_prompt_draw_what_the_prompt_listed_that_many_times_draws(seed, lengths, samples, steps, family):
    """generate(samples=n) reads each prompt once and repeats its cache: the same draws, row for row, as each prompt
    listed n times (which reads it n times), with the same generator."""
    model = tiny_gpt(seed % 97, family=family)
    prompts = [tokens((n,), 37, seed + i).tolist() for i, n in enumerate(lengths)]
    listed = model.generate([p for p in prompts for _ in range(samples)], steps,
                            generator=torch.Generator().manual_seed(seed))
    assert model.generate(prompts, steps, generator=torch.Generator().manual_seed(seed), samples=samples) == listed


def test_too_long_generation_is_an_error():
    model = tiny_gpt(0, block_size=8)
    with pytest.raises(ValueError, match="block_size"):
        model.generate([[1, 2, 3]], 7)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))


@given(seed=st.integers(0, 10**6), T=st.integers(1, 12), data=st.data())
def test_masked_head_equals_the_full_head_at_the_masked_positions(seed, T, data):
    model = tiny_gpt(seed % 7)
    idx, targets = tokens((2, T), 37, seed), tokens((2, T), 37, seed + 1)
    mask = torch.tensor(data.draw(st.lists(st.booleans(), min_size=2 * T, max_size=2 * T))).view(2, T)
    full, _ = model(idx)
    logits, loss = model(idx, targets, mask)
    torch.testing.assert_close(logits, full[mask], rtol=0, atol=1e-5)
    per_token = torch.nn.functional.cross_entropy(full.flatten(0, 1), targets.flatten(), reduction="none")
    expected = per_token[mask.flatten()].mean() if mask.any() else torch.tensor(0.0)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(idx, targets)[1], per_token.mean(), rtol=1e-5, atol=1e-6)


def test_tied_embeddings_and_gpt2_init():
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=3, n_head=2, n_embd=32))
    assert model.lm_head.weight is model.transformer.wte.weight
    assert abs(model.transformer.wte.weight.std().item() - 0.02) < 0.003
    assert model.transformer.h[0].attn.c_proj.weight.std().item() < 0.02 / 2


def test_n_embd_must_divide_by_heads():
    with pytest.raises(ValueError):
        GPTConfig(n_embd=30, n_head=4)


@pytest.mark.parametrize("fields, message", [
    (dict(n_head=4, n_kv_head=3), "n_kv_head (3) must divide n_head (4)"),
    (dict(n_embd=12, n_head=4, positions="rope"), "(3) must be even for rotary positions"),
    (dict(norm="batch"), "norm must be one of layer, rms"),
    (dict(norm_eps=0.0), "norm_eps must be above 0"),
])
def test_bad_family_choices_are_refused(fields, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        GPTConfig(**fields)


def test_llama_choices_build_the_modules_they_name():
    model = tiny_gpt(0, n_head=4, family="llama")
    block = model.transformer.h[0]
    assert isinstance(block.ln_1, torch.nn.RMSNorm) and "wpe" not in model.transformer
    assert block.attn.c_attn.weight.shape == ((4 + 2 * 1) * 4, 16)  # 4 query heads, 1 key and 1 value head of 4
    assert block.mlp.c_fc.weight.shape == (2 * 24, 16)  # gate and up projections
    assert model.lm_head.weight is not model.transformer.wte.weight and block.attn.c_attn.bias is None


def test_the_cache_keeps_positions_slots_and_masks():
    model = tiny_gpt(0)
    cache = KVCache(model.config, 2, 7, torch.device("cpu"), torch.float32)
    one = torch.ones(2, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="prefilled"):
        cache.append(one)
    valid = torch.tensor([[False, True, True], [True, True, True]])  # row 0 is left-padded
    pos, mask = cache.prefill(valid)
    assert pos.tolist() == [[0, 0, 1], [0, 1, 2]] and cache.n_valid.tolist() == [2, 3]
    assert (cache.start, cache.length) == (0, 3)
    assert mask[0, 0].tolist() == [[True, False, False], [False, True, False], [False, True, True]]
    with pytest.raises(ValueError, match="empty cache"):
        cache.prefill(valid)
    pos, mask = cache.append(one)
    assert pos.tolist() == [[2], [3]] and (cache.start, cache.length) == (3, 4)
    assert mask[:, 0, 0].tolist() == [[False, True, True, True], [True, True, True, True]]  # padding stays hidden
    kept = cache.select(torch.tensor([False, True]))
    assert len(cache.n_valid) == 2  # selecting leaves the cache it came from as it was
    pos, mask = kept.append(one[:1])
    assert pos.tolist() == [[4]] and kept.n_valid.tolist() == [5]
    branched = cache.select(torch.tensor([1, 1, 0]))  # repeated rows: one prompt, several continuations
    pos, mask = branched.append(torch.tensor([[True, False], [True, True], [True, True]]))  # right padding
    assert pos.tolist() == [[4, 4], [4, 5], [3, 4]] and branched.n_valid.tolist() == [5, 6, 5]
    assert mask[0, 0].tolist() == [[True] * 5 + [False], [True] * 6]  # a padding query sees itself too
    kept.append(one[:1])
    with pytest.raises(ValueError, match="holds 7 slots"):
        kept.append(torch.ones(1, 2, dtype=torch.bool))


@pytest.mark.parametrize("kwargs, field", [
    ({"temperature": -1.0}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"temperature": float("inf")}, "temperature"), ({"top_k": 0}, "top_k"), ({"max_new_tokens": -2}, "max_new_tokens"),
    ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"min_p": -0.1}, "min_p"), ({"min_p": 1.0}, "min_p"),
])
def test_bad_sampling_arguments_are_refused(kwargs, field):
    model = tiny_gpt(0)
    with pytest.raises(ConfigError) as info:
        model.generate([[1, 2]], **({"max_new_tokens": 3} | kwargs))
    assert info.value.field == field


@pytest.mark.parametrize("field, value", [("n_head", 0), ("n_embd", 0), ("n_layer", -1), ("vocab_size", 0),
                                          ("dropout", 1.0), ("block_size", 0)])
def test_bad_model_configs_are_refused(field, value):
    with pytest.raises(ConfigError) as info:
        GPTConfig(**{field: value})
    assert info.value.field == field


def test_finished_rows_leave_the_batch(monkeypatch):
    """Guards the speed of sampling: rows that emitted the stop token stop costing compute."""
    model = tiny_gpt(7)
    prompts = [tokens((k,), 37, 40 + k).tolist() for k in (1, 3, 6, 2, 8, 4, 5, 7)]
    free = [model.generate([p], 12, temperature=0)[0] for p in prompts]
    stop = max(set(t for row in free for t in row), key=lambda t: sum(t in row for row in free))
    sizes = []
    select = KVCache.select

    def spy(cache, keep):
        sizes.append((len(keep), int(keep.sum())))
        return select(cache, keep)

    monkeypatch.setattr(KVCache, "select", spy)
    model.generate(prompts, 12, temperature=0, stop_token=stop)
    assert sizes and all(kept < before for before, kept in sizes)
    assert sizes[0][0] == len(prompts)


@given(seed=st.integers(0, 10**6), n=st.integers(1, 9), pack_to=st.integers(12, 24), family=families)
def test_packed_batches_give_each_example_the_loss_and_gradient_it_has_alone(seed, n, pack_to, family):
    """Packing several examples into a row restarts positions and keeps attention inside each example."""
    from minisub.data import ExampleSet
    from minisub.training import lm_loss
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 13, (n,), generator=g).tolist()
    sequences = [torch.randint(3, 37, (k,), generator=g).tolist() for k in lengths]
    starts = [int(torch.randint(1, k, (1,), generator=g)) for k in lengths]
    data = ExampleSet(sequences, [[t >= s - 1 for t in range(k - 1)] for s, k in zip(starts, lengths)], pad_id=0)
    packed, plain = data.batch(list(range(n)), pack_to), data.batch(list(range(n)))
    assert packed.idx.shape[1] <= pack_to and packed.loss_mask.sum() == plain.loss_mask.sum()
    assert packed.idx.shape[0] <= plain.idx.shape[0]
    model = tiny_gpt(seed % 5, block_size=24, family=family)
    grads = []
    for batch in (packed, plain):
        model.zero_grad()
        loss = lm_loss(model, batch)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
