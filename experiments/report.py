"""`python -m experiments.report` (`make report`): the numbers in docs/results/*.md, rendered from results files.

Last step after a run: `--take grid runs/grid/results.json` copies the parts of a run's
results.json that its page reports into `docs/results/grid.json` (committed: small, and the
record of what made the page: config, machine, precision, timing), then every page with a
results file is rendered. A page is hand-written prose around blocks

    <!-- render: NAME -->
    ...
    <!-- end -->

whose insides `RENDERERS[page][NAME](results)` writes; nothing else in the page is touched. A
test renders every page and insists that the committed markdown is what comes out, so no
figure in the docs can drift from the run that made it.
"""

import argparse
import re
import sys
from pathlib import Path

from minisub.cli import Parser
from minisub.files import FileError, read_json, write_json

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results"
BLOCK = re.compile(r"(<!-- render: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- end -->)", re.S)


def signed(x: float, digits: int = 2) -> str:
    return f"{x:+.{digits}f}"


def p_value(p: float) -> str:
    return f"{p:.2g}"


def machine_line(results: dict, command: str) -> str:
    m, precision = results["machine"], results["precision"]["precision"]
    isa = ", ".join(m.get("isa", [])) or "ISA not recorded"
    return (f"Made by `{command}` on {m['cpu']} ({isa}), {m['threads']} threads, torch {m['torch']}, "
            f"`--precision {precision}`, seed {results['config']['seed']}: "
            f"{results['timing']['total']:.0f} s wall clock.\n")


# make grid
def grid_matrix(results: dict) -> str:
    names = list(results["matrix"])
    rows = ["| teacher \\ student | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for t in names:
        cells = [f"**{signed(results['matrix'][t][s])}**" if s == t else signed(results["matrix"][t][s])
                 for s in names]
        rows.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def grid_tests(results: dict) -> str:
    t = results["tests"]
    zoo, main, fork = t["every_base"], t, t["fork_sibling"]
    def diagonal(test: dict) -> str:
        d = test["diagonal_minus_off"]
        return (f"{signed(d['mean'], 3)} (95% CI {d['ci95']:.3f}, exact p = {p_value(test['diagonal_vs_off_exact'])}, "
                f"t-test p = {p_value(test['diagonal_vs_off'])}, n = {d['n']}")
    return (f"- Diagonal minus the rest of its column, over the whole zoo: **{diagonal(zoo)} initializations, "
            f"the fork pair counted once**); among the main bases alone {diagonal(main)}).\n"
            f"- Fork pair: cross cells {', '.join(signed(v) for v in t['fork_cells'])}; the sibling's cell minus "
            f"the unrelated teachers' in the same column, averaged over the two columns: "
            f"{signed(fork['sibling_minus_unrelated'], 3)}, exact p = {p_value(fork['p'])} over "
            f"{fork['labels']} teacher labels (the smallest possible: {1 / fork['labels']:.2g}). The cells "
            f"between unrelated bases average {signed(t['unrelated_cells']['mean'], 3)} "
            f"({t['unrelated_cells']['cells']} cells, which share their bases: descriptive only).\n")


def grid_machine(results: dict) -> str:
    return machine_line(results, "make grid")


RENDERERS = {"grid": {"machine": grid_machine, "matrix": grid_matrix, "tests": grid_tests}}
KEPT = {"grid": ("config", "precision", "machine", "timing", "teachers_p_target", "control", "matrix", "tests")}


def render(page: str, text: str, results: dict) -> str:
    """The page's text with every block rendered from `results` (an unknown block name is an error)."""
    def block(m: re.Match) -> str:
        renderer = RENDERERS[page].get(m["name"])
        if renderer is None:
            raise ValueError(f"docs/results/{page}.md has a block {m['name']!r} that nothing renders")
        return m.group(1) + renderer(results) + m.group(4)
    return BLOCK.sub(block, text)


def take(page: str, run_results: Path) -> None:
    """Copy what `page` reports from a run's results.json into docs/results/<page>.json."""
    results = read_json(run_results)
    write_json(DOCS / f"{page}.json", {key: results[key] for key in KEPT[page]})


def main(argv=None) -> int:
    parser = Parser(prog="python -m experiments.report", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--take", nargs=2, metavar=("PAGE", "RESULTS_JSON"),
                        help=f"first copy a run's results into docs/results/PAGE.json (PAGE: {', '.join(RENDERERS)})")
    args = parser.parse_args(argv)
    try:
        if args.take:
            if args.take[0] not in RENDERERS:
                raise ValueError(f"--take: no page {args.take[0]!r} (pages: {', '.join(RENDERERS)})")
            take(args.take[0], Path(args.take[1]))
        for page in RENDERERS:
            source = DOCS / f"{page}.md"
            rendered = render(page, source.read_text(), read_json(DOCS / f"{page}.json"))
            if rendered != source.read_text():
                source.write_text(rendered)
                print(f"rendered {source}")
    except (ValueError, FileError, KeyError) as err:
        print(f"experiments.report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
