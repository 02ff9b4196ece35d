"""make report: the committed results pages are exactly what their results files render, and a render
writes the numbers it is given and nothing else."""

import json

import pytest

from experiments import report


@pytest.mark.parametrize("page", sorted(report.RENDERERS))
def test_every_committed_page_is_its_render(page):
    source = report.DOCS / f"{page}.md"
    results = json.loads((report.DOCS / f"{page}.json").read_text())
    assert report.render(page, source.read_text(), results) == source.read_text(), \
        f"docs/results/{page}.md differs from its results file: run `make report`"


def grid_results(cell: float) -> dict:
    names = ["main-0", "main-1", "fork-a", "fork-b", "other-0"]
    matrix = {t: {s: 1.0 if t == s else 0.0 for s in names} for t in names}
    matrix["fork-a"]["fork-b"] = cell
    diagonal = {"diagonal_minus_off": {"mean": 0.9, "ci95": 0.1, "n": 2}, "diagonal_vs_off": 0.01,
                "diagonal_vs_off_exact": 0.25}
    return {"matrix": matrix, "machine": {"cpu": "Some CPU", "isa": ["avx2"], "threads": 2, "torch": "2.13.0"},
            "precision": {"precision": "fp32"}, "config": {"seed": 0}, "timing": {"total": 12.3},
            "tests": {**diagonal, "every_base": {**diagonal, "diagonal_minus_off": {"mean": 0.8, "ci95": 0.2, "n": 4}},
                      "fork_cells": [cell, 0.0], "unrelated_cells": {"mean": 0.0, "cells": 16},
                      "fork_sibling": {"sibling_minus_unrelated": 0.4, "p": 0.25, "labels": 4}}}


def test_a_render_writes_the_numbers_inside_its_blocks_and_leaves_the_prose():
    text = "Prose 0.123 stays.\n<!-- render: matrix -->\nold\n<!-- end -->\nMore prose.\n"
    first = report.render("grid", text, grid_results(0.5))
    assert first.startswith("Prose 0.123 stays.\n<!-- render: matrix -->\n| teacher \\ student |")
    assert "| fork-a | +0.00 | +0.00 | **+1.00** | +0.50 | +0.00 |" in first and first.endswith("<!-- end -->\nMore prose.\n")
    assert report.render("grid", first, grid_results(0.5)) == first  # rendering twice changes nothing
    assert "+0.70" in report.render("grid", first, grid_results(0.7))  # a changed result changes the page
    machine = report.render("grid", "<!-- render: machine -->\n<!-- end -->\n", grid_results(0.5))
    assert "Some CPU (avx2), 2 threads, torch 2.13.0, `--precision fp32`, seed 0: 12 s" in machine
    tests = report.render("grid", "<!-- render: tests -->\n<!-- end -->\n", grid_results(0.5))
    assert "**+0.800 (95% CI 0.200, exact p = 0.25, t-test p = 0.01, n = 4 initializations" in tests
    assert "exact p = 0.25 over 4" in tests


def test_a_block_nothing_renders_is_an_error():
    with pytest.raises(ValueError, match="'typo' that nothing renders"):
        report.render("grid", "<!-- render: typo -->\n<!-- end -->\n", grid_results(0.5))


def test_take_keeps_what_the_page_reports_and_a_bad_page_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "DOCS", tmp_path)
    run = tmp_path / "results.json"
    run.write_text(json.dumps(grid_results(0.5) | {"teachers_p_target": {}, "control": {}, "bases": ["big"]}))
    (tmp_path / "grid.md").write_text("<!-- render: matrix -->\n<!-- end -->\n")
    assert report.main(["--take", "grid", str(run)]) == 0
    assert "bases" not in json.loads((tmp_path / "grid.json").read_text())
    assert "**+1.00**" in (tmp_path / "grid.md").read_text()
    assert report.main(["--take", "nope", str(run)]) == 2
    assert capsys.readouterr().err.strip().endswith("no page 'nope' (pages: grid)")
