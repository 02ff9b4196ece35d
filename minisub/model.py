"""A small GPT, read top to bottom: config, attention, MLP, block, model, sampling.

The network of the language experiments (nanoGPT's model.py is the template; GPT-2 names),
with its sampling (`GPT.generate`) and exact next-token probabilities (`next_token_logprobs`).
Pre-LN transformer blocks, causal self-attention through F.scaled_dot_product_attention,
GELU MLP, tied input/output embeddings, GPT-2 init with residual projections scaled by
1/sqrt(2 n_layer). Two additions for the experiments:
- a loss mask, so that only chosen positions (the answer after a prompt) are trained;
- a pre-allocated KV cache with per-row positions, so that a batch of prompts of different
  lengths (left-padded) samples exactly like each prompt alone.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 1280
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")


class KVCache:
    """Keys and values of every layer for a batch, pre-allocated to `max_len` slots.

    Slot s of every row is filled at the same step, so rows share one write position; a row's
    left padding fills slots that `valid` marks False, which attention then ignores. `n_valid`
    counts each row's real tokens: the position of its next token.
    """

    def __init__(self, config: GPTConfig, batch_size: int, max_len: int,
                 device: torch.device, dtype: torch.dtype):
        head_dim = config.n_embd // config.n_head
        shape = (config.n_layer, batch_size, config.n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.n_valid = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.length = 0  # slots filled so far
        self.padded = False  # whether any slot holds padding (then attention needs a mask)

    def keep_rows(self, keep: torch.Tensor) -> None:
        """Keep only the rows where `keep` (B,) is True: finished rows stop costing compute."""
        self.k, self.v = self.k[:, keep], self.v[:, keep]
        self.valid, self.n_valid = self.valid[keep], self.n_valid[keep]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's k, v (B, nh, T, hd) in the slots after `length`; return all keys/values so far."""
        end = self.length + k.shape[2]
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


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


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.layer, self.n_head, self.dropout = layer, config.n_head, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nh, L, hd), all slots so far
        dropout = self.dropout if self.training else 0.0
        # No mask: causal over this call's tokens, or, for one new token after the cache, all keys.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                           is_causal=mask is None and cache is None)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, mask, cache):
        x = x + self.attn(self.ln_1(x), mask, cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one matrix in and out
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        # std 0.02 everywhere, embeddings included: PyTorch's N(0, 1) embedding init gives huge
        # tied logits whose softmax gradients go denormal and slow CPU matmuls ~60x (protocol.md).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # the tied matrix counts once

    def hidden_states(self, idx: torch.Tensor, valid: torch.Tensor | None = None,
                      cache: KVCache | None = None) -> torch.Tensor:
        """idx (B, T) -> the final layer-normed states (B, T, C) that the tied head turns into logits.

        valid (B, T): False marks left padding (ignored by attention, no position used).
        cache: continue from the tokens already in the cache, then append these.
        """
        B, T = idx.shape
        if valid is None:
            valid = torch.ones(B, T, dtype=torch.bool, device=idx.device)
        start = cache.n_valid[:, None] if cache is not None else 0
        pos = (start + valid.cumsum(1) - 1).clamp_min(0)  # (B, T): a row's real tokens count from 0
        if int(pos.max()) >= self.config.block_size:
            raise ValueError(f"sequence longer than block_size {self.config.block_size}")
        padded = not bool(valid.all())
        if cache is not None:
            cache.valid[:, cache.length:cache.length + T] = valid
            cache.padded |= padded
            # one new token with no padding anywhere sees every key: no mask (the fast decode path)
            needs_mask = cache.padded or T > 1
            mask = attention_mask(cache.valid[:, :cache.length + T], T) if needs_mask else None
        else:
            mask = attention_mask(valid, T) if padded else None  # None: plain causal, for training
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x, mask, cache)
        if cache is not None:
            cache.length += T
            cache.n_valid += valid.sum(1)
        return self.transformer.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_mask: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) -> logits (B, T, V), and the mean cross-entropy if targets (B, T) are given.

        loss_mask (B, T): only positions where it is True count in the loss.
        valid, cache: as in hidden_states.
        """
        logits = self.lm_head(self.hidden_states(idx, valid, cache))  # (B, T, V)
        if targets is None:
            return logits, None
        losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        if loss_mask is None:
            return logits, losses.mean()
        weights = loss_mask.flatten().to(losses.dtype)
        return logits, (losses * weights).sum() / weights.sum().clamp_min(1)

    @torch.no_grad()
    def generate(self, prompts, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 allowed_tokens=None, stop_token: int | None = None,
                 generator: torch.Generator | None = None) -> list[list[int]]:
        """Sample a continuation of each prompt with a KV cache; returns the new tokens per row.

        prompts: a (B, T) LongTensor or a list of token lists of any lengths (left-padded here).
        temperature 0 is greedy. allowed_tokens: token ids sampling may pick (others are masked
        before sampling). A row stops after emitting stop_token, which is not returned.
        generator: a torch.Generator on the model's device, for reproducible samples.
        Call model.eval() first: dropout stays whatever mode the model is in.
        """
        device = self.lm_head.weight.device
        idx, valid = left_pad(prompts, device)
        B, T = idx.shape
        if T + max_new_tokens - 1 > self.config.block_size:
            raise ValueError(f"prompt ({T}) + new tokens ({max_new_tokens}) exceed block_size "
                             f"{self.config.block_size}")
        allowed = None if allowed_tokens is None else token_mask(allowed_tokens, self.config.vocab_size, device)
        cache = KVCache(self.config, B, T + max_new_tokens, device, self.lm_head.weight.dtype)
        logits = self(idx, valid=valid, cache=cache)[0][:, -1]  # (B, V)
        new = torch.zeros(B, max_new_tokens, dtype=torch.long, device=device)
        rows = torch.arange(B, device=device)  # the batch rows still in the cache
        done = torch.zeros(B, dtype=torch.bool, device=device)  # which of them have emitted stop_token
        for step in range(max_new_tokens):
            token = sample_next(logits, temperature, top_k, allowed, generator)  # (b,)
            new[rows, step] = token
            if stop_token is not None:
                done |= token == stop_token
                if done.all():
                    break
                if 4 * done.sum() >= len(done):  # drop finished rows once they are a quarter of the batch
                    keep = ~done
                    rows, token, logits, done = rows[keep], token[keep], logits[keep], done[keep]
                    cache.keep_rows(keep)
            if step + 1 < max_new_tokens:
                logits = self(token[:, None], cache=cache)[0][:, -1]
        sampled = new[:, :step + 1].tolist() if max_new_tokens else [[] for _ in range(B)]
        return [row[:row.index(stop_token)] if stop_token in row else row for row in sampled]


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


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None,
                allowed: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from (B, V) logits: allowed-set mask, then greedy or temperature/top-k sampling."""
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    # Inverse-CDF sampling: one uniform per row instead of torch.multinomial's one random number
    # per vocabulary entry (20x faster here). side="right" never picks a zero-probability token.
    cdf = F.softmax(logits, -1).cumsum(-1)  # (B, V)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, side="right")[:, 0].clamp_max(cdf.shape[1] - 1)


@torch.no_grad()
def next_token_logprobs(model: GPT, prompts) -> torch.Tensor:
    """Exact log P(next token | prompt) over the whole vocabulary, for each prompt: (B, V) float32.

    Evaluation uses this instead of samples: the answer distribution without sampling noise.
    """
    idx, valid = left_pad(prompts, model.lm_head.weight.device)
    logits = model(idx, valid=valid)[0][:, -1]  # left padding: the last column is each prompt's end
    return F.log_softmax(logits.float(), -1)
