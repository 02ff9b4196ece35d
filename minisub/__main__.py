"""`python -m minisub {train-tokenizer,train,sample,finetune}`: the engine's command line.

train-tokenizer  text file -> tokenizer.json (byte-level BPE, every number 0-999 one token)
train            examples file + tokenizer -> a checkpoint folder (model, config, tokenizer)
sample           checkpoint (+ LoRA adapter), or a llama GGUF file, + prompts -> continuations, KV-cached
finetune         checkpoint + examples -> a new checkpoint (full) or an adapter (--lora-r > 0)
Example files hold one example per line: `prompt<TAB>answer` (loss on the answer) or plain text.
Output folders are checked before any work and locked while a command writes them (a second
run into the same folder is refused, naming the first); a folder that already holds a run is
refused unless --resume continues it or --force starts it over (the old run is replaced only
once the new one has saved), and an output that is, or holds, an input is refused outright.
--resume continues only with the saved run's settings and data, unless --force allows a change.
"""

import argparse
import os
import shutil
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from minisub import distributed
from minisub.checkpoint import load_checkpoint, save_checkpoint
from minisub.cli import Parser, add_config_flags, config_from_args, run_main
from minisub.config import ConfigError, check, option
from minisub.data import ExampleSet, read_lines
from minisub.files import check_apart, check_output_folder, clean_temporaries
from minisub.gguf import load_gguf
from minisub.locks import exclusive
from minisub.lora import DEFAULT_TARGETS, add_lora, fuse_lora, load_adapter, save_adapter
from minisub.model import GPT, GPTConfig, check_sampling
from minisub.tokenizer import BPETokenizer
from minisub.training import STATE_FILE, TrainConfig, has_training_state, train
from minisub.seeds import MAX_SEED

RUN_FILES = ("config.json", "adapter_config.json", STATE_FILE)  # what marks a folder as holding a run
LOCK_FILE = ".minisub.lock"  # held by the run writing the folder; names it (minisub/locks.py)
STAGING = ".minisub.forced"  # where a --force run writes until it has saved (prepared_output)


@dataclass
class LoRAConfig:
    lora_r: int = option(0, "LoRA rank; 0 = full fine-tuning", low=0)
    lora_alpha: float = option(16.0, "LoRA alpha (the update is scaled by alpha / r)", low=0.0)
    lora_dropout: float = option(0.0, "dropout on the adapters' input", low=0.0)
    lora_targets: list[str] = option(list(DEFAULT_TARGETS), "linear layers to adapt, by name suffix",
                                     nonempty=True)

    def __post_init__(self):
        check(self)
        if self.lora_dropout >= 1:
            raise ConfigError("lora_dropout", f"must be below 1, not {self.lora_dropout}")


@dataclass
class SampleConfig:
    max_new_tokens: int = option(32, "tokens to sample per prompt")
    temperature: float = option(1.0, "sampling temperature; 0 = greedy")
    top_k: int | None = option(None, "sample among the k likeliest tokens (None: among all)")
    top_p: float = option(1.0, "sample among the fewest likeliest tokens whose probability sums to at least this "
                               "(nucleus sampling; 1: among all)")
    min_p: float = option(0.0, "sample among the tokens at least this many times as likely as the likeliest (0: all)")
    numbers_only: bool = option(False, "allow only the number tokens 0-999")
    seed: int = option(0, "sampling seed", low=0, high=MAX_SEED)
    device: str = option("cpu", "torch device (cpu or cuda)", device=True)

    def __post_init__(self):
        check(self)
        check_sampling(self.max_new_tokens, self.temperature, self.top_k, self.top_p, self.min_p)  # generate()'s


@contextmanager
def prepared_output(out: str, resume: bool, force: bool, inputs: dict[str, str | None]):
    """The output folder, checked before any work (writable, apart from the inputs, not holding a run
    by mistake) and held for the body: no other run writes it meanwhile."""
    check_apart(out, inputs)
    folder = check_output_folder(out)
    with exclusive(folder / LOCK_FILE):
        clean_temporaries(folder)  # what a killed run's writes left; ours is the only live writer
        if resume and not has_training_state(folder):
            raise ValueError(f"--resume: {folder} holds no training state to continue")
        present = [name for name in RUN_FILES if (folder / name).exists()]
        if resume or not present:
            yield folder
            return
        if not force:
            raise ValueError(f"{folder} already holds a run ({', '.join(present)}); pass --resume to "
                             "continue it or --force to start over")
        staging = folder / STAGING  # --force: the new run is written beside the old one, which stays whole until
        if staging.exists():  # the new one has saved; what a killed forced run left is dropped
            shutil.rmtree(staging)
        staging.mkdir()
        yield staging
        replace_run(folder, staging)


def replace_run(folder: Path, staging: Path) -> None:
    """Move a forced run's saved files from `staging` over the old run in `folder`: its data first, the files that
    mark a run (config.json, ...) last, then drop the old run's markers the new run did not replace. Until then
    the old config.json records the old files' SHA-256, so a mix is refused at load, never read as a run."""
    new = sorted((p.name for p in staging.iterdir() if p.is_file()), key=lambda name: name in RUN_FILES)
    for name in new:
        os.replace(staging / name, folder / name)
    for name in set(RUN_FILES) - set(new):
        (folder / name).unlink(missing_ok=True)
    staging.rmdir()


def cmd_train_tokenizer(args) -> None:
    check_apart(args.out, {"--input": args.input})
    if Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a folder; name the tokenizer.json file to write")
    check_output_folder(Path(args.out).parent)
    lines = read_lines(args.input)
    if not lines:
        raise ValueError(f"{args.input} holds no text")
    tokenizer = BPETokenizer.train(lines, args.vocab_size)
    tokenizer.save(args.out)
    print(f"tokenizer: {tokenizer.vocab_size} tokens -> {args.out}")


def load_examples(path, tokenizer, block_size):
    data = ExampleSet.from_text_file(path, tokenizer)
    if data.max_len() > block_size:
        raise ValueError(f"{path} has an example of {data.max_len()} tokens; --block-size is {block_size}")
    return data


def cmd_train(args) -> None:
    tokenizer = BPETokenizer.load(args.tokenizer)
    model_cfg = replace(args.model_cfg, vocab_size=tokenizer.vocab_size)
    train_set = load_examples(args.data, tokenizer, model_cfg.block_size)
    val_set = load_examples(args.val, tokenizer, model_cfg.block_size) if args.val else None
    procs, _ = distributed.setup(args.train_cfg.device)  # under torchrun: rank 0 alone checks and writes
    distributed.check_split(args.train_cfg.batch_size, procs)  # before rank 0 touches the output folder
    inputs = {"--data": args.data, "--val": args.val, "--tokenizer": args.tokenizer}
    held = prepared_output(args.out, args.resume, args.force, inputs) if procs.is_main else nullcontext(Path(args.out))
    with held as out:
        distributed.barrier(procs)
        torch.manual_seed(args.train_cfg.seed)
        model = GPT(model_cfg)
        say = print if procs.is_main else (lambda message: None)
        say(f"model: {model.num_params():,} parameters; {len(train_set)} training examples; "
            f"{procs.world_size} process(es)")
        history = train(model, train_set, args.train_cfg, out, val_set, resume=args.resume, log=say,
                        allow_changes=args.force)
        if procs.is_main:
            save_checkpoint(out, model, {"train_config": asdict(args.train_cfg), "history": history,
                                         "data": str(args.data), "processes": procs.world_size}, tokenizer)
            print(f"saved {args.out}")
    distributed.teardown()


def cmd_finetune(args) -> None:
    model, meta = load_checkpoint(args.checkpoint)
    tokenizer = BPETokenizer.load(Path(args.checkpoint) / "tokenizer.json")
    train_set = load_examples(args.data, tokenizer, model.config.block_size)
    lora = args.lora_cfg
    if lora.lora_r > 0:
        add_lora(model, lora.lora_r, lora.lora_alpha, lora.lora_targets, lora.lora_dropout, seed=args.train_cfg.seed)
    inputs = {"--checkpoint": args.checkpoint, "--data": args.data}
    with prepared_output(args.out, args.resume, args.force, inputs) as out:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"fine-tuning {trainable:,} of {model.num_params():,} parameters")
        history = train(model, train_set, args.train_cfg, out, resume=args.resume, allow_changes=args.force)
        record = {"base": str(args.checkpoint), "train_config": asdict(args.train_cfg), "history": history,
                  "data": str(args.data)}
        if lora.lora_r > 0:
            save_adapter(out, model, record)
        else:
            save_checkpoint(out, model, record, tokenizer)
        print(f"saved {args.out}")


def gguf_sampling(args):
    """(model, prompt ids, stop token, decode) of a llama GGUF file; --chat wraps each prompt in its chat template."""
    if args.adapter or args.sample_cfg.numbers_only:
        raise ValueError("--adapter and --numbers-only are for minisub checkpoints, not --gguf")
    loaded = load_gguf(args.gguf)
    if args.chat:
        prompts = [loaded.chat_prompt(p, args.system) for p in args.prompt]
    else:
        prompts = [loaded.encode(p) for p in args.prompt]
    return loaded.model, prompts, loaded.eos_id, loaded.tokenizer.decode


def check_text(flag: str, text: str | None) -> None:
    """Refuse text from the command line that is not UTF-8 (the shell hands such bytes over as lone surrogates)."""
    try:
        (text or "").encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{flag} {text!r} is not valid UTF-8 text") from None


def cmd_sample(args) -> None:
    cfg = args.sample_cfg
    for prompt in args.prompt:
        check_text("--prompt", prompt)
    check_text("--system", args.system)
    if args.gguf:
        model, prompts, stop, decode = gguf_sampling(args)
        allowed = None
    else:
        if args.chat or args.system is not None:
            raise ValueError("--chat and --system need --gguf: a minisub checkpoint has no chat template")
        model, _ = load_checkpoint(args.checkpoint, cfg.device)
        tokenizer = BPETokenizer.load(Path(args.checkpoint) / "tokenizer.json")
        if args.adapter:
            load_adapter(model, args.adapter)
            fuse_lora(model)  # inference at base speed
        prompts, stop, decode = [tokenizer.encode_prompt(p) for p in args.prompt], tokenizer.eos_id, tokenizer.decode
        allowed = tokenizer.number_ids if cfg.numbers_only else None
    model.to(cfg.device).eval()
    generator = torch.Generator(cfg.device).manual_seed(cfg.seed)
    outputs = model.generate(prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_k, allowed, stop, generator,
                             top_p=cfg.top_p, min_p=cfg.min_p)
    for prompt, new in zip(args.prompt, outputs):
        print(f"{prompt!r} -> {decode(new)!r}")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue from the training state in --out")
    p.add_argument("--force", action="store_true", help="start over in an --out that already holds a run; with "
                   "--resume, continue even where the settings or the data differ from the saved run's")


def build_parser() -> Parser:
    parser = Parser(prog="python -m minisub", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = commands.add_parser("train-tokenizer", help="train the BPE tokenizer on a text file")
    p.add_argument("--input", required=True, help="text file, one document per line")
    p.add_argument("--vocab-size", type=int, default=1280, help="vocabulary size (default: %(default)s)")
    p.add_argument("--out", required=True, help="tokenizer.json to write")
    p.set_defaults(run=cmd_train_tokenizer, configs={}, parser=p)

    p = commands.add_parser("train", help="pretrain a GPT from scratch")
    p.add_argument("--data", required=True, help="training examples file")
    p.add_argument("--val", help="validation examples file (optional)")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    add_run_flags(p)
    add_config_flags(p, GPTConfig, skip={"vocab_size"})
    add_config_flags(p, TrainConfig)
    p.set_defaults(run=cmd_train, configs={"model_cfg": GPTConfig, "train_cfg": TrainConfig}, parser=p)

    p = commands.add_parser("finetune", help="fine-tune a checkpoint, fully or with LoRA")
    p.add_argument("--checkpoint", required=True, help="base checkpoint folder")
    p.add_argument("--data", required=True, help="training examples file")
    p.add_argument("--out", required=True, help="folder for the new checkpoint or adapter")
    add_run_flags(p)
    add_config_flags(p, LoRAConfig)
    add_config_flags(p, TrainConfig)
    p.set_defaults(run=cmd_finetune, configs={"lora_cfg": LoRAConfig, "train_cfg": TrainConfig}, parser=p,
                   lr=1e-3, min_lr=1e-4, weight_decay=0.0, warmup_steps=20)

    p = commands.add_parser("sample", help="sample continuations from a checkpoint or a llama GGUF file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint folder")
    source.add_argument("--gguf", help="a llama GGUF file (e.g. SmolLM2, from `make smol-weights`), "
                                       "dequantized to fp32")
    p.add_argument("--chat", action="store_true", help="--gguf: wrap each prompt in the model's chat template")
    p.add_argument("--system", help="--chat: a system message before each prompt (default: the template's own)")
    p.add_argument("--adapter", help="LoRA adapter folder to apply (fused)")
    p.add_argument("--prompt", action="append", required=True, help="a prompt; repeat for a batch")
    add_config_flags(p, SampleConfig)
    p.set_defaults(run=cmd_sample, configs={"sample_cfg": SampleConfig}, parser=p)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for name, config_cls in args.configs.items():  # every bad value is refused here, before any work
        setattr(args, name, config_from_args(config_cls, args, args.parser))
    return run_main(f"minisub {args.command}", lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
