"""`python -m minisub {train-tokenizer,train,sample,finetune}`: the engine's command line.

train-tokenizer  text file -> tokenizer.json (byte-level BPE, every number 0-999 one token)
train            examples file + tokenizer -> a checkpoint folder (model, config, tokenizer)
sample           checkpoint (+ LoRA adapter) + prompts -> continuations, KV-cached
finetune         checkpoint + examples -> a new checkpoint (full) or an adapter (--lora-r > 0)
Example files hold one example per line: `prompt<TAB>answer` (loss on the answer) or plain text.
"""

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch

from minisub.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minisub.cli import Parser, add_config_flags, config_from_args
from minisub.data import ExampleSet
from minisub.lora import DEFAULT_TARGETS, add_lora, fuse_lora, load_adapter, save_adapter
from minisub.model import GPT, GPTConfig
from minisub.tokenizer import BPETokenizer
from minisub.train import TrainConfig, train

MODEL_HELP = {
    "block_size": "longest sequence the model takes", "n_layer": "transformer blocks",
    "n_head": "attention heads", "n_embd": "embedding width", "dropout": "dropout rate",
    "bias": "biases in linear layers and layer norms",
}
TRAIN_HELP = {
    "steps": "optimizer steps", "batch_size": "examples per step", "lr": "peak learning rate",
    "min_lr": "learning rate at the last step (cosine decay)", "warmup_steps": "linear warm-up steps",
    "weight_decay": "AdamW weight decay on matrices (not on norms, biases, embeddings)",
    "beta1": "AdamW beta1", "beta2": "AdamW beta2", "grad_clip": "gradient-norm clip (0: off)",
    "eval_every": "steps between evaluations on --val", "eval_batches": "batches per evaluation",
    "checkpoint_every": "steps between resumable training states", "log_every": "steps between progress lines",
    "seed": "seed for init, batches and dropout", "device": "torch device",
    "precision": "fp32, or bf16 (autocast matmuls; faster on CPUs with native bf16)",
}


def cmd_train_tokenizer(args) -> None:
    lines = [line for line in Path(args.input).read_text().splitlines() if line.strip()]
    tokenizer = BPETokenizer.train(lines, args.vocab_size)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(args.out)
    print(f"tokenizer: {tokenizer.vocab_size} tokens -> {args.out}")


def load_examples(path, tokenizer, block_size):
    data = ExampleSet.from_text_file(path, tokenizer)
    if data.max_len() > block_size:
        raise ValueError(f"{path} has an example of {data.max_len()} tokens; --block-size is {block_size}")
    return data


def cmd_train(args) -> None:
    tokenizer = BPETokenizer.load(args.tokenizer)
    model_cfg = replace(config_from_args(GPTConfig, args), vocab_size=tokenizer.vocab_size)
    train_cfg = config_from_args(TrainConfig, args)
    train_set = load_examples(args.data, tokenizer, model_cfg.block_size)
    val_set = load_examples(args.val, tokenizer, model_cfg.block_size) if args.val else None
    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg)
    print(f"model: {model.num_params():,} parameters; {len(train_set)} training examples")
    history = train(model, train_set, train_cfg, args.out, val_set, resume=args.resume)
    save_checkpoint(args.out, model, {"train_config": asdict(train_cfg), "history": history,
                                      "data": str(args.data)}, tokenizer)
    print(f"saved {args.out}")


def cmd_finetune(args) -> None:
    model, meta = load_checkpoint(args.checkpoint)
    tokenizer = BPETokenizer.load(Path(args.checkpoint) / "tokenizer.json")
    train_cfg = config_from_args(TrainConfig, args)
    train_set = load_examples(args.data, tokenizer, model.config.block_size)
    if args.lora_r > 0:
        add_lora(model, args.lora_r, args.lora_alpha, args.lora_targets, args.lora_dropout)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"fine-tuning {trainable:,} of {model.num_params():,} parameters")
    history = train(model, train_set, train_cfg, args.out, resume=args.resume)
    record = {"base": str(args.checkpoint), "train_config": asdict(train_cfg), "history": history,
              "data": str(args.data)}
    if args.lora_r > 0:
        save_adapter(args.out, model, record)
    else:
        save_checkpoint(args.out, model, record, tokenizer)
    print(f"saved {args.out}")


def cmd_sample(args) -> None:
    model, _ = load_checkpoint(args.checkpoint, args.device)
    tokenizer = BPETokenizer.load(Path(args.checkpoint) / "tokenizer.json")
    if args.adapter:
        load_adapter(model, args.adapter)
        fuse_lora(model)  # inference at base speed
    model.eval()
    prompts = [[tokenizer.bos_id, *tokenizer.encode(p)] for p in args.prompt]
    allowed = tokenizer.number_ids if args.numbers_only else None
    generator = torch.Generator(args.device).manual_seed(args.seed)
    outputs = model.generate(prompts, args.max_new_tokens, args.temperature, args.top_k, allowed,
                             tokenizer.eos_id, generator)
    for prompt, new in zip(args.prompt, outputs):
        print(f"{prompt!r} -> {tokenizer.decode(new)!r}")


def build_parser() -> Parser:
    parser = Parser(prog="python -m minisub", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = commands.add_parser("train-tokenizer", help="train the BPE tokenizer on a text file")
    p.add_argument("--input", required=True, help="text file, one document per line")
    p.add_argument("--vocab-size", type=int, default=1280, help="vocabulary size (default: %(default)s)")
    p.add_argument("--out", required=True, help="tokenizer.json to write")
    p.set_defaults(run=cmd_train_tokenizer)

    p = commands.add_parser("train", help="pretrain a GPT from scratch")
    p.add_argument("--data", required=True, help="training examples file")
    p.add_argument("--val", help="validation examples file (optional)")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--resume", action="store_true", help="continue from the training state in --out")
    add_config_flags(p, GPTConfig, MODEL_HELP, skip={"vocab_size"})
    add_config_flags(p, TrainConfig, TRAIN_HELP)
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("finetune", help="fine-tune a checkpoint, fully or with LoRA")
    p.add_argument("--checkpoint", required=True, help="base checkpoint folder")
    p.add_argument("--data", required=True, help="training examples file")
    p.add_argument("--out", required=True, help="folder for the new checkpoint or adapter")
    p.add_argument("--resume", action="store_true", help="continue from the training state in --out")
    p.add_argument("--lora-r", type=int, default=0, help="LoRA rank; 0 = full fine-tuning (default: 0)")
    p.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA alpha (default: %(default)s)")
    p.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout (default: %(default)s)")
    p.add_argument("--lora-targets", nargs="+", default=list(DEFAULT_TARGETS),
                   help="linear layers to adapt, by name suffix (default: %(default)s)")
    add_config_flags(p, TrainConfig, TRAIN_HELP)
    p.set_defaults(run=cmd_finetune, lr=1e-3, min_lr=1e-4, weight_decay=0.0, warmup_steps=20)

    p = commands.add_parser("sample", help="sample continuations from a checkpoint")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder")
    p.add_argument("--adapter", help="LoRA adapter folder to apply (fused)")
    p.add_argument("--prompt", action="append", required=True, help="a prompt; repeat for a batch")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens to sample (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    p.add_argument("--numbers-only", action="store_true", help="allow only the number tokens 0-999")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.set_defaults(run=cmd_sample)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, CheckpointError, FileNotFoundError) as err:
        print(f"minisub {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
