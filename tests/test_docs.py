"""The docs name only what the code has: every Python name in backticks in README.md and docs/ exists in the
code (a definition, an attribute, an argument or a string the code uses; a method of one of its classes), or in
the library it is called from."""

import ast
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
