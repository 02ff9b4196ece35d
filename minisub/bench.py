"""`python -m minisub.bench` (`make bench`): minisub's speed next to HF transformers' GPT-2, same shape.

Not a test: it prints tokens/s measured in one run on this machine, side by side:
- first, parity: HF's GPT-2 built with the exact GELU, its weights copied into minisub
  (`minisub/hf.py`), must give the same logits, so that the timings compare one function;
- training (forward + backward + AdamW step) of both, fp32, at the batch and half of it, plus
  minisub with bf16 autocast (TrainConfig.precision="bf16");
- minisub on examples of different lengths, padded into one row each or packed several to a
  row (minisub/data.py): the same loss, counted in real tokens;
- a student's training step (make gpt's student batch, packed) against the most that stacking 6 or
  12 students into one batched model could give: one student at 6 or 12 times the batch;
- KV-cache sampling: minisub's GPT.generate and HF generate(use_cache=True), batch 64, T=1;
- LoRA: fused-LoRA inference against the base, unfused-LoRA training against full training;
- the rooflines: a training step's matmul FLOPs over its time, next to the rate the same matmuls
  reach alone; a decode step's time next to the time its matmuls take alone; for both models:
  how far either could still speed up;
- where the time goes: the share of a training step's and of a sampling run's wall time spent in
  each kind of operation (torch.profiler), for both models.
Every measurement computes with --threads threads (default 1: as every stage of the experiments does, so that
the rates here are the rates their worker processes see). Target: a training step at >= 80% of the rate
its weight matmuls reach alone (the training roofline row); fused LoRA within 2% of base.
transformers comes with the dev extra (`pip install -e '.[dev]'`), as the parity tests need it.
"""

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from minisub.cli import Parser, add_config_flags, config_from_args, run_main
from minisub.config import ConfigError, check, option
from minisub.data import ExampleSet
from minisub.files import check_output_folder, write_json
from minisub.hf import from_hf_gpt2
from minisub.log import machine
from minisub.lora import add_lora, fuse_lora
from minisub.precision import autocast, best_seconds
from minisub.tokenizer import SPECIAL_TOKENS
from minisub.training import lm_loss
from minisub.seeds import MAX_SEED

FP32 = (torch.float32,)  # the dtype of every matmul the rooflines time alone
STACKS = (6, 12)  # students per stacked model whose best case the benchmark measures
STUDENT_STEPS = 5  # student steps per timed call


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
    student_batch: int = option(16, "examples per student step (make gpt's student batch) in the stacking rows",
                                low=1)
    repeats: int = option(5, "timed repeats per measurement (best is kept)", low=1)
    seed: int = option(0, "seed for weights and tokens", low=0, high=MAX_SEED)
    threads: int = option(1, "CPU threads of every measurement (1: as each worker of the experiments computes)",
                          low=1)

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


def train_matmuls(cfg: BenchConfig, batch: int) -> tuple[float, list[tuple[int, int, int]]]:
    """The matmul FLOPs of one training step (forward, and backward at twice the forward) and the (m, k, n)
    shapes of its weight matmuls: per block the qkv, projection and two MLP matmuls and the attention
    scores and mixing; the LM head."""
    n, c, t = batch * cfg.train_len, cfg.n_embd, cfg.train_len
    forward = cfg.n_layer * (2 * n * 12 * c * c + batch * 2 * 2 * t * t * c) + 2 * n * c * cfg.vocab_size
    return 3 * forward, [(n, c, 3 * c), (n, c, 4 * c), (n, 4 * c, c), (n, c, cfg.vocab_size)]


def training_roofline(cfg: BenchConfig, results: dict) -> dict:
    """GFLOP/s of matmul work in each model's training step at the full batch, against the mean rate of the
    step's weight matmuls timed alone (minisub/precision.py): the share of that rate each step reaches."""
    flops, shapes = train_matmuls(cfg, cfg.batch_size)
    alone = [2 * m * k * n / best_seconds((m, k, n), torch.device("cpu"), 0.5, FP32)[torch.float32] / 1e9
             for m, k, n in shapes]
    peak = sum(alone) / len(alone)
    tokens = cfg.batch_size * cfg.train_len
    rates = {name: results[f"train {name} b{cfg.batch_size}"] / tokens * flops / 1e9 for name in ("minisub", "hf-gpt2")}
    out = {"matmul_gflops_alone": peak, **{f"{name}_gflops": r for name, r in rates.items()},
           **{f"{name}_share_of_matmul_rate": r / peak for name, r in rates.items()}}
    print(f"training roofline: step matmuls alone {peak:.0f} GFLOP/s; minisub {rates['minisub']:.0f} "
          f"({out['minisub_share_of_matmul_rate']:.0%}), HF {rates['hf-gpt2']:.0f} "
          f"({out['hf-gpt2_share_of_matmul_rate']:.0%}); target 80%")
    return out


def ragged_examples(cfg: BenchConfig, n_examples: int, first_token: int, generator: torch.Generator) -> ExampleSet:
    """`n_examples` random examples of 7 to `train_len` targets each, every target trained."""
    lengths = torch.randint(8, cfg.train_len + 2, (n_examples,), generator=generator).tolist()
    return ExampleSet([torch.randint(first_token, cfg.vocab_size, (n,), generator=generator).tolist() for n in lengths],
                      [[True] * (n - 1) for n in lengths], pad_id=0)


def stacking_ceiling(cfg: BenchConfig, model, first_token: int, generator: torch.Generator) -> dict[str, float]:
    """Student training steps per second: one student (`student_batch` ragged examples, packed), and the
    ceiling of n students stacked into one batched model (weights on a leading member axis, the step
    vmapped over it), for n in STACKS: one student at n times the batch. That runs the same rows through the
    same matmuls with one set of weights and one AdamW update instead of n, so no stacked model can beat it."""
    pool = ragged_examples(cfg, cfg.student_batch * max(STACKS), first_token, generator)
    rates = {}
    for n in (1, *STACKS):
        batch = pool.batch(list(range(cfg.student_batch * n)), cfg.block_size)
        step, _ = train_step_fn(model, lambda m, b=batch: lm_loss(m, b), 0, steps=STUDENT_STEPS)
        rates[str(n)] = n * STUDENT_STEPS / best_time(step, cfg.repeats)
    print(f"student steps/s, batch {cfg.student_batch}: {rates['1']:,.1f}; the ceiling of stacking "
          + ", ".join(f"{n}: {rates[str(n)]:,.1f} ({rates[str(n)] / rates['1']:.2f}x)" for n in STACKS), flush=True)
    return rates


def decode_matmuls(cfg: BenchConfig) -> list[tuple[int, int, int]]:
    """The (m, k, n) of the weight matmuls of one decode step, one new token per row: per block the
    qkv, projection and two MLP matmuls, then the LM head."""
    b, c = cfg.batch_size, cfg.n_embd
    return cfg.n_layer * [(b, c, 3 * c), (b, c, c), (b, c, 4 * c), (b, 4 * c, c)] + [(b, c, cfg.vocab_size)]


def sampling_roofline(cfg: BenchConfig, results: dict) -> dict:
    """Milliseconds per decode step of each model (a sampling run's time over its new tokens per row, so the
    prefill is spread over the steps), against the time the step's weight matmuls take alone: what is left
    for attention, norms, sampling and dispatch."""
    shapes = decode_matmuls(cfg)
    alone = sum(shapes.count(s) * best_seconds(s, torch.device("cpu"), 0.2, FP32)[torch.float32] for s in set(shapes))
    minisub = 1e3 * cfg.batch_size / results["sample minisub (kv cache)"]
    hf = 1e3 * cfg.batch_size / results["sample hf-gpt2 (use_cache)"]
    out = {"decode_matmuls_alone_ms": 1e3 * alone, "minisub_step_ms": minisub, "hf-gpt2_step_ms": hf}
    print(f"sampling roofline: a decode step's matmuls alone {1e3 * alone:.2f} ms; minisub's step {minisub:.2f} ms, "
          f"HF's {hf:.2f} ms")
    return out


# The kinds of aten operation a step spends its time in (self time, on the calling thread); any other
# operation counts as "other ops", and the wall time outside every operation as Python and dispatch.
TIME_KINDS = {
    "matmuls": {"mm", "addmm", "bmm", "baddbmm"},
    "attention kernel": {"_scaled_dot_product_flash_attention_for_cpu",
                         "_scaled_dot_product_flash_attention_for_cpu_backward"},
    "norms, GELU, softmax, loss": {"native_layer_norm", "native_layer_norm_backward", "gelu", "gelu_backward",
                                   "_softmax", "_softmax_backward_data", "_log_softmax", "_log_softmax_backward_data",
                                   "nll_loss_forward", "nll_loss_backward"},
    "optimizer": {"_fused_adamw_"},
    "copies, fills, indexing": {"copy_", "_to_copy", "fill_", "zero_", "cat", "index", "index_select",
                                "index_put_", "_index_put_impl_", "embedding_dense_backward", "masked_fill_"},
}
OTHER_OPS, OUTSIDE_OPS = "other ops", "outside ops (Python, dispatch, profiler)"


def time_shares(fn: Callable[[], object], repeats: int = 5) -> dict[str, float]:
    """Share of a call's wall time per kind of operation (TIME_KINDS), from torch.profiler: the fastest of
    `repeats` profiled calls after a warm-up call, like the timings (a call slowed by other load on the
    machine shifts the shares). The profiler's own per-operation cost lands in the outside share."""
    fn()
    best_wall, best = float("inf"), None
    for _ in range(repeats):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            fn()
            wall = time.perf_counter() - start
        if wall < best_wall:
            best_wall, best = wall, prof
    shares = dict.fromkeys([*TIME_KINDS, OTHER_OPS], 0.0)
    for event in best.key_averages():
        if event.key.startswith("aten::"):
            op = event.key.removeprefix("aten::")
            kind = next((kind for kind, ops in TIME_KINDS.items() if op in ops), OTHER_OPS)
            shares[kind] += event.self_cpu_time_total / 1e6 / best_wall  # profiler times are in microseconds
    shares[OUTSIDE_OPS] = 1.0 - sum(shares.values())
    return shares


def hf_model(cfg: BenchConfig):
    """HF's GPT-2 with the exact GELU (its default is the tanh approximation) and no dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel
    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, activation_function="gelu", resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=0, eos_token_id=None, bos_token_id=None)
    return GPT2LMHeadModel(hf_cfg)


@torch.no_grad()
def hf_sample(model, prompts: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """HF's KV-cache sampling at T=1 with no top-k, exactly `new_tokens` per prompt."""
    return model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                          max_new_tokens=new_tokens, min_new_tokens=new_tokens, use_cache=True, top_k=0)


def run(cfg: BenchConfig) -> dict:
    from transformers import __version__ as transformers_version  # the dev extra (main checks that it is there)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    theirs = hf_model(cfg)
    ours = from_hf_gpt2(theirs)  # the same weights: both compute the same function
    g = torch.Generator().manual_seed(cfg.seed)
    first = len(SPECIAL_TOKENS)  # ordinary tokens only: no <pad>, <bos> or <eos> in the inputs
    idx = torch.randint(first, cfg.vocab_size, (cfg.batch_size, cfg.train_len + 1), generator=g)
    prompts = torch.randint(first, cfg.vocab_size, (cfg.batch_size, cfg.prompt_len), generator=g)
    inputs, targets = idx[:, :-1], idx[:, 1:]  # (B, train_len) each
    with torch.no_grad():
        gap = (ours(inputs)[0] - theirs.eval()(input_ids=inputs).logits).abs().max().item()
    print(f"parity: max |logit difference| with HF GPT-2 (exact GELU, copied weights) = {gap:.2e}", flush=True)
    if gap > 1e-4:
        raise SystemExit("parity failed: the speed comparison would not compare the same function")
    results = {}

    def tokens_per_s(name, fn, n_tokens):
        results[name] = round(n_tokens / best_time(fn, cfg.repeats))
        print(f"{name:<34} {results[name]:>10,} tok/s", flush=True)

    def train_minisub(batch, steps=5, precision="fp32"):
        x, y = inputs[:batch], targets[:batch]
        return train_step_fn(ours, lambda m: m(x, y)[1], x.numel(), precision, steps)

    def train_hf(batch, steps=5):
        x = inputs[:batch]
        return train_step_fn(theirs, lambda m: m(input_ids=x, labels=x).loss, x.numel(), steps=steps)  # HF shifts

    def sample_minisub():
        return ours.eval().generate(prompts, cfg.new_tokens, temperature=1.0,
                                    generator=torch.Generator().manual_seed(0))

    def sample_hf():
        return hf_sample(theirs.eval(), prompts, cfg.new_tokens)

    for batch in sorted({cfg.batch_size // 2, cfg.batch_size}):
        tokens_per_s(f"train minisub b{batch}", *train_minisub(batch))
        tokens_per_s(f"train hf-gpt2 b{batch}", *train_hf(batch))
    tokens_per_s("train minisub bf16 autocast", *train_minisub(cfg.batch_size, precision="bf16"))
    ragged = ragged_examples(cfg, cfg.batch_size, first, g)
    real_tokens = sum(len(sequence) - 1 for sequence in ragged.sequences)
    for name, batch in (("padded", ragged.batch(list(range(cfg.batch_size)))),
                        ("packed", ragged.batch(list(range(cfg.batch_size)), cfg.block_size))):
        step = train_step_fn(ours, lambda m, b=batch: lm_loss(m, b), real_tokens)
        tokens_per_s(f"train minisub ragged, {name}", *step)

    student_steps = stacking_ceiling(cfg, ours, first, g)

    sampled = cfg.batch_size * cfg.new_tokens
    tokens_per_s("sample minisub (kv cache)", sample_minisub, sampled)
    tokens_per_s("sample hf-gpt2 (use_cache)", sample_hf, sampled)

    def forward_fn(model):
        def fn():
            with torch.no_grad():
                model(inputs)
        return fn

    tokens_per_s("inference base", forward_fn(ours), inputs.numel())
    with_lora = from_hf_gpt2(theirs)
    add_lora(with_lora, cfg.lora_r, 2.0 * cfg.lora_r)
    fuse_lora(with_lora)
    with_lora.eval()
    tokens_per_s("inference fused LoRA", forward_fn(with_lora), inputs.numel())
    tokens_per_s("sample fused LoRA (kv cache)", lambda: with_lora.generate(
        prompts, cfg.new_tokens, temperature=1.0, generator=torch.Generator().manual_seed(0)), sampled)

    trained = from_hf_gpt2(theirs)
    add_lora(trained, cfg.lora_r, 2.0 * cfg.lora_r)
    tokens_per_s("train unfused LoRA", *train_step_fn(trained, lambda m: m(inputs, targets)[1], inputs.numel()))

    b = cfg.batch_size
    shares = {name: time_shares(fn, cfg.repeats) for name, fn in (
        ("train minisub", train_minisub(b, steps=1)[0]), ("train hf-gpt2", train_hf(b, steps=1)[0]),
        ("sample minisub", sample_minisub), ("sample hf-gpt2", sample_hf))}
    print("\nwhere the time goes (share of wall time)  " + "".join(f"{name:>16}" for name in shares))
    for kind in next(iter(shares.values())):
        print(f"{kind:<42}" + "".join(f"{column[kind]:>16.0%}" for column in shares.values()))
    ratios = {
        **{f"train_vs_hf_b{n}": results[f"train minisub b{n}"] / results[f"train hf-gpt2 b{n}"]
           for n in sorted({b // 2, b})},
        "train_bf16_vs_hf_fp32": results["train minisub bf16 autocast"] / results[f"train hf-gpt2 b{b}"],
        "train_packed_vs_padded": results["train minisub ragged, packed"] / results["train minisub ragged, padded"],
        "sample_vs_hf": results["sample minisub (kv cache)"] / results["sample hf-gpt2 (use_cache)"],
        "fused_lora_vs_base_inference": results["inference fused LoRA"] / results["inference base"],
        "fused_lora_vs_base_sampling": results["sample fused LoRA (kv cache)"] / results["sample minisub (kv cache)"],
        "lora_training_vs_full": results["train unfused LoRA"] / results[f"train minisub b{b}"],
    }
    for name, value in ratios.items():
        print(f"{name:<34} {value:>10.2f}x")
    return {"config": asdict(cfg), "parity_max_logit_gap": gap, "tokens_per_s": results, "ratios": ratios,
            "student_steps_per_s": student_steps,
            "training_roofline": training_roofline(cfg, results),
            "sampling_roofline": sampling_roofline(cfg, results), "time_shares": shares,
            "machine": machine(transformers=transformers_version)}


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
        parser.error("the benchmark needs transformers: pip install -e '.[dev]' (make bench does it)")

    def body() -> None:
        out = check_output_folder(args.out)
        write_json(out / "bench.json", run(cfg))
        print(f"wrote {out}/bench.json")
    return run_main("minisub.bench", body)


if __name__ == "__main__":
    raise SystemExit(main())
