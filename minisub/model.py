"""A small GPT, read top to bottom: config, attention, MLP, block, model, sampling.

The network of the language experiments (nanoGPT's model.py is the template; GPT-2 names),
with its sampling (`GPT.generate`), exact next-token probabilities (`next_token_logprobs`) and exact
probabilities of answers of several tokens (`continuation_logprobs`).
Pre-norm transformer blocks, causal self-attention through F.scaled_dot_product_attention,
GPT-2 init with residual projections scaled by 1/sqrt(2 n_layer). The config picks the family
(as litgpt's does, one class for both): GPT-2's LayerNorm, learned positions, GELU MLP and tied
embeddings (the defaults), or Llama's RMSNorm, rotary positions (RoPE), SwiGLU MLP, grouped
key/value heads and an untied head, in any combination. Two additions for the experiments:
- a loss mask, so that only chosen positions (the answer after a prompt) are trained;
- a pre-allocated KV cache with per-row positions, so that a batch of prompts of different
  lengths (left-padded) samples exactly like each prompt alone.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from minisub.config import ConfigError, check, check_value, option


@dataclass
class GPTConfig:
    vocab_size: int = option(1280, "vocabulary size", low=1)
    block_size: int = option(128, "longest sequence the model takes", low=1)
    n_layer: int = option(4, "transformer blocks", low=1)
    n_head: int = option(4, "attention heads", low=1)
    n_embd: int = option(128, "embedding width", low=1)
    dropout: float = option(0.0, "dropout rate", low=0.0)
    bias: bool = option(True, "biases in linear layers and layer norms")
    n_kv_head: int = option(0, "key/value heads, grouped-query attention (0: n_head, one per query head)", low=0)
    norm: str = option("layer", "layer (LayerNorm, GPT-2) or rms (RMSNorm, Llama)", choices=("layer", "rms"))
    norm_eps: float = option(1e-5, "epsilon of every norm", above=0.0)
    positions: str = option("learned", "learned (absolute embeddings, GPT-2) or rope (rotary, Llama)",
                            choices=("learned", "rope"))
    rope_base: float = option(10000.0, "RoPE base (theta)", above=0.0)
    mlp: str = option("gelu", "gelu (GPT-2) or swiglu (gated SiLU, Llama)", choices=("gelu", "swiglu"))
    mlp_hidden: int = option(0, "MLP hidden width (0: 4 x n_embd)", low=0)
    tie_embeddings: bool = option(True, "the head shares the input embedding matrix")

    def __post_init__(self):
        check(self)
        if self.n_embd % self.n_head:
            raise ConfigError("n_embd", f"({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.n_head % self.kv_heads:
            raise ConfigError("n_kv_head", f"({self.n_kv_head}) must divide n_head ({self.n_head})")
        if self.positions == "rope" and self.head_dim % 2:
            raise ConfigError("n_embd", f"/ n_head ({self.head_dim}) must be even for rotary positions")
        if self.dropout >= 1:
            raise ConfigError("dropout", f"must be below 1, not {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def hidden(self) -> int:
        return self.mlp_hidden or 4 * self.n_embd


class KVCache:
    """Keys and values of every layer for a batch, pre-allocated to `max_len` slots, and their bookkeeping.

    The cache owns where things go: `prefill(valid)` takes the (left-padded) prompts,
    `append(valid)` more tokens per row (one when sampling), and both return the positions of the
    new tokens and the attention mask they need; the attention layers then `update` their slots.
    Slot s of every row is filled at the same step, so rows share one write position; a row's
    padding fills slots that `valid` marks False, which attention ignores. `n_valid` counts each
    row's real tokens: the position of its next token. `select` keeps some rows (drops finished
    ones) or repeats them (one prompt's cache then serves several continuations).
    """

    def __init__(self, config: GPTConfig, batch_size: int, max_len: int,
                 device: torch.device, dtype: torch.dtype):
        shape = (config.n_layer, batch_size, config.kv_heads, max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.n_valid = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.start = self.length = 0  # the slots [start, length) are this step's
        self.padded = False  # whether any slot holds padding (then attention needs a mask)

    def prefill(self, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Take the prompts, valid (B, T); returns their positions (B, T) and attention mask."""
        if self.length:
            raise ValueError("prefill needs an empty cache")
        return self._fill(valid)

    def append(self, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Take T more tokens per row after the prefill, valid (B, T) (False: padding on the right); returns
        their positions (B, T) and attention mask (None for one token and no padding: every key)."""
        if not self.length:
            raise ValueError("append needs a prefilled cache")
        return self._fill(valid)

    def _fill(self, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What prefill and append share: claim the next T slots for valid (B, T), positions and mask."""
        T = valid.shape[1]
        if self.length + T > self.valid.shape[1]:
            raise ValueError(f"the cache holds {self.valid.shape[1]} slots; {self.length + T} asked for")
        self.start, self.length = self.length, self.length + T
        self.valid[:, self.start:self.length] = valid
        self.padded |= not bool(valid.all())
        pos = (self.n_valid[:, None] + valid.cumsum(1) - 1).clamp_min(0)  # (B, T)
        self.n_valid += valid.sum(1)
        # one new token with no padding anywhere sees every key: no mask (the fast decode path)
        mask = attention_mask(self.valid[:, :self.length], T) if self.padded or T > 1 else None
        return pos, mask

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's k, v (B, nkv, T, hd) in its slots; return all keys/values so far (B, nkv, L, hd)."""
        self.k[layer, :, :, self.start:self.length] = k
        self.v[layer, :, :, self.start:self.length] = v
        return self.k[layer, :, :, :self.length], self.v[layer, :, :, :self.length]

    def select(self, rows: torch.Tensor) -> "KVCache":
        """A cache of the rows that `rows` picks: a (B,) boolean mask, or indices, repeats allowed.
        This cache is left as it is (new tensors), so one prefill can be branched many times."""
        branch = copy.copy(self)
        branch.k, branch.v = self.k[:, rows], self.v[:, rows]
        branch.valid, branch.n_valid = self.valid[rows], self.n_valid[rows]
        return branch


def attention_mask(valid_keys: torch.Tensor, n_queries: int) -> torch.Tensor:
    """(B, L) key validity -> (B, 1, T, L) boolean mask for the last T of L slots: causal, no padding.

    Each query also sees itself, so that a padding query still has one key: some attention
    backends give NaN for a fully masked row, and NaN values would leak through zero weights.
    No real query ever sees a padding key.
    """
    L = valid_keys.shape[1]
    query_slots = torch.arange(L - n_queries, L, device=valid_keys.device)[:, None]  # (T, 1)
    key_slots = torch.arange(L, device=valid_keys.device)[None, :]  # (1, L)
    causal = key_slots <= query_slots  # (T, L)
    mask = causal & valid_keys[:, None, :]  # (B, T, L)
    mask |= key_slots == query_slots
    return mask[:, None]


def packed_layout(segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) example ids of packed rows -> positions (B, T) that restart at every example, and
    the (B, 1, T, T) attention mask: causal and inside one example (padding, id -1, sees padding)."""
    T = segments.shape[1]
    t = torch.arange(T, device=segments.device)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    first = torch.where(starts, t, torch.zeros_like(t)).cummax(1).values  # (B, T) where each token's example starts
    mask = (segments[:, :, None] == segments[:, None, :]) & (t[None, :] <= t[:, None])  # (B, T, T)
    return t - first, mask[:, None]


def rope_angles(pos: torch.Tensor, config: GPTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (B, T) -> the rotary cos and sin (B, 1, T, hd), computed in float32 (as HF's Llama does).

    Frequency i of a head's hd/2 pairs is base^(-2i/hd); a pair is the dimensions i and i + hd/2
    (the "rotate half" layout of Llama checkpoints in HF form)."""
    hd = config.head_dim
    inv_freq = 1.0 / config.rope_base ** (torch.arange(0, hd, 2, device=pos.device).float() / hd)  # (hd/2,)
    angles = pos[..., None].float() * inv_freq  # (B, T, hd/2)
    angles = torch.cat([angles, angles], -1)[:, None]  # (B, 1, T, hd)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions on queries or keys x (B, heads, T, hd)."""
    first, second = x.chunk(2, -1)
    return (x * cos + torch.cat([-second, first], -1) * sin).to(x.dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.layer, self.dropout = layer, config.dropout
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_dim
        self.qkv_sizes = (self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim)
        # queries, keys and values in one matmul: n_head query heads, n_kv_head key and value heads
        self.c_attn = nn.Linear(config.n_embd, (config.n_head + 2 * config.kv_heads) * config.head_dim,
                                bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None,
                rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.qkv_sizes, dim=2)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k, v = (t.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2) for t in (k, v))  # (B, nkv, T, hd)
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nkv, L, hd), all slots so far
        dropout = self.dropout if self.training else 0.0
        # No mask: causal over this call's tokens, or, for one new token after the cache, all keys.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                           is_causal=mask is None and cache is None,
                                           enable_gqa=self.n_kv_head != self.n_head)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """GELU (GPT-2), or SwiGLU (Llama): c_fc computes the gate and the up projection in one matmul."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.gated = config.mlp == "swiglu"
        self.c_fc = nn.Linear(config.n_embd, (2 if self.gated else 1) * config.hidden, bias=config.bias)
        self.act = nn.SiLU() if self.gated else nn.GELU()
        self.c_proj = nn.Linear(config.hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if self.gated:
            gate, up = h.chunk(2, -1)
            h = self.act(gate) * up
        else:
            h = self.act(h)
        return self.dropout(self.c_proj(h))


def norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rms":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.ln_1 = norm(config)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = norm(config)
        self.mlp = MLP(config)

    def forward(self, x, mask, cache, rope):
        x = x + self.attn(self.ln_1(x), mask, cache, rope)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        # registration order is init order (the seeded draws): GPT-2's wpe stays second
        layers = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))
        if config.positions == "learned":
            layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict(dict(
            **layers,
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
            ln_f=norm(config),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # tied: one matrix in and out
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        # std 0.02 everywhere, embeddings included: PyTorch's N(0, 1) embedding init gives huge
        # tied logits whose softmax gradients go denormal and slow CPU matmuls ~60x
        # (docs/background.md, "CPU speed").
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # the tied matrix counts once

    def fused_projections(self) -> dict[str, tuple[int, ...]]:
        """The linear layers that compute several projections in one matmul, by name: their output sizes
        in order (queries, keys, values in every c_attn; gate and up in a SwiGLU c_fc)."""
        fused = {}
        for i, block in enumerate(self.transformer.h):
            fused[f"transformer.h.{i}.attn.c_attn"] = block.attn.qkv_sizes
            if block.mlp.gated:
                fused[f"transformer.h.{i}.mlp.c_fc"] = (self.config.hidden, self.config.hidden)
        return fused

    def hidden_states(self, idx: torch.Tensor, valid: torch.Tensor | None = None,
                      cache: KVCache | None = None, segments: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) -> the final normed states (B, T, C) that the head turns into logits.

        valid (B, T): False marks left padding (ignored by attention, no position used).
        cache: an empty cache is prefilled with these tokens; a filled one appends them (valid: False marks
        padding on the right there).
        segments (B, T): rows of packed examples (minisub/data.py); each example as if alone.
        """
        B, T = idx.shape
        if valid is None:
            valid = torch.ones(B, T, dtype=torch.bool, device=idx.device)
        if segments is not None:
            pos, mask = packed_layout(segments)
        elif cache is not None:
            pos, mask = cache.append(valid) if cache.length else cache.prefill(valid)
        else:
            pos = (valid.cumsum(1) - 1).clamp_min(0)  # (B, T): a row's real tokens count from 0
            mask = None if valid.all() else attention_mask(valid, T)  # None: plain causal, for training
        if int(pos.max()) >= self.config.block_size:
            raise ValueError(f"sequence longer than block_size {self.config.block_size}")
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.config.positions == "learned":
            x = x + self.transformer.wpe(pos)
        else:
            rope = rope_angles(pos, self.config)  # positions enter each attention layer instead
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, mask, cache, rope)
        return self.transformer.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_mask: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                cache: KVCache | None = None, segments: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) -> logits (B, T, V), and the mean cross-entropy if targets (B, T) are given.

        loss_mask (B, T): only positions where it is True count in the loss, and the head runs at
        those positions only (the experiments train on answers, a fraction of each sequence):
        the logits returned are then theirs, (N, V), in row-major order of the mask.
        valid, cache, segments: as in hidden_states.
        """
        x = self.hidden_states(idx, valid, cache, segments)  # (B, T, C)
        if targets is None:
            return self.lm_head(x), None
        if loss_mask is not None:
            x, targets = x[loss_mask], targets[loss_mask]  # (N, C), (N,)
        logits = self.lm_head(x)
        losses = F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), reduction="sum")
        return logits, losses / max(1, targets.numel())  # an empty mask gives 0, not NaN

    @torch.no_grad()
    def generate(self, prompts, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 allowed_tokens=None, stop_token: int | None = None,
                 generator: torch.Generator | None = None, give_up=None, top_p: float = 1.0,
                 min_p: float = 0.0, samples: int = 1) -> list[list[int]]:
        """Sample a continuation of each prompt with a KV cache; returns the new tokens per row.

        prompts: a (B, T) LongTensor or a list of token lists of any lengths (left-padded here).
        temperature 0 is greedy; top_k, top_p, min_p: sample among the k likeliest tokens, the fewest
        likeliest whose probability sums to top_p, those at least min_p times as likely as the likeliest
        (`sampling_logits`). allowed_tokens: token ids sampling may pick (others are masked before sampling).
        A row stops after emitting stop_token, which is not returned.
        generator: a torch.Generator on the model's device, for reproducible samples.
        samples: continuations per prompt, each prompt's rows next to each other (B * samples rows, as if each
        prompt were listed that many times); the prompt is read once and its cache repeated.
        give_up(row, tokens) -> bool: called with a row's index and its new tokens so far after each
        step; True ends that row there, as stop_token would (a caller that will reject the answer
        whatever comes next saves writing the rest of it).
        Call model.eval() first: dropout stays whatever mode the model is in.
        """
        check_sampling(max_new_tokens, temperature, top_k, top_p, min_p)
        device = self.lm_head.weight.device
        # 1. the beginning every prompt shares is computed once; the rest of each is left-padded into one batch
        shared = common_prefix(prompts)
        idx, valid = left_pad([p[shared:] for p in prompts] if shared else prompts, device)
        B, T = idx.shape
        if shared + T + max_new_tokens - 1 > self.config.block_size:
            raise ValueError(f"prompt ({shared + T}) + new tokens ({max_new_tokens}) exceed block_size "
                             f"{self.config.block_size}")
        allowed = None if allowed_tokens is None else token_mask(allowed_tokens, self.config.vocab_size, device)
        cache = KVCache(self.config, 1 if shared else B, shared + T + max_new_tokens, device,
                        self.lm_head.weight.dtype)
        # 2. prefill: the shared beginning in one row, its cache repeated for every prompt, then all the rests at
        #    once; the head runs on the last column only, which predicts the first new token
        if shared:
            self.hidden_states(torch.tensor([prompts[0][:shared]], device=device), cache=cache)
            cache = cache.select(torch.zeros(B, dtype=torch.long, device=device))
        logits = self.lm_head(self.hidden_states(idx, valid, cache)[:, -1])  # (B, V)
        if not torch.isfinite(logits).all():  # overflowing weights (a diverged run, a wild adapter): no samples
            raise ValueError("the model's logits are not finite: its weights overflow")
        if samples > 1:  # a row's prefill does not depend on the other rows: repeat it rather than recompute it
            repeats = torch.arange(B, device=device).repeat_interleave(samples)
            logits, cache, B = logits[repeats], cache.select(repeats), B * samples  # (B * samples, V)
        # 3. decode: sample a token per row and feed it back; a row that emitted stop_token, or that
        #    give_up ended, leaves the batch (dropped once a quarter of the rows are done)
        new = torch.zeros(B, max_new_tokens, dtype=torch.long, device=device)
        length = [max_new_tokens] * B  # each row's answer: its tokens before stop_token, or up to giving up
        rows = torch.arange(B, device=device)  # the batch rows still in the cache
        done = torch.zeros(B, dtype=torch.bool, device=device)  # which of them have ended
        can_end = stop_token is not None or give_up is not None
        for step in range(max_new_tokens):
            token = sample_next(logits, temperature, top_k, allowed, generator, top_p, min_p)  # (b,)
            new[rows, step] = token
            if can_end:
                stopped = token == stop_token if stop_token is not None else torch.zeros_like(done)
                ended = stopped.clone()
                if give_up is not None:
                    written = new[rows, :step + 1].tolist()
                    ended |= torch.tensor([not d and give_up(row, tokens) for row, tokens, d
                                           in zip(rows.tolist(), written, done.tolist())], device=device)
                for i in (ended & ~done).nonzero()[:, 0].tolist():
                    length[rows[i]] = step if stopped[i] else step + 1
                done |= ended
                if done.all():
                    break
                if 4 * done.sum() >= len(done):
                    keep = ~done
                    rows, token, logits, done = rows[keep], token[keep], logits[keep], done[keep]
                    cache = cache.select(keep)
            if step + 1 < max_new_tokens:
                logits = self(token[:, None], cache=cache)[0][:, -1]
        # 4. each row up to where it ended
        return [row[:n] for row, n in zip(new.tolist(), length)]


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float = 1.0,
                   min_p: float = 0.0) -> None:
    """Sampling arguments in their ranges: the one check `generate` and the CLI's SampleConfig share."""
    check_value("max_new_tokens", max_new_tokens, {"low": 0})
    check_value("temperature", float(temperature), {"low": 0.0})  # finite, and 0 = greedy
    check_value("top_k", top_k, {"low": 1})
    check_value("top_p", float(top_p), {"above": 0.0, "high": 1.0})  # 1 keeps every token
    check_value("min_p", float(min_p), {"low": 0.0})
    if min_p >= 1:  # only the likeliest token (and its ties) would be left: greedy is temperature 0
        raise ConfigError("min_p", f"must be below 1, not {min_p}")


def common_prefix(prompts) -> int:
    """How many leading tokens all prompts share, leaving each at least one of its own (0 for a tensor)."""
    if torch.is_tensor(prompts) or len(prompts) < 2 or any(len(p) == 0 for p in prompts):
        return 0
    n, limit = 0, min(len(p) for p in prompts) - 1
    while n < limit and all(p[n] == prompts[0][n] for p in prompts):
        n += 1
    return n


def left_pad(prompts, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A tensor or a list of token lists -> (idx, valid), both (B, T), padding on the left."""
    if torch.is_tensor(prompts):
        return prompts.to(device), torch.ones(prompts.shape, dtype=torch.bool, device=device)
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    T = max(len(p) for p in prompts)
    idx = torch.zeros(len(prompts), T, dtype=torch.long)
    valid = torch.zeros(len(prompts), T, dtype=torch.bool)
    for row, p in enumerate(prompts):
        idx[row, T - len(p):] = torch.as_tensor(p, dtype=torch.long)
        valid[row, T - len(p):] = True
    return idx.to(device), valid.to(device)


def token_mask(tokens, vocab_size: int, device: torch.device) -> torch.Tensor:
    """Token ids -> (V,) boolean mask."""
    mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    mask[torch.as_tensor(list(tokens), dtype=torch.long, device=device)] = True
    return mask


def sampling_logits(logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float = 1.0,
                    min_p: float = 0.0) -> torch.Tensor:
    """(B, V) logits divided by the temperature (above 0), -inf outside the tokens that top_k, top_p and min_p keep,
    in that order: the k likeliest; of those the fewest likeliest whose probability sums to at least top_p; of
    those the ones at least min_p times as likely as the likeliest. Defaults keep every token."""
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1:
        ordered, order = logits.sort(-1, descending=True)  # (B, V)
        probs = F.softmax(ordered, -1)
        before = probs.cumsum(-1) - probs  # mass of the likelier tokens
        drop = torch.zeros_like(before, dtype=torch.bool).scatter(-1, order, before >= top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    if min_p > 0:
        log_p = F.log_softmax(logits, -1)
        logits = logits.masked_fill(log_p < log_p.max(-1, keepdim=True).values + math.log(min_p), float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None,
                allowed: torch.Tensor | None, generator: torch.Generator | None, top_p: float = 1.0,
                min_p: float = 0.0) -> torch.Tensor:
    """One token per row from (B, V) logits: allowed-set mask, then greedy, or sampling among the tokens
    `sampling_logits` keeps."""
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    if temperature == 0:
        return logits.argmax(-1)
    logits = sampling_logits(logits, temperature, top_k, top_p, min_p)
    # Inverse-CDF sampling: one uniform per row instead of torch.multinomial's one random number
    # per vocabulary entry (20x faster here). side="right" never picks a zero-probability token.
    cdf = F.softmax(logits, -1).cumsum(-1)  # (B, V)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, side="right")[:, 0].clamp_max(cdf.shape[1] - 1)


@torch.no_grad()
def next_token_logprobs(model: GPT, prompts, batch_size: int = 256) -> torch.Tensor:
    """Exact log P(next token | prompt) over the whole vocabulary, for each prompt: (B, V) float32.

    Evaluation uses this instead of samples: the answer distribution without sampling noise.
    Prompts go through in chunks of batch_size, so that any number of them fits in memory.
    """
    out = []
    for start in range(0, len(prompts), batch_size):
        idx, valid = left_pad(prompts[start:start + batch_size], model.lm_head.weight.device)
        # left padding: the last column is each prompt's end, the only position the head needs
        out.append(F.log_softmax(model.lm_head(model.hidden_states(idx, valid)[:, -1]).float(), -1))
    return torch.cat(out)


@torch.no_grad()
def continuation_logprobs(model: GPT, prompts, continuations, max_rows: int = 2048) -> torch.Tensor:
    """Exact log P(continuation | prompt), by the chain rule over its tokens: (P, K) float32 for P prompts
    and K continuations (token lists of any lengths).

    What an answer of several tokens ("Owl" is "O" + "wl") needs. Each prompt is prefilled once;
    its cache is then branched, one row per continuation, and the continuations go through
    right-padded, at most `max_rows` token positions of them per pass (each needs a row of V logits).
    """
    device = model.lm_head.weight.device
    if not continuations or any(len(c) == 0 for c in continuations):
        raise ValueError("every continuation needs at least one token")
    K, L = len(continuations), max(len(c) for c in continuations)
    tokens = torch.zeros(K, L, dtype=torch.long, device=device)
    real = torch.zeros(K, L, dtype=torch.bool, device=device)
    for k, c in enumerate(continuations):
        tokens[k, :len(c)], real[k, :len(c)] = torch.as_tensor(c, dtype=torch.long), True
    out = []
    for p in prompts:
        # 1. the prompt, once: its last position gives every continuation's first token
        idx, valid = left_pad([p], device)
        cache = KVCache(model.config, 1, idx.shape[1] + L - 1, device, model.lm_head.weight.dtype)
        first = F.log_softmax(model.lm_head(model.hidden_states(idx, valid, cache)[:, -1]).float(), -1)  # (1, V)
        score = first[0, tokens[:, 0]]  # (K,)
        # 2. the rest: every continuation's tokens but its last as input, in chunks of rows of the branched cache
        rows = max(1, max_rows // max(1, L - 1))
        for start in range(0, K if L > 1 else 0, rows):
            chunk = slice(start, min(K, start + rows))
            n = chunk.stop - chunk.start
            branch = cache.select(torch.zeros(n, dtype=torch.long, device=device))
            logits = model.lm_head(model.hidden_states(tokens[chunk, :-1], real[chunk, :-1], branch)).float()
            logp = logits.gather(-1, tokens[chunk, 1:, None])[..., 0] - logits.logsumexp(-1)  # (n, L - 1)
            score[chunk] += logp.masked_fill(~real[chunk, 1:], 0.0).sum(1)
        out.append(score)
    return torch.stack(out)
