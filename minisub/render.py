"""What every results page is written with: figures formatted one way, and the one machine line.

Each story renders its own page from its results file (toy_mnist/render.py, experiments/gpt/render.py,
experiments/signals/render.py, experiments/domains/render.py, experiments/smol/render.py, experiments/forks/render.py,
minisub/bench_render.py), and `make report` (experiments/report.py) drives them. A page is prose
around `<!-- render: NAME -->` blocks; a story's `PAGES[page][NAME](results)` writes a block's
inside. What the pages share is here: a signed figure, a p-value, per-base values, the command
with the flags that differ from the defaults, and `machine_renderer`, the `machine` block of
every page: which command, machine, precision and seed made it, and in how long.
"""

from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"  # the committed results files and their pages


def signed(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}"

def p_value(p: float) -> str:
    return f"{p:.2g}"

def per_base(values: list[float], digits: int = 2) -> str:
    return ", ".join(signed(v, digits) for v in values)

def stages_built(results: dict) -> str:
    """'It built N stages (kind seconds, ...)': what a run of the stage cache built, from its timing record."""
    kinds = ", ".join(f"{kind} {seconds:.0f} s" for kind, seconds in results["timing"].items() if kind != "total")
    return f"It built {len(results['built'])} stages" + (f" ({kinds})" if kinds else "")

def machine_line(results: dict, command: str, seconds: float) -> str:
    """Which command, machine (CPU model and ISA, threads), precision and seed made the results."""
    m = results["machine"]
    p = results.get("precision") or {"requested": results["config"]["precision"],  # no timing: as asked
                                     "precision": results["config"]["precision"]}
    isa = ", ".join(m.get("isa", [])) or "ISA not recorded"
    chosen = f"`--precision {p['precision']}`" if p["requested"] == p["precision"] else (
        f"`--precision {p['requested']}`, which chose {p['precision']} (fp32 {p['fp32_gflops']:g}, "
        f"bf16 {p['bf16_gflops']:g} GFLOP/s timed)")
    threads = (f"{m['jobs']} worker processes of one thread each" if "jobs" in m else f"{m['threads']} threads")
    return (f"Made by `{command}` on {m['cpu']} ({isa}), {threads}, torch {m['torch']}, {chosen}, "
            f"seed {results['config']['seed']}: {seconds:.0f} s wall clock.\n")

def make_command(target: str, *configs: tuple[dict, object], flags: tuple[str, ...] = ()) -> str:
    """The make command with the flags whose values differ from the defaults (configs are (values, default
    config)), then `flags`."""
    changed = [f"--{name.replace('_', '-')} " + (" ".join(map(str, value)) if isinstance(value, list) else str(value))
               for config, defaults in configs for name, value in config.items() if value != getattr(defaults, name)]
    changed += flags
    return f"make {target}" + (f' ARGS="{" ".join(changed)}"' if changed else "")


def machine_renderer(target: str, defaults: dict[str, object], note: Callable[[dict], str] = lambda results: ""
                     ) -> Callable[[dict], str]:
    """The `machine` block of `make TARGET`'s page: the command (its flags those of the results' configs that differ
    from `defaults`, {results key: default config}), machine, precision, seed and wall clock, then `note(results)`."""
    def machine(results: dict) -> str:
        command = make_command(target, *((results[key], default) for key, default in defaults.items()))
        seconds = results["timing"]["total"] if "timing" in results else results["seconds"]
        return machine_line(results, command, seconds) + note(results)
    return machine
