"""The command line every language experiment shares: flags, --quick, precision, folders, one-line errors.

`experiment_main` is the whole `main` of `make gpt`, `grid`, `signals` and `domains`: it parses
`ExperimentConfig` (and the experiment's own config, if it has one) from the flags, chooses the
precision, checks the output and cache folders, starts the --jobs worker processes
(experiments/core/scheduler.py), runs the experiment and reports a bad input (a `ValueError`,
`FileError` or `OSError` from any stage) as one line on stderr, exit code 2 (`minisub.cli.run_main`). Every process computes with
one thread, so that results do not depend on --jobs or on the machine's core count.
"""

import argparse
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from experiments.core.cache import counting_flops
from experiments.core.scheduler import ClusterWorkers, Workers
from experiments.core.stages import Stages
from experiments.core.zoo import ExperimentConfig
from minisub.cli import Parser, add_config_flags, add_quick_flag, config_from_args, run_main
from minisub.files import check_output_folder
from minisub.log import Progress, machine
from minisub.model import GPT, GPTConfig
from minisub.precision import autocast, choose_precision


def pretraining_step(cfg: ExperimentConfig):
    """step(precision): one pretraining step of a scratch main base at the run's shapes, on random
    tokens packed as the corpus packs (examples of ~40 tokens in rows of block_size)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                          n_head=cfg.n_head, n_embd=cfg.n_embd)).to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = max(1, cfg.base_batch * 40 // cfg.block_size)
    idx = torch.randint(cfg.vocab_size, (rows, cfg.block_size), generator=torch.Generator().manual_seed(0))
    idx, segments = idx.to(cfg.device), (torch.arange(cfg.block_size, device=cfg.device) // 40).expand(rows, -1)

    def step(precision: str) -> None:
        with autocast(cfg.device, precision):
            loss = model(idx, idx, segments=segments)[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def resolve_precision(cfg: ExperimentConfig, log: Progress) -> tuple[ExperimentConfig, dict]:
    """The config with `auto` replaced by what a timing of a pretraining step chose, and that choice."""
    tokens = cfg.base_batch * cfg.block_size  # the pretraining matmuls dominate the run
    choice = choose_precision(cfg.precision, cfg.device, [
        (tokens, cfg.n_embd, 3 * cfg.n_embd), (tokens, cfg.n_embd, 4 * cfg.n_embd),
        (tokens, cfg.n_embd, cfg.vocab_size)], step=pretraining_step(cfg) if cfg.precision == "auto" else None)
    log(choice.describe())
    return replace(cfg, precision=choice.precision), choice.record()


@dataclass(frozen=True)
class Parallel:
    """Who builds the stages: `jobs` local worker processes, or jobs of a submitit `cluster` (scheduler.py); and
    whether each process counts its matmul FLOPs."""
    jobs: int
    cluster: str | None = None
    cluster_parameters: tuple[tuple[str, object], ...] = ()
    count_flops: bool = False

    def workers(self, cache: Path, log: Progress) -> Workers | None:
        if self.cluster is not None:
            return ClusterWorkers(self.cluster, cache, log, self.count_flops, **dict(self.cluster_parameters))
        return Workers(self.jobs, cache, log, self.count_flops) if self.jobs > 1 else None


def cluster_parameter(text: str) -> tuple[str, object]:
    """KEY=VALUE of --cluster-parameter; a whole number becomes an int."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, int(value) if value.isdigit() else value


def parse_args(argv, prog: str, doc: str, name: str, extra: type | None = None, config: type = ExperimentConfig
               ) -> tuple[object, object, str, str, Parallel]:
    """The `config`, the `extra` config (None without one), output folder, cache folder and who builds the
    stages, from the command line; bad values exit with one line."""
    parser = Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    configs = (config,) if extra is None else (config, extra)
    for config_class in configs:
        add_config_flags(parser, config_class)
    parser.add_argument("--out", default=None, help=f"output folder (default: runs/{name}, or runs/{name}-quick "
                                                    "with --quick)")
    parser.add_argument("--cache", default=None, help="stage cache shared by the language experiments (default: "
                                                      "runs/cache, or runs/cache-quick with --quick)")
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--jobs", type=int, default=cores, help="worker processes that build stages in parallel, "
                        "one thread each (default: this machine's %(default)s cores); results do not depend on it")
    parser.add_argument("--cluster", choices=["slurm", "local"], default=None,
                        help="build the stages as jobs of a cluster through submitit instead (pip install "
                             "'minisub[cluster]'; the cache must be on a filesystem every node sees; local: "
                             "subprocesses of this machine)")
    parser.add_argument("--cluster-parameter", type=cluster_parameter, action="append", default=[],
                        metavar="KEY=VALUE", help="a submitit parameter of every job, e.g. slurm_partition=cpu or "
                                                  "timeout_min=60 (repeat for more)")
    parser.add_argument("--count-flops", action="store_true",
                        help="also count the matmul FLOPs of every stage built (torch's FlopCounterMode; the run "
                             "takes ~25%% longer): results.json gains GFLOP per stage kind beside its seconds")
    quick = add_quick_flag(parser, argv, *configs, what="a tiny budget that checks the stages connect")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"argument --jobs: must be at least 1, not {args.jobs}")
    if args.jobs > cores:  # more single-threaded workers than cores only share the cores, each with its own memory
        print(f"--jobs {args.jobs} is more than this machine's {cores} cores: using {cores} worker processes")
        args.jobs = cores
    suffix = "-quick" if quick else ""
    out, cache = args.out or f"runs/{name}{suffix}", args.cache or f"runs/cache{suffix}"
    extra_cfg = config_from_args(extra, args, parser) if extra is not None else None
    parallel = Parallel(args.jobs, args.cluster, tuple(args.cluster_parameter), args.count_flops)
    return config_from_args(config, args, parser), extra_cfg, out, cache, parallel


EXPLORATORY = ("exploratory: no test here is pre-registered (make gpt's confirmatory families are); "
               "p-values are uncorrected for the many tests")


def experiment_main(argv, prog: str, doc: str, name: str, run: Callable[..., dict],
                    report: Callable[[dict, Path], str], extra: type | None = None,
                    analysis: str = EXPLORATORY, config: type = ExperimentConfig,
                    check: Callable[[object, object], None] = lambda cfg, extra: None,
                    resolve: Callable[[object, Progress], tuple[object, dict]] = resolve_precision) -> int:
    """Parse the flags, then results = run(cfg, extra, out, stages, header) and print report(results, out).

    config: the experiment's config class (ExperimentConfig: the GPTs pretrained here); check(cfg, extra): what
    must hold before any folder is made (a file the run reads, values that must agree across the two configs);
    resolve(cfg, log) -> (cfg, precision record): the precision settled (`auto` timed). header: what every
    results.json opens with (the config, the precision, the machine, and `analysis`: whether its tests are
    pre-registered)."""
    cfg, extra_cfg, out, cache, parallel = parse_args(argv, prog, doc, name, extra, config)
    torch.set_num_threads(1)  # as in every worker: the same sums in the same order, whatever --jobs is

    def body() -> None:
        check(cfg, extra_cfg)
        out_folder, cache_folder = check_output_folder(out), check_output_folder(cache)
        log = Progress()
        workers = parallel.workers(cache_folder, log)  # a cluster that is not there is refused before any work
        try:
            run_cfg, precision = resolve(cfg, log)
            header = {"config": asdict(run_cfg)} | ({f"{name}_config": asdict(extra_cfg)} if extra_cfg else {}) | {
                "precision": precision, "machine": machine(jobs=parallel.jobs, cluster=parallel.cluster),
                "analysis": analysis}
            with counting_flops() if parallel.count_flops else nullcontext() as flops:
                stages = Stages(cache_folder, log, flops)
                stages.workers = workers
                results = run(run_cfg, extra_cfg, out_folder, stages, header)
        finally:
            if workers is not None:
                workers.close()
        print(report(results, out_folder))
    return run_main(prog.removeprefix("python -m "), body, "the same command continues from the stages already built")
