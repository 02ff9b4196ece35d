"""The `make bench` blocks of docs/benchmark.md, rendered from docs/results/bench.json: `PAGES`, and `KEPT`, what
`make report --take` keeps of a run's results."""

from minisub.bench import BenchConfig, train_matmuls
from minisub.render import make_command


BENCH_ROWS = (  # label; the tokens_per_s entries set side by side, minisub's then the other; what the other is
    ("training fp32, batch {half} (tok/s)", "train minisub b{half}", "train hf-gpt2 b{half}", "HF GPT-2"),
    ("training fp32, batch {batch} (tok/s)", "train minisub b{batch}", "train hf-gpt2 b{batch}", "HF GPT-2"),
    ("training, minisub bf16 autocast, batch {batch} (tok/s)", "train minisub bf16 autocast",
     "train hf-gpt2 b{batch}", "HF GPT-2 fp32"),
    ("KV-cache sampling (tok/s)", "sample minisub (kv cache)", "sample hf-gpt2 (use_cache)", "HF GPT-2"),
    ("fused-LoRA inference (r={lora_r}, all linears; tok/s)", "inference fused LoRA", "inference base",
     "minisub, no LoRA"),
    ("fused-LoRA sampling (tok/s)", "sample fused LoRA (kv cache)", "sample minisub (kv cache)", "minisub, no LoRA"),
    ("unfused-LoRA training (tok/s)", "train unfused LoRA", "train minisub b{batch}", "full training"),
    ("{batch} examples of 7-{train_len} tokens, packed (real tok/s)", "train minisub ragged, packed",
     "train minisub ragged, padded", "padded"))

def bench_names(template: str, cfg: dict) -> str:
    return template.format(half=cfg["batch_size"] // 2, **cfg, batch=cfg["batch_size"])

def bench_machine(results: dict) -> str:
    m, cfg = results["machine"], results["config"]
    command = make_command("bench", (cfg, BenchConfig()))
    return (f"Measured by `{command}` on {m['cpu']} ({', '.join(m['isa'])}), {m['threads']} "
            f"thread{'s' if m['threads'] > 1 else ''}, torch {m['torch']}, transformers {m['transformers']}; "
            f"best of {cfg['repeats']} timed runs.\n")

def bench_table(results: dict) -> str:
    cfg, speed = results["config"], results["tokens_per_s"]
    rows = ["| | minisub | compared with | ratio |", "|---|---|---|---|",
            f"| parity with HF GPT-2: max logit difference | | | {results['parity_max_logit_gap']:.1g} |"]
    for label, ours, other, other_label in BENCH_ROWS:
        a, b = speed[bench_names(ours, cfg)], speed[bench_names(other, cfg)]
        rows.append(f"| {bench_names(label, cfg)} | {a:,} | {b:,} ({other_label}) | {a / b:.2f}x |")
    return "\n".join(rows) + "\n"

def bench_rooflines(results: dict) -> str:
    cfg, train, sample = results["config"], results["training_roofline"], results["sampling_roofline"]
    flops, _ = train_matmuls(BenchConfig(**cfg), cfg["batch_size"])
    return (f"- *Training.* A step at batch {cfg['batch_size']} multiplies {flops / 1e9:.1f} GFLOP (`train_matmuls`, "
            "checked against PyTorch's own FLOP count). The step's weight matmuls timed alone run at "
            f"{train['matmul_gflops_alone']:.0f} GFLOP/s; minisub's whole step reaches "
            f"{train['minisub_gflops']:.0f} GFLOP/s of that work ({train['minisub_share_of_matmul_rate']:.0%}; "
            f"target 80%), HF's {train['hf-gpt2_gflops']:.0f} ({train['hf-gpt2_share_of_matmul_rate']:.0%}).\n"
            f"- *Sampling.* A decode step (one new token for each of {cfg['batch_size']} rows, the prefill spread "
            f"over the {cfg['new_tokens']} steps) takes minisub {sample['minisub_step_ms']:.1f} ms and HF "
            f"{sample['hf-gpt2_step_ms']:.1f} ms; its weight matmuls alone take "
            f"{sample['decode_matmuls_alone_ms']:.1f} ms.\n" + bench_stacking(results))

def bench_stacking(results: dict) -> str:
    cfg, rates = results["config"], results["student_steps_per_s"]
    stacks = [n for n in rates if n != "1"]
    either = " or ".join(stacks)
    return (f"- *Stacked students.* A student step (batch {cfg['student_batch']}, packed) runs {rates['1']:.0f} times "
            f"a second. Stacking {either} students into one batched model could at best run like one "
            f"student at {either} times the batch: "
            + " and ".join(f"{rates[n]:.0f} student steps/s ({rates[n] / rates['1']:.2f}x)" for n in stacks) + ".\n")

def bench_shares(results: dict) -> str:
    shares = results["time_shares"]
    rows = ["| share of wall time | " + " | ".join(shares) + " |", "|---" * (len(shares) + 1) + "|"]
    for kind in next(iter(shares.values())):
        rows.append(f"| {kind} | " + " | ".join(f"{column[kind]:.0%}" for column in shares.values()) + " |")
    return "\n".join(rows) + "\n"


PAGES = {"bench": {"machine": bench_machine, "table": bench_table, "rooflines": bench_rooflines,
                   "shares": bench_shares}}
KEPT = {"bench": ("config", "machine", "parity_max_logit_gap", "tokens_per_s", "training_roofline",
                  "sampling_roofline", "student_steps_per_s", "time_shares")}
