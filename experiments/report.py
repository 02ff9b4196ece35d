"""`python -m experiments.report` (`make report`): the numbers in docs/results/*.md, rendered from results files.

Last step after a run: `--take grid runs/grid/results.json` copies the parts of a run's
results.json that its page reports into `docs/results/grid.json` (committed: small, and the
record of what made the page: config, machine, precision, timing), then every page with a
results file is rendered (README.md's headlines too, from make gpt's pages). A page is hand-written
prose around blocks

    <!-- render: NAME -->
    ...
    <!-- end -->

whose insides the page's own story writes (`PAGES[page][NAME](results)` in toy_mnist/render.py,
experiments/gpt/render.py, experiments/signals/render.py, experiments/domains/render.py,
experiments/smol/render.py, experiments/forks/render.py, minisub/bench_render.py); nothing else in
the page is touched. In a file that several results render into (docs/benchmark.md), a block names
its page: `PAGE/NAME`. A test renders every page and insists that the committed markdown is what
comes out, so no figure in the docs can drift from the run that made it. Before rendering, every derived figure of
a results file (mean, CI, p-value, Holm adjustment) is recomputed from the per-replicate values
it holds (experiments/recheck.py), and a file that disagrees, or that is not its page's kind, is
refused, naming it, before anything is written.
"""

import argparse
import re
import shutil
import sys
from pathlib import Path

from experiments.domains import render as domains
from experiments.forks import render as forks
from experiments.gpt import render as gpt
from experiments.recheck import recheck
from experiments.signals import render as signals
from experiments.smol import render as smol
from minisub import bench_render as bench
from minisub.cli import Parser, run_main
from minisub.files import FileError, read_json, write_json
from minisub.render import RESULTS
from toy_mnist import render as toy

ROOT = Path(__file__).resolve().parents[1]
DOCS = RESULTS
BLOCK = re.compile(r"(<!-- render: (?P<name>[\w./-]+) -->\n)(?P<body>.*?)(<!-- end -->)", re.S)
STORIES = (toy, gpt, signals, domains, smol, forks, bench)  # each renders its own pages
RENDERERS = {page: blocks for story in STORIES for page, blocks in story.PAGES.items()}
KEPT = {page: kept for story in STORIES for page, kept in story.KEPT.items()}


README_PAGES = ("gpt", "gpt-seed2")  # README.md's headline: v2's confirmation, and v1 on the default seed


def sources(page: str) -> list[Path]:
    """The markdown files rendered from docs/results/<page>.json: its page, and README.md for make gpt's headlines;
    make bench and make gpt's FLOP count have no page of their own, but blocks in docs/benchmark.md."""
    if page in ("bench", "gpt-flops"):
        return [ROOT / "docs" / "benchmark.md"]
    return [DOCS / f"{page}.md"] + ([ROOT / "README.md"] if page in README_PAGES else [])


def render(page: str, text: str, results: dict) -> str:
    """The page's text with every block rendered from `results` (an unknown block name is an error)."""
    def block(m: re.Match) -> str:
        owner, _, name = m["name"].rpartition("/")
        if owner and owner != page:  # a block of another page whose results render into the same file
            return m.group(0)
        renderer = RENDERERS[page].get(name)
        if renderer is None:
            raise ValueError(f"a page of {page} has a block {m['name']!r} that nothing renders")
        return m.group(1) + renderer(results) + m.group(4)
    return BLOCK.sub(block, text)


BULKY = ("rise", "curve", "dlogp_by_option", "p_before_by_option", "p_after_by_option", "histograms", "loss_curve")
# a student's record on each question set beyond the two that v1's families use (the ladder holds their figures)
BULKY_FIELDS = re.compile(r"(rank|mass|sampled)_after_\w+|p_after_by_option_\w+"
                          r"|(p_before|p_after|dlogp|dpref)_(own|held_out_stems|after_numbers)")


def slim(value):
    """`value` without the bulky per-step, per-option and per-question-set records that no page reports
    (results.json keeps them)."""
    if isinstance(value, dict):
        return {k: slim(v) for k, v in value.items() if k not in BULKY and not BULKY_FIELDS.fullmatch(k)}
    if isinstance(value, list):
        return [slim(v) for v in value]
    return value


def rendered_pages(page: str, results: dict, source: str, texts: dict[Path, str]) -> None:
    """Render `page`'s markdown files from `results` into `texts` ({file: text}, updated in place), after checking
    that every derived figure in `results` is what its per-replicate values give (experiments/recheck.py). A file
    that is not this page's kind fails in its renderers: one FileError naming the file."""
    recheck(results, source)
    for markdown in sources(page):
        try:
            texts[markdown] = render(page, texts.get(markdown, markdown.read_text()), results)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as err:
            raise FileError(f"{source} does not hold the results of the {page} page (rendering it fails: "
                            f"{type(err).__name__} {err})") from None


FIGURE = re.compile(r"!\[[^\]]*\]\(figures/(?P<page>[\w-]+)/(?P<name>[\w.-]+\.png)\)")


def taken_figures(page: str, run: Path) -> dict[Path, Path]:
    """{run's plot: docs/results/figures/<page>/<plot>} for every figure `page`'s markdown shows; a figure that the
    run did not make is an error (before anything is written)."""
    figures = {}
    for markdown in sources(page):
        for m in FIGURE.finditer(markdown.read_text()):
            if m["page"] != page:
                continue
            if not (run / m["name"]).is_file():
                raise FileError(f"{run} has no {m['name']}, which the {page} page shows")
            figures[run / m["name"]] = DOCS / "figures" / page / m["name"]
    return figures


def report(take: tuple[str, str] | None = None) -> list[Path]:
    """Render every page whose results file exists, `take` = (page, run's results.json) first copied in; returns the
    files that changed. Everything is read, checked and rendered before anything is written, so a bad file
    changes nothing."""
    files = {page: read_json(DOCS / f"{page}.json") for page in RENDERERS if (DOCS / f"{page}.json").exists()}
    sources_of = {page: str(DOCS / f"{page}.json") for page in files}
    if take is not None:
        page, run_results = take
        if page not in RENDERERS:
            raise ValueError(f"--take: no page {page!r} (pages: {', '.join(RENDERERS)})")
        results = read_json(Path(run_results))
        files[page], sources_of[page] = {key: slim(results[key]) for key in KEPT[page] if key in results}, run_results
    texts: dict[Path, str] = {}
    for page, results in files.items():
        rendered_pages(page, results, sources_of[page], texts)
    figures = taken_figures(take[0], Path(take[1]).parent) if take is not None else {}
    if take is not None:
        write_json(DOCS / f"{take[0]}.json", files[take[0]])
    for source, target in figures.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    changed = [path for path, text in texts.items() if text != path.read_text()]
    for path in changed:
        path.write_text(texts[path])
    return changed


def main(argv=None) -> int:
    parser = Parser(prog="python -m experiments.report", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--take", nargs=2, metavar=("PAGE", "RESULTS_JSON"),
                        help=f"first copy a run's results into docs/results/PAGE.json (PAGE: {', '.join(RENDERERS)})")
    args = parser.parse_args(argv)

    def body() -> None:
        for path in report(tuple(args.take) if args.take else None):
            print(f"rendered {path}")
    return run_main("experiments.report", body)


if __name__ == "__main__":
    sys.exit(main())
