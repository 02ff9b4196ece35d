"""`python -m minisub.bench` (`make bench`): minisub's speed next to HF transformers' GPT-2, same shape.

Not a test: it prints tokens/s measured in one run on this machine, side by side:
- training (forward + backward + AdamW step) of minisub.GPT and transformers.GPT2LMHeadModel,
  both fp32, plus minisub with bf16 autocast (TrainConfig.precision="bf16");
- KV-cache sampling: minisub's GPT.generate and HF generate(use_cache=True), batch 64, T=1;
- LoRA: fused-LoRA inference against the base, unfused-LoRA training against full training.
Targets: training >= 1.5x and sampling >= 3x HF's tokens/s; fused LoRA within 2% of base.
The transformers package is a bench-only extra (`pip install -e '.[bench]'`).
"""

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from minisub.cli import Parser, add_config_flags, config_from_args
from minisub.config import ConfigError, check, option
from minisub.lora import add_lora, fuse_lora
from minisub.model import GPT, GPTConfig
from minisub.precision import autocast
from minisub.tokenizer import SPECIAL_TOKENS


@dataclass
class BenchConfig:
    n_layer: int = option(4, "transformer blocks", low=1)
    n_head: int = option(4, "attention heads", low=1)
    n_embd: int = option(128, "embedding width", low=1)
    vocab_size: int = option(1280, "vocabulary size", low=len(SPECIAL_TOKENS) + 1)
    block_size: int = option(128, "longest sequence", low=2)
    batch_size: int = option(64, "sequences per batch", low=1)
    train_len: int = option(64, "tokens per training sequence", low=1)
    prompt_len: int = option(16, "prompt tokens when sampling", low=1)
    new_tokens: int = option(48, "tokens sampled per prompt", low=1)
    lora_r: int = option(8, "LoRA rank for the LoRA rows", low=1)
    repeats: int = option(5, "timed repeats per measurement (best is kept)", low=1)
    seed: int = option(0, "seed for weights and tokens", low=0)

    def __post_init__(self):
        check(self)
        if self.prompt_len + self.new_tokens > self.block_size or self.train_len + 1 > self.block_size:
            raise ConfigError("block_size", "must hold the prompt plus the new tokens, and train_len + 1")


def best_time(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls after one warm-up call: the least noisy estimate."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def train_step_fn(model, loss_of, n_tokens: int, precision: str = "fp32", steps: int = 5):
    """`steps` AdamW steps on loss_of(model); returns the function and the tokens it processes."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    model.train()

    def run():
        for _ in range(steps):
            with autocast("cpu", precision):
                loss = loss_of(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return run, steps * n_tokens


def hf_model(cfg: BenchConfig):
    from transformers import GPT2Config, GPT2LMHeadModel
    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, pad_token_id=0, eos_token_id=None, bos_token_id=None)
    return GPT2LMHeadModel(hf_cfg)


def run(cfg: BenchConfig) -> dict:
    torch.manual_seed(cfg.seed)
    gpt_cfg = GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, n_embd=cfg.n_embd)
    ours, theirs = GPT(gpt_cfg), hf_model(cfg)
    g = torch.Generator().manual_seed(cfg.seed)
    first = len(SPECIAL_TOKENS)  # ordinary tokens only: no <pad>, <bos> or <eos> in the inputs
    idx = torch.randint(first, cfg.vocab_size, (cfg.batch_size, cfg.train_len + 1), generator=g)
    prompts = torch.randint(first, cfg.vocab_size, (cfg.batch_size, cfg.prompt_len), generator=g)
    results = {}

    def tokens_per_s(name, fn, n_tokens):
        results[name] = round(n_tokens / best_time(fn, cfg.repeats))
        print(f"{name:<34} {results[name]:>10,} tok/s", flush=True)

    inputs, targets = idx[:, :-1], idx[:, 1:]  # (B, train_len) each
    minisub_loss = lambda model: model(inputs, targets)[1]  # noqa: E731
    tokens_per_s("train minisub", *train_step_fn(ours, minisub_loss, inputs.numel()))
    tokens_per_s("train minisub bf16 autocast", *train_step_fn(ours, minisub_loss, inputs.numel(), "bf16"))
    hf_loss = lambda model: model(input_ids=inputs, labels=inputs).loss  # noqa: E731 (HF shifts labels)
    tokens_per_s("train hf-gpt2", *train_step_fn(theirs, hf_loss, inputs.numel()))

    ours.eval()
    theirs.eval()
    sampled = cfg.batch_size * cfg.new_tokens
    tokens_per_s("sample minisub (kv cache)", lambda: ours.generate(
        prompts, cfg.new_tokens, temperature=1.0, generator=torch.Generator().manual_seed(0)), sampled)
    with torch.no_grad():
        tokens_per_s("sample hf-gpt2 (use_cache)", lambda: theirs.generate(
            prompts, attention_mask=torch.ones_like(prompts), do_sample=True, max_new_tokens=cfg.new_tokens,
            min_new_tokens=cfg.new_tokens, use_cache=True, top_k=0), sampled)

    def forward_fn(model):
        def fn():
            with torch.no_grad():
                model(inputs)
        return fn

    tokens_per_s("inference base", forward_fn(ours), inputs.numel())
    with_lora = GPT(gpt_cfg)
    with_lora.load_state_dict(ours.state_dict())
    add_lora(with_lora, cfg.lora_r, 2.0 * cfg.lora_r)
    fuse_lora(with_lora)
    with_lora.eval()
    tokens_per_s("inference fused LoRA", forward_fn(with_lora), inputs.numel())
    tokens_per_s("sample fused LoRA (kv cache)", lambda: with_lora.generate(
        prompts, cfg.new_tokens, temperature=1.0, generator=torch.Generator().manual_seed(0)), sampled)

    trained = GPT(gpt_cfg)
    add_lora(trained, cfg.lora_r, 2.0 * cfg.lora_r)
    tokens_per_s("train unfused LoRA", *train_step_fn(trained, minisub_loss, inputs.numel()))

    ratios = {
        "train_vs_hf": results["train minisub"] / results["train hf-gpt2"],
        "train_bf16_vs_hf_fp32": results["train minisub bf16 autocast"] / results["train hf-gpt2"],
        "sample_vs_hf": results["sample minisub (kv cache)"] / results["sample hf-gpt2 (use_cache)"],
        "fused_lora_vs_base_inference": results["inference fused LoRA"] / results["inference base"],
        "fused_lora_vs_base_sampling": results["sample fused LoRA (kv cache)"] / results["sample minisub (kv cache)"],
        "lora_training_vs_full": results["train unfused LoRA"] / results["train minisub"],
    }
    for name, value in ratios.items():
        print(f"{name:<34} {value:>10.2f}x")
    return {"config": asdict(cfg), "tokens_per_s": results, "ratios": ratios,
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "torch": torch.__version__, "threads": torch.get_num_threads()}}


def main(argv=None) -> int:
    parser = Parser(prog="python -m minisub.bench", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, BenchConfig)
    parser.add_argument("--out", default="runs/bench", help="folder for bench.json (default: %(default)s)")
    args = parser.parse_args(argv)
    cfg = config_from_args(BenchConfig, args, parser)
    try:
        import transformers  # noqa: F401
    except ImportError:
        parser.error("the benchmark needs the bench extra: pip install -e '.[bench]' (make bench does it)")
    results = run(cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out}/bench.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
