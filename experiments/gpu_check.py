"""`python -m experiments.gpu_check` (`make test-gpu`): every experiment's --quick on a GPU, checked against the CPU.

One prepared command for a machine with CUDA. For each experiment it runs --quick three times, as
subprocesses into one output folder: on the CPU in fp32 (the reference), on the device in fp32 and
on the device in bf16. Then
1. the device's fp32 results must match the CPU's: every number of results.json outside its
   bookkeeping (config, machine, precision, timing) within `--atol` + `--rtol` x |CPU value|. The
   two compute the same arithmetic to rounding; a sampled token can still go another way where two
   of its candidates' probabilities are within rounding of a draw, and training carries that on,
   so the tolerance is loose and the largest deviations are printed for a look;
2. the bf16 run must finish with finite results (its numbers differ by design);
3. one stage kind of make gpt, pretraining a main base, is timed on both: steps per second of a
   pretraining step at make gpt's default shapes, the CPU at all its cores.
Without CUDA it says so in one line and exits 0. Exit 1 when a run fails or a check misses.
"""

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

from experiments.core.cli import pretraining_step
from experiments.core.zoo import ExperimentConfig
from minisub.cli import Parser, run_main
from minisub.files import check_output_folder, read_json
from minisub.log import Progress
from minisub.weights import CACHE, MEMBER

# experiment -> (module, its flags for a quick run); the language experiments share a cache per folder
EXPERIMENTS = {"toy": ("toy_mnist", ["--quick"]), "toy-sweeps": ("toy_mnist.sweep", ["--quick"]),
               "gpt": ("experiments.gpt", ["--quick"]), "grid": ("experiments.gpt.grid", ["--quick"]),
               "lora-rank": ("experiments.gpt.lora_rank", ["--quick"]), "signals": ("experiments.signals", ["--quick"]),
               "domains": ("experiments.domains", ["--quick"]), "smol": ("experiments.smol", ["--quick"])}
LANGUAGE = ("gpt", "grid", "lora-rank", "signals", "domains")
BOOKKEEPING = {"config", "precision", "machine", "timing", "built", "seconds", "speed", "gflop", "analysis",
               "preregistered"}  # what differs between devices by design, or is not a result


def numbers(value, path: str = "results"):
    """(path, number) of every number in a results file, its bookkeeping and its `*_config` records left out."""
    if isinstance(value, dict):
        for key, item in value.items():
            if path == "results" and (key in BOOKKEEPING or key.endswith("_config")):
                continue
            yield from numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from numbers(item, f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, float(value)


def deviations(reference: dict, other: dict, atol: float, rtol: float) -> tuple[list[tuple[str, float, float]], int]:
    """The numbers of `other` beyond atol + rtol |reference| (or missing, or NaN in one only), as (path, reference,
    other), largest first; and how many numbers were compared."""
    ours, theirs = dict(numbers(reference)), dict(numbers(other))
    misses = []
    for path, a in ours.items():
        b = theirs.get(path, math.nan)
        if math.isnan(a) and math.isnan(b):
            continue
        if not (abs(a - b) <= atol + rtol * abs(a)):  # NaN in one of them counts as a miss
            misses.append((path, a, b))
    misses.sort(key=lambda m: -abs(m[1] - m[2]) if not math.isnan(m[2]) else -math.inf)
    return misses, len(ours)


def run_quick(name: str, device: str, precision: str, folder: Path, log: Progress) -> dict | None:
    """One experiment's --quick on `device` in `precision`; its results.json, or None (with the error's last lines)."""
    module, flags = EXPERIMENTS[name]
    out = folder / f"{name}-{device.replace(':', '')}-{precision}"
    argv = [sys.executable, "-m", module, *flags, "--device", device, "--precision", precision, "--out", str(out)]
    if name in LANGUAGE:
        argv += ["--cache", str(folder / f"cache-{device.replace(':', '')}")]
    if name == "toy":
        argv += ["--force"]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        log(f"{name} on {device} {precision}: FAILED (exit {done.returncode}): "
            + " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:]))
        return None
    log(f"{name} on {device} {precision}: done in {time.perf_counter() - started:.0f} s")
    return read_json(out / "results.json")


def steps_per_second(device: str, precision: str, steps: int) -> float:
    """Pretraining steps per second of a main base at make gpt's default shapes on `device`."""
    step = pretraining_step(ExperimentConfig(device=device))
    step(precision)  # warm-up: allocation, kernels chosen
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step(precision)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - started)


def check(names: list[str], device: str, folder: Path, atol: float, rtol: float, steps: int, log: Progress) -> bool:
    """Every check of the module docstring on `device`; True when all pass."""
    passed = True
    for name in names:
        if name == "smol" and not (CACHE / Path(MEMBER).name).is_file():
            log("smol: skipped, its weights are absent (`make smol-weights` fetches them)")
            continue
        cpu = run_quick(name, "cpu", "fp32", folder, log)
        same = run_quick(name, device, "fp32", folder, log)
        half = run_quick(name, device, "bf16", folder, log)
        if cpu is None or same is None or half is None:
            passed = False
            continue
        misses, compared = deviations(cpu, same, atol, rtol)
        largest = ", ".join(f"{path} {a:.4g} vs {b:.4g}" for path, a, b in misses[:5])
        log(f"{name}: fp32 on {device} against the CPU: {compared - len(misses)} of {compared} numbers within "
            f"{atol:g} + {rtol:g} x |CPU|" + (f"; beyond: {largest}" if misses else ""))
        not_finite = [path for path, value in numbers(half) if math.isnan(value) or math.isinf(value)]
        bf16_nans_in_cpu = {path for path, value in numbers(cpu) if math.isnan(value)}
        not_finite = [path for path in not_finite if path not in bf16_nans_in_cpu]  # NaN by design (n = 1 CIs)
        if not_finite:
            log(f"{name}: bf16 on {device} gave values that are not finite: {', '.join(not_finite[:3])}")
        passed &= not misses and not not_finite
    rates = {(d, p): steps_per_second(d, p, steps) for d, p in (("cpu", "fp32"), (device, "fp32"), (device, "bf16"))}
    log(f"make gpt's pretraining step at its default shapes: CPU fp32 {rates['cpu', 'fp32']:.1f} steps/s "
        f"({torch.get_num_threads()} threads); {device} fp32 {rates[device, 'fp32']:.1f} steps/s "
        f"({rates[device, 'fp32'] / rates['cpu', 'fp32']:.1f}x); {device} bf16 {rates[device, 'bf16']:.1f} steps/s")
    return passed


def main(argv=None) -> int:
    parser = Parser(prog="python -m experiments.gpu_check", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="*", choices=list(EXPERIMENTS), default=list(EXPERIMENTS),
                        metavar="NAME", help=f"which to check (default: all of {', '.join(EXPERIMENTS)})")
    parser.add_argument("--device", default="cuda", help="the device under test (default: %(default)s)")
    parser.add_argument("--out", default="runs/test-gpu", help="output folder of every run (default: %(default)s)")
    parser.add_argument("--atol", type=float, default=0.05, help="absolute tolerance of fp32 on the device against "
                                                                 "the CPU (default: %(default)s)")
    parser.add_argument("--rtol", type=float, default=0.05, help="relative tolerance (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed pretraining steps per device (default: "
                                                              "%(default)s)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("make test-gpu: this machine has no CUDA device; nothing to check")
        return 0
    if args.steps < 1 or args.atol < 0 or args.rtol < 0:
        parser.error("--steps must be at least 1, --atol and --rtol at least 0")

    def body() -> int:
        log = Progress()
        if args.device.startswith("cuda"):
            log(f"device: {torch.cuda.get_device_name(args.device)}")
        passed = check(args.experiments, args.device, check_output_folder(args.out), args.atol, args.rtol, args.steps,
                       log)
        print("make test-gpu: " + ("every check passed" if passed else "a check missed; see the lines above"))
        return 0 if passed else 1
    return run_main("experiments.gpu_check", body)


if __name__ == "__main__":
    sys.exit(main())
