"""The docs name only what the code has: every Python name in backticks in README.md and docs/ exists in the
code (a definition, an attribute, an argument or a string the code uses; a method of one of its classes), or in
the library it is called from."""

import ast
import json
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\(.*\))?")  # `name`, `a.b.c`, `f(x, y)`
FILES = ("py", "md", "json", "png", "txt", "toml", "safetensors", "gguf")  # `results.json` is a file, not a name
COMMANDS = {"torchrun"}  # executables in backticks


def code_names() -> tuple[set[str], dict[str, set[str]]]:
    """Every name the project's code defines, reads, passes or spells as a string; and each class's own members
    (methods, class attributes, attributes set on self), for `Class.member`."""
    names, members = set(), {}
    for path in [p for folder in ("minisub", "experiments", "toy_mnist") for p in (ROOT / folder).rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.arg, ast.keyword)) and node.arg:
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.update((node.asname or node.name).split("."))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                names.add(node.value)
            if isinstance(node, ast.ClassDef) and all(isinstance(b, ast.Name) and b.id == "object" for b in node.bases):
                members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | {
                    t.id for n in node.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)} | {
                    n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                    and n.value.id == "self" and isinstance(n.ctx, ast.Store)}
    return names, members


def in_a_library(parts: list[str]) -> bool:
    """Whether a dotted name resolves in an imported library (`torch.compile`) or is a class of transformers,
    the parity reference (`LlamaForCausalLM`)."""
    try:
        found = importlib.import_module(parts[0])
    except ImportError:
        found = getattr(importlib.import_module("transformers"), parts[0], None)
    if found is None:
        return False
    for part in parts[1:]:
        found = getattr(found, part, None)
        if found is None:
            return False
    return True


def missing(name: str, names: set[str], members: dict[str, set[str]]) -> bool:
    parts = name.split(".")
    if len(parts) == 2 and parts[0] in members:  # a member of a class of ours (no library base): it must have it
        return parts[1] not in members[parts[0]]
    return any(part not in names for part in parts) and not in_a_library(parts)


def backticked_names(text: str) -> list[str]:
    spans = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
    return [span.split("(")[0] for span in spans if PYTHON_NAME.fullmatch(span)
            and span.split("(")[0].rsplit(".", 1)[-1] not in FILES and span not in COMMANDS]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_backticked_python_name_in_the_docs_exists_in_the_code(doc):
    names, members = code_names()
    absent = [name for name in backticked_names(doc.read_text()) if missing(name, names, members)]
    assert absent == [], f"{doc.relative_to(ROOT)} names what the code does not have: {absent}"


def test_the_name_check_finds_a_renamed_method():
    """Bug: README and docs/engine.md named `KVCache.advance` and `keep_rows` after the code had `append` and
    `select`."""
    names, members = code_names()
    text = "`KVCache.prefill` / `KVCache.advance`; `keep_rows` drops rows; `KVCache.append`, `results.json`"
    assert [n for n in backticked_names(text) if missing(n, names, members)] == ["KVCache.advance", "keep_rows"]


# A figure in hand-written prose: a decimal or a percentage, signed or not, not part of a word, version or arXiv id.
FIGURE = re.compile(r"(?:(?<=[\s(\[/])|^)([+\-−]?)(\d+\.\d+%?|\d+%)(?![\w]|\.\d)", re.M)
BLOCK = re.compile(r"<!-- render: [\w./-]+ -->\n.*?<!-- end -->", re.S)
NOT_FROM_RESULTS = {  # figures of the prose that no results file holds, each with why
    "README.md": {"3.10"},  # the Python version
    "gpt.md": {"90%"},  # the power the bases are counted for, a choice
}


def numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        yield float(value)


def results_named(doc: Path) -> list[Path]:
    """The results files a page's prose may quote: its own (docs/results/X.json for X.md) and those of every
    results page it links to."""
    linked = [(doc.parent / target).with_suffix(".json") for target in re.findall(r"\]\(([\w./-]+\.md)\)",
                                                                                  doc.read_text())]
    return [path for path in [doc.with_suffix(".json"), *linked] if path.is_file()]


def prose_figures(text: str) -> list[tuple[str, float, int]]:
    """(as written, value, decimals) of every figure outside the rendered blocks, code spans and link targets;
    a percentage counts as its fraction too."""
    prose = re.sub(r"\]\([^)]*\)", "]", re.sub(r"`[^`\n]*`", "", BLOCK.sub("", text)))
    figures = []
    for sign, body in FIGURE.findall(prose):
        if re.fullmatch(r"\d{4}\.\d{4,5}", body):  # an arXiv id
            continue
        digits = body.rstrip("%").partition(".")[2]
        value = float(body.rstrip("%")) * (-1 if sign in "-−" and sign else 1)
        figures.append((sign + body, value, len(digits)))
    return figures


def quoted(figure: tuple[str, float, int], values: list[float]) -> bool:
    """Whether a prose figure is one of `values` as printed (to its decimals; a percentage also as a fraction;
    unsigned figures match either sign)."""
    written, value, digits = figure
    candidates = [(value, digits)] + ([(value / 100, digits + 2)] if written.endswith("%") else [])
    signed_figure = written[0] in "+-−"
    return any(abs((v if signed_figure else abs(v)) - c) <= 0.5 * 10 ** -d + 1e-9 for c, d in candidates for v in values)


@pytest.mark.parametrize("doc", [ROOT / "README.md", *sorted((ROOT / "docs" / "results").glob("*.md"))],
                         ids=lambda p: p.name)
def test_every_figure_in_the_prose_is_in_a_results_file_the_page_names(doc):
    """A figure written by hand beside the rendered blocks must be a number of the page's own results file or of
    one it links to, as printed: a rounding slip or a figure from an older run fails. (A figure that happens to
    equal another number of the file passes; the blocks, rendered from the file, carry the tables.)"""
    values = [v for path in results_named(doc) for v in numbers(json.loads(path.read_text()))]
    allowed = NOT_FROM_RESULTS.get(doc.name, set())
    stray = [written for written, *rest in prose_figures(doc.read_text())
             if written not in allowed and not quoted((written, *rest), values)]
    assert stray == [], f"{doc.name}: figures in its prose that no results file it names holds: {stray}"


def test_the_figure_check_finds_a_rounding_slip_and_a_figure_from_another_run():
    """Bug: smol.md said +0.37 to +1.01 where its file has 1.005 (+1.00 as printed)."""
    values = [0.3678755760192871, 1.0047588348388672, 0.264]
    figures = prose_figures("rises by +0.37 to +1.01 over the base; keeps 26.4% (see `1.23`, arXiv 2507.14805)")
    assert [written for written, *rest in figures if not quoted((written, *rest), values)] == ["+1.01"]
    assert [f[0] for f in figures] == ["+0.37", "+1.01", "26.4%"]


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_image_a_page_shows_is_committed_beside_it(doc):
    missing = [target for target in IMAGE.findall(doc.read_text()) if not (doc.parent / target).is_file()]
    assert not missing, f"{doc.name} shows {missing}, which are not in the repository"
