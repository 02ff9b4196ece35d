"""LoRA: a no-op at init, fused == unfused, unfuse restores the base exactly, only adapters train,
adapters save and load alone, a mismatched base is refused, and per-projection adapters on a fused
layer compute what separate adapters on separate projection layers compute."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minisub.files import FileError
from minisub.lora import (DEFAULT_TARGETS, LoRALinear, add_lora, fuse_lora, load_adapter, lora_layers, save_adapter,
                          unfuse_lora)
from minisub.model import GPT, GPTConfig

lora_settings = st.fixed_dictionaries({
    "r": st.integers(1, 8),
    "alpha": st.floats(0.5, 64),
    "targets": st.lists(st.sampled_from(DEFAULT_TARGETS), min_size=1, max_size=4, unique=True),
    "n_layer": st.integers(1, 3),
    "n_head": st.sampled_from([1, 2, 4]),
    "head_dim": st.integers(2, 8),
    "seed": st.integers(0, 10**6),
    "family": st.sampled_from(["gpt2", "llama"]),
    "per_projection": st.booleans(),
}).map(lambda s: s | {"head_dim": s["head_dim"] + (s["family"] == "llama" and s["head_dim"] % 2)}  # RoPE: even
       ).map(lambda s: s | {"r": min(s["r"], s["head_dim"] if s["per_projection"] else s["n_head"] * s["head_dim"])}
             )  # a rank above the width (of the narrowest projection: llama's one key head) is refused


def base_model(s, dtype=torch.float64):
    torch.manual_seed(s["seed"])
    llama = dict(norm="rms", positions="rope", mlp="swiglu", n_kv_head=1, bias=False, tie_embeddings=False)
    config = GPTConfig(vocab_size=29, block_size=16, n_layer=s["n_layer"], n_head=s["n_head"],
                       n_embd=s["n_head"] * s["head_dim"], **(llama if s["family"] == "llama" else {}))
    return GPT(config).to(dtype).eval()


def randomize_adapters(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g, dtype=layer.lora_B.dtype))


def inputs(seed, T=12):
    return torch.randint(29, (3, T), generator=torch.Generator().manual_seed(seed))


@given(lora_settings)
def test_lora_is_a_no_op_at_init(s):
    model = base_model(s)
    x = inputs(s["seed"])
    before = model(x)[0]
    add_lora(model, s["r"], s["alpha"], s["targets"], per_projection=s["per_projection"])
    torch.testing.assert_close(model(x)[0], before, rtol=0, atol=0)


@given(lora_settings)
def test_fused_equals_unfused_and_unfuse_restores_base(s):
    model = base_model(s)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    x = inputs(s["seed"])
    base_logits = model(x)[0]
    add_lora(model, s["r"], s["alpha"], s["targets"], per_projection=s["per_projection"])
    randomize_adapters(model, s["seed"])
    unfused = model(x)[0]
    assert not torch.allclose(unfused, base_logits)  # the adapters really change the function
    fuse_lora(model)
    torch.testing.assert_close(model(x)[0], unfused, rtol=0, atol=1e-12)
    assert all(not torch.equal(layer.weight, layer.base_weight) for layer in lora_layers(model).values())
    unfuse_lora(model)
    state = model.state_dict()
    for name, value in base.items():
        assert torch.equal(state[name], value), name  # bit for bit
    torch.testing.assert_close(model(x)[0], unfused, rtol=0, atol=1e-12)


def test_fuse_twice_or_unfuse_unfused_is_an_error():
    layer = LoRALinear(4, 3, r=2, alpha=4)
    with pytest.raises(RuntimeError):
        layer.unfuse()
    layer.fuse()
    with pytest.raises(RuntimeError):
        layer.fuse()


@given(lora_settings)
def test_training_changes_only_lora_tensors(s):
    model = base_model(s, torch.float32).train()
    add_lora(model, s["r"], s["alpha"], s["targets"], per_projection=s["per_projection"])
    frozen = {n: p.clone() for n, p in model.named_parameters() if "lora_" not in n}
    adapters = {n: p.clone() for n, p in model.named_parameters() if "lora_" in n}
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    for step in range(3):
        x = inputs(s["seed"] + step)
        loss = model(x, x.roll(-1, 1))[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert all(not torch.equal(dict(model.named_parameters())[n], v) for n, v in adapters.items()
               if n.endswith("lora_B"))


@given(s=lora_settings)
def test_adapter_round_trip(s, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapter")
    model = base_model(s, torch.float32)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, s["r"], s["alpha"], s["targets"], per_projection=s["per_projection"])
    randomize_adapters(model, s["seed"])
    save_adapter(folder, model, {"note": "test"})
    fresh = base_model(s, torch.float32)
    fresh.load_state_dict(base_state)
    meta = load_adapter(fresh, folder)
    assert meta["r"] == s["r"] and meta["alpha"] == s["alpha"] and meta["note"] == "test"
    x = inputs(s["seed"])
    torch.testing.assert_close(fresh(x)[0], model(x)[0], rtol=0, atol=0)
    assert sorted(f.name for f in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]


@given(lora_settings)
def test_adapters_start_from_their_seed(s):
    def adapters(seed, global_seed):
        model = base_model(s, torch.float32)
        torch.manual_seed(global_seed)  # whatever ran before must not matter
        add_lora(model, s["r"], s["alpha"], s["targets"], seed=seed, per_projection=s["per_projection"])
        return {n: p.clone() for n, p in model.named_parameters() if "lora_A" in n}
    first, again, other = adapters(s["seed"], 1), adapters(s["seed"], 2), adapters(s["seed"] + 1, 1)
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert all(not torch.equal(first[n], other[n]) for n in first)


def test_adapter_refuses_a_mismatched_base(tmp_path):
    model = GPT(GPTConfig(vocab_size=29, block_size=16, n_layer=1, n_head=2, n_embd=8))
    add_lora(model, 2, 4.0)
    save_adapter(tmp_path, model)
    other = GPT(GPTConfig(vocab_size=29, block_size=16, n_layer=2, n_head=2, n_embd=8))
    with pytest.raises(FileError, match="another base"):
        load_adapter(other, tmp_path)


def test_bad_targets_are_errors():
    model = GPT(GPTConfig(vocab_size=29, block_size=16, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(ValueError, match="no linear layer"):
        add_lora(model, 2, 4.0, ["nonexistent"])
    with pytest.raises(ValueError, match="tied"):
        add_lora(model, 2, 4.0, ["lm_head"])


@given(lora_settings)
def test_per_projection_adapters_are_separate_adapters_on_separate_projections(s):
    """A fused c_attn (or SwiGLU c_fc) with one adapter per projection computes, row block by row block,
    what a separate linear layer per projection with its own adapter computes (PEFT on a Llama model)."""
    s = s | {"r": min(s["r"], s["head_dim"])}  # within the narrowest projection
    model = base_model(s)
    add_lora(model, s["r"], s["alpha"], ["attn.c_attn", "mlp.c_fc"], per_projection=True)
    randomize_adapters(model, s["seed"])
    x = torch.randn(3, 5, model.config.n_embd, generator=torch.Generator().manual_seed(s["seed"]), dtype=torch.float64)
    for name, sizes in model.fused_projections().items():
        fused = model.get_submodule(name)
        assert fused.splits == sizes and fused.lora_A.shape == (len(sizes) * s["r"], fused.in_features)
        parts, start = [], 0
        for i, size in enumerate(sizes):
            alone = LoRALinear(fused.in_features, size, s["r"], s["alpha"], bias=fused.bias is not None,
                               dtype=torch.float64)
            with torch.no_grad():
                alone.weight.copy_(fused.weight[start:start + size])
                if fused.bias is not None:
                    alone.bias.copy_(fused.bias[start:start + size])
                alone.lora_A.copy_(fused.lora_A[i * s["r"]:(i + 1) * s["r"]])
                alone.lora_B.copy_(fused.lora_B[start:start + size])
            parts.append(alone(x))
            start += size
        torch.testing.assert_close(fused(x), torch.cat(parts, -1), rtol=0, atol=1e-12)
        with torch.no_grad():
            fused.fuse()
        torch.testing.assert_close(fused(x), torch.cat(parts, -1), rtol=0, atol=1e-12)


def test_per_projection_needs_the_rank_to_fit_the_narrowest_projection():
    model = GPT(GPTConfig(vocab_size=29, block_size=16, n_layer=1, n_head=4, n_embd=16, n_kv_head=1))
    with pytest.raises(ValueError, match="at most 4"):  # a key head is 4 wide
        add_lora(model, 5, 8.0, ["attn.c_attn"], per_projection=True)
    add_lora(model, 5, 8.0, ["attn.c_attn"])  # one adapter on the whole 24-wide layer
