"""The command line every language experiment shares: flags, --quick, precision, folders, one-line errors.

`experiment_main` is the whole `main` of `make gpt`, `grid`, `signals` and `domains`: it parses
`ExperimentConfig` (and the experiment's own config, if it has one) from the flags, chooses the
precision, checks the output and cache folders, runs the experiment and reports a bad input
(a `ValueError` or `FileError` from any stage) as one line on stderr, exit code 2.
"""

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from experiments.core.stages import Stages
from experiments.core.zoo import ExperimentConfig
from minisub.cli import Parser, add_config_flags, add_quick_flag, config_from_args, describe
from minisub.files import FileError, check_output_folder
from minisub.log import Progress, machine
from minisub.model import GPT, GPTConfig
from minisub.precision import autocast, choose_precision


def pretraining_step(cfg: ExperimentConfig):
    """step(precision): one pretraining step of a scratch main base at the run's shapes, on random
    tokens packed as the corpus packs (examples of ~40 tokens in rows of block_size)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                          n_head=cfg.n_head, n_embd=cfg.n_embd))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = max(1, cfg.base_batch * 40 // cfg.block_size)
    idx = torch.randint(cfg.vocab_size, (rows, cfg.block_size), generator=torch.Generator().manual_seed(0))
    segments = (torch.arange(cfg.block_size) // 40).expand(rows, -1)

    def step(precision: str) -> None:
        with autocast("cpu", precision):
            loss = model(idx, idx, segments=segments)[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def resolve_precision(cfg: ExperimentConfig, log: Progress) -> tuple[ExperimentConfig, dict]:
    """The config with `auto` replaced by what a timing of a pretraining step chose, and that choice."""
    tokens = cfg.base_batch * cfg.block_size  # the pretraining matmuls dominate the run
    choice = choose_precision(cfg.precision, "cpu", [
        (tokens, cfg.n_embd, 3 * cfg.n_embd), (tokens, cfg.n_embd, 4 * cfg.n_embd),
        (tokens, cfg.n_embd, cfg.vocab_size)], step=pretraining_step(cfg) if cfg.precision == "auto" else None)
    log(choice.describe())
    return replace(cfg, precision=choice.precision), choice.record()


def parse_args(argv, prog: str, doc: str, name: str, extra: type | None = None
               ) -> tuple[ExperimentConfig, object, str, str]:
    """The config, the `extra` config (None without one), output folder and cache folder from the
    command line; bad values exit with one line."""
    parser = Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    configs = (ExperimentConfig,) if extra is None else (ExperimentConfig, extra)
    for config in configs:
        add_config_flags(parser, config)
    parser.add_argument("--out", default=None, help=f"output folder (default: runs/{name}, or runs/{name}-quick "
                                                    "with --quick)")
    parser.add_argument("--cache", default=None, help="stage cache shared by the language experiments (default: "
                                                      "runs/cache, or runs/cache-quick with --quick)")
    quick = add_quick_flag(parser, argv, *configs, what="a tiny budget (under 2 minutes) that checks the stages "
                                                        "connect")
    args = parser.parse_args(argv)
    suffix = "-quick" if quick else ""
    out, cache = args.out or f"runs/{name}{suffix}", args.cache or f"runs/cache{suffix}"
    extra_cfg = config_from_args(extra, args, parser) if extra is not None else None
    return config_from_args(ExperimentConfig, args, parser), extra_cfg, out, cache


EXPLORATORY = ("exploratory: no test here is pre-registered (make gpt's confirmatory families are); "
               "p-values are uncorrected for the many tests")


def experiment_main(argv, prog: str, doc: str, name: str, run: Callable[..., dict],
                    report: Callable[[dict, Path], str], extra: type | None = None,
                    analysis: str = EXPLORATORY) -> int:
    """Parse the flags, then results = run(cfg, extra, out, stages, header) and print report(results, out).

    header: what every results.json opens with (the config, the precision chosen, the machine, and
    `analysis`: whether its tests are pre-registered)."""
    cfg, extra_cfg, out, cache = parse_args(argv, prog, doc, name, extra)
    command = prog.removeprefix("python -m ")
    try:
        out_folder, cache_folder = check_output_folder(out), check_output_folder(cache)
        log = Progress()
        cfg, precision = resolve_precision(cfg, log)
        header = {"config": asdict(cfg)} | ({f"{name}_config": asdict(extra_cfg)} if extra_cfg else {}) | {
            "precision": precision, "machine": machine(), "analysis": analysis}
        results = run(cfg, extra_cfg, out_folder, Stages(cache_folder, log), header)
    except (ValueError, FileError) as err:
        print(f"{command}: error: {describe(err)}", file=sys.stderr)
        return 2
    print(report(results, out_folder))
    return 0
