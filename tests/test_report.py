"""make report: the committed results pages are exactly what their results files render, and a render
writes the numbers it is given and nothing else."""

import json
import random
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import report
from experiments.gpt import render as gpt_render
from experiments.core.analysis import arm_tests
from experiments.gpt.preregistration import family, paired_test
from experiments.recheck import recheck
from minisub import bench_render
from minisub.bench import BenchConfig
from minisub.files import FileError
from minisub.render import make_command
from minisub.stats import summary
from toy_mnist import render as toy_render


COMMITTED = sorted(p for p in report.RENDERERS if (report.DOCS / f"{p}.json").exists())
STATISTICS = {"toy", "toy-sweeps", "toy-defences", "gpt", "gpt-seed1", "gpt-seed2", "grid", "lora-rank", "signals",
              "domains", "smol", "forks"}


@pytest.mark.parametrize("page", COMMITTED)
def test_every_committed_page_is_its_render_and_its_statistics_are_its_values(page):
    results = json.loads((report.DOCS / f"{page}.json").read_text())
    for source in report.sources(page):
        assert report.render(page, source.read_text(), results) == source.read_text(), \
            f"{source} differs from docs/results/{page}.json: run `make report`"
    assert (recheck(results, page) > 0) == (page in STATISTICS)  # every page with statistics has them recomputed


def committed_copy(tmp_path, monkeypatch, pages: tuple[str, ...]) -> dict:
    """The committed results files and markdown of `pages` (README.md too) under tmp_path, where report writes."""
    (tmp_path / "docs" / "results").mkdir(parents=True)
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "DOCS", tmp_path / "docs" / "results")
    for page in pages:
        for name in (f"{page}.json", f"{page}.md"):
            (report.DOCS / name).write_bytes((REAL_DOCS / name).read_bytes())
    (tmp_path / "README.md").write_bytes((REAL_DOCS.parents[1] / "README.md").read_bytes())
    return {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


REAL_DOCS = report.DOCS


@pytest.mark.parametrize("page, other", [("grid", "toy"), ("gpt", "toy"), ("gpt", "grid"), ("toy", "signals")])
def test_take_of_another_experiments_results_is_one_line_and_changes_nothing(tmp_path, monkeypatch, capsys, page,
                                                                             other):
    """Bug: `--take grid R` with another experiment's R overwrote grid.json, then failed with `error: 'matrix'`
    (and every later `make report` failed); `--take gpt` with a toy results file emptied gpt.json."""
    before = committed_copy(tmp_path, monkeypatch, (page,))
    assert report.main(["--take", page, str(REAL_DOCS / f"{other}.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"does not hold the results of the {page} page" in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert report.main([]) == 0  # make report still works


def test_a_hand_edited_p_value_is_refused_by_name_and_nothing_is_rendered(tmp_path, monkeypatch, capsys):
    """Bug: one p_exact of gpt.json changed by hand re-rendered README and gpt.md with exact p 0.00079 beside Holm
    0.83 and "no", exit 0: the render trusted every derived number in the file."""
    committed_copy(tmp_path, monkeypatch, ("gpt",))
    results = json.loads((report.DOCS / "gpt.json").read_text())
    true_p = results["confirmatory"]["primary"]["H1"]["p_exact"]
    results["confirmatory"]["primary"]["H1"]["p_exact"] = 0.00079
    (report.DOCS / "gpt.json").write_text(json.dumps(results))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.md")}
    assert report.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert ("results.confirmatory.primary.H1.p_exact is 0.00079, but the per-replicate values in the file give "
            f"{true_p!r}") in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.md")} == before


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 12), seed=st.integers(0, 2**32 - 1), figure=st.sampled_from(
    ["mean", "ci95", "p_exact", "p_t", "p_holm", "rejects", "arm_mean", "arm_test"]))
def test_recheck_finds_any_derived_figure_that_its_values_do_not_give(n, seed, figure):
    """A family of two pre-registered tests and the arms they come from, made as make gpt makes them: rechecked
    whole, and refused once any one derived figure is changed."""
    rng = random.Random(seed)
    arms = {arm: {"dlogp": [rng.gauss(0.1 * k, 1) for _ in range(n)]} for k, arm in enumerate(
        ("student", "control", "cross_init"))}
    for arm in arms.values():
        arm.update(summary(arm["dlogp"]))
    primary = family({"H1": paired_test(arms["student"]["dlogp"], arms["control"]["dlogp"]),
                      "H2": paired_test(arms["student"]["dlogp"], arms["cross_init"]["dlogp"])})
    results = {"preregistered": {"alpha": 0.01}, "confirmatory": {"primary": primary},
               "arms": {"hard_full": arms}, "tests": {"hard_full": arm_tests(arms)}}
    # each arm's mean, CI and n; each test's difference (3) and p's (2); Holm and rejection of each; the arm tests
    assert recheck(results, "r") == 3 * 3 + 2 * (3 + 2) + 2 * 2 + 4
    h1 = primary["H1"]
    target, key = {"mean": (h1["difference"], "mean"), "ci95": (h1["difference"], "ci95"), "arm_mean":
                   (arms["control"], "mean"), "arm_test": (results["tests"]["hard_full"], "control_vs_zero")}.get(
        figure, (h1, figure))
    target[key] = (not target[key]) if isinstance(target[key], bool) else target[key] * 1.01 + 1e-4
    with pytest.raises(FileError, match=f"{key} is .*, but the per-replicate values in the file give"):
        recheck(results, "r")


def grid_results(cell: float) -> dict:
    names = ["main-0", "main-1", "fork-a", "fork-b", "other-0"]
    matrix = {t: {s: 1.0 if t == s else 0.0 for s in names} for t in names}
    matrix["fork-a"]["fork-b"] = cell
    diagonal = {"diagonal_minus_off": {"mean": 0.9, "ci95": 0.1, "n": 2}, "diagonal_vs_off": 0.01,
                "diagonal_vs_off_exact": 0.25}
    return {"matrix": matrix, "machine": {"cpu": "Some CPU", "isa": ["avx2"], "threads": 2, "torch": "2.13.0"},
            "precision": {"requested": "fp32", "precision": "fp32"}, "config": {"seed": 0}, "timing": {"total": 12.3},
            "built": ["student-x"],
            "tests": {**diagonal, "every_base": {**diagonal, "diagonal_minus_off": {"mean": 0.8, "ci95": 0.2, "n": 4}},
                      "fork_cells": [cell, 0.0], "unrelated_cells": {"mean": 0.0, "cells": 16},
                      "fork_sibling": {"sibling_minus_unrelated": 0.4, "p": 0.25, "labels": 4}}}


def test_a_render_writes_the_numbers_inside_its_blocks_and_leaves_the_prose():
    text = "Prose 0.123 stays.\n<!-- render: matrix -->\nold\n<!-- end -->\nMore prose.\n"
    first = report.render("grid", text, grid_results(0.5))
    assert first.startswith("Prose 0.123 stays.\n<!-- render: matrix -->\n| teacher \\ student |")
    assert "| fork-a | +0.00 | +0.00 | **+1.00** | +0.50 | +0.00 |" in first
    assert first.endswith("<!-- end -->\nMore prose.\n")
    assert report.render("grid", first, grid_results(0.5)) == first  # rendering twice changes nothing
    assert "+0.70" in report.render("grid", first, grid_results(0.7))  # a changed result changes the page
    machine = report.render("grid", "<!-- render: machine -->\n<!-- end -->\n", grid_results(0.5))
    assert "Some CPU (avx2), 2 threads, torch 2.13.0, `--precision fp32`, seed 0: 12 s" in machine
    tests = report.render("grid", "<!-- render: tests -->\n<!-- end -->\n", grid_results(0.5))
    assert "**+0.800 (95% CI 0.200, exact p = 0.25, t-test p = 0.01, n = 4 initializations" in tests
    assert "exact p = 0.25 over 4" in tests


def test_the_command_names_every_flag_that_differs_from_the_defaults():
    from experiments.core.zoo import ExperimentConfig
    config = {"seed": 0, "bases": 7, "variants": ["hard_full"], "full_lr": 3e-4}
    assert make_command("gpt", (config, ExperimentConfig())) == 'make gpt ARGS="--bases 7 --variants hard_full"'
    assert make_command("grid", ({"seed": 0}, ExperimentConfig())) == "make grid"


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
    pages = ("toy, toy-sweeps, toy-defences, gpt, gpt-seed1, gpt-seed2, grid, lora-rank, gpt-flops, signals, domains, "
             "smol, forks, bench")
    assert capsys.readouterr().err.strip().endswith(f"no page 'nope' (pages: {pages})")


def test_take_copies_the_figures_the_page_shows_and_refuses_a_run_without_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "DOCS", tmp_path / "docs")
    report.DOCS.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(grid_results(0.5) | {"teachers_p_target": {}, "control": {}}))
    (report.DOCS / "grid.md").write_text("<!-- render: matrix -->\n<!-- end -->\n![the grid](figures/grid/grid.png)\n"
                                         "![another page's](figures/gpt/gpt_dose.png)\n")
    assert report.main(["--take", "grid", str(run / "results.json")]) == 2  # the run made no grid.png
    assert "has no grid.png, which the grid page shows" in capsys.readouterr().err
    assert sorted(p.name for p in report.DOCS.rglob("*")) == ["grid.md"]  # nothing written
    (run / "grid.png").write_bytes(b"\x89PNG plot")
    assert report.main(["--take", "grid", str(run / "results.json")]) == 0
    assert (report.DOCS / "figures" / "grid" / "grid.png").read_bytes() == b"\x89PNG plot"
    assert not (report.DOCS / "figures" / "gpt").exists()


def test_make_gpts_flop_count_sets_each_stage_kinds_work_against_the_timed_runs_seconds(tmp_path, monkeypatch):
    monkeypatch.setattr(gpt_render, "RESULTS", tmp_path)
    config = {"seed": 1}
    timed = {"config": config, "timing": {"base": 2000.0, "student": 400.0, "corpus": 0.4, "total": 1200.0},
             "machine": {"cpu": "Some CPU", "isa": ["avx2"], "jobs": 2}}
    (tmp_path / "gpt-seed1.json").write_text(json.dumps(timed))
    counted = {"config": config, "gflop": {"base": 160000.0, "student": 20000.0, "corpus": 0.0}}
    text = gpt_render.gpt_flops(counted)
    assert "`make gpt ARGS=\"--seed 1 --count-flops\"`" in text and "2 worker processes" in text
    assert "| base | 160,000 | 2,000 | 80 |" in text and "| student | 20,000 | 400 | 50 |" in text
    assert "corpus" not in text  # under a second: no rate worth a row
    assert "| **all** | **180,000** | **2,400** | **75** |" in text
    assert "at 75 GFLOP/s per core" in text  # 180,000 GFLOP in 2 x 1,200 s
    with pytest.raises(ValueError, match="different configs"):
        gpt_render.gpt_flops(counted | {"config": {"seed": 2}})


def test_the_bench_blocks_set_each_row_side_by_side_from_one_runs_numbers():
    cfg = asdict(BenchConfig(batch_size=8))
    names = {row[i].format(half=4, batch=8) for row in bench_render.BENCH_ROWS for i in (1, 2)}
    speed = dict.fromkeys(names, 1000) | {"train minisub b8": 3000, "train hf-gpt2 b8": 2000}
    shares = {"train minisub": {"matmuls": 0.75, "optimizer": 0.25},
              "sample minisub": {"matmuls": 0.5, "optimizer": 0.5}}
    results = {"config": cfg, "parity_max_logit_gap": 0.0, "tokens_per_s": speed, "time_shares": shares,
               "machine": {"cpu": "Some CPU", "isa": ["avx2"], "threads": 1, "torch": "2.13.0", "transformers": "5.0"},
               "training_roofline": {"matmul_gflops_alone": 100.0, "minisub_gflops": 81.0, "hf-gpt2_gflops": 70.0,
                                     "minisub_share_of_matmul_rate": 0.81, "hf-gpt2_share_of_matmul_rate": 0.7},
                "sampling_roofline": {"decode_matmuls_alone_ms": 1.19, "minisub_step_ms": 4.04, "hf-gpt2_step_ms": 6.0},
               "student_steps_per_s": {"1": 50.0, "6": 60.0, "12": 75.0}}

    def block(name):
        return report.render("bench", f"<!-- render: {name} -->\n<!-- end -->\n", results)
    assert ('`make bench ARGS="--batch-size 8"` on Some CPU (avx2), 1 thread, torch 2.13.0, transformers 5.0; '
            "best of 5 timed runs") in block("machine")
    table = block("table")
    assert "| training fp32, batch 8 (tok/s) | 3,000 | 2,000 (HF GPT-2) | 1.50x |" in table
    assert "| unfused-LoRA training (tok/s) | 1,000 | 3,000 (full training) | 0.33x |" in table
    assert "| training fp32, batch 4 (tok/s) | 1,000 | 1,000 (HF GPT-2) | 1.00x |" in table
    rooflines = block("rooflines")
    assert "alone run at 100 GFLOP/s; minisub's whole step reaches 81 GFLOP/s of that work (81%" in rooflines
    assert "HF's 70 (70%)" in rooflines and "minisub 4.0 ms and HF 6.0 ms" in rooflines
    assert "alone take 1.2 ms" in rooflines
    assert ("A student step (batch 16, packed) runs 50 times a second. Stacking 6 or 12 students into one batched "
            "model could at best run like one student at 6 or 12 times the batch: 60 student steps/s (1.20x) and "
            "75 student steps/s (1.50x)") in rooflines
    assert "| share of wall time | train minisub | sample minisub |" in block("shares")
    assert "| optimizer | 25% | 50% |" in block("shares")
    shared = "<!-- render: gpt-flops/floor -->\nkept\n<!-- end -->\n"  # docs/benchmark.md holds both pages' blocks
    assert report.render("bench", shared, results) == shared


def stats(mean: float, ci95: float, n: int = 2) -> dict:
    return {"mean": mean, "ci95": ci95, "n": n}


def toy_results() -> dict:
    arms = {name: stats(0.1 * k, 0.01 * k) for k, name in enumerate(toy_render.TOY_ARMS, start=1)}
    step = {"frac_nonneg": 0.5, "mean_cosine": -0.0123, "inner": stats(1e-5, 1e-6),
            "teacher_loss_change": stats(-2.5e-4, 1e-5)}
    return {"config": {"seed": 3, "n_models": 2, "hidden": 8, "init_noise_std": 0.05, "theorem_eps": 0.001,
                       "init_controls": ["fc1=other", "all=noise", "head_aux=other,fc2=random"]},
            "precision": {"requested": "auto", "precision": "fp32", "fp32_gflops": 94.0, "bf16_gflops": 1.2},
            "machine": {"cpu": "Some CPU", "isa": ["avx2", "fma"], "threads": 2, "torch": "2.13.0"},
            "seconds": 181.6, "data": {"source": "subset", "n_train": 4000, "n_test": 1000}, "arms": arms,
            "init_controls": {"fc1=other": stats(0.134, 0.017), "all=noise": stats(0.125, 0.011),
                              "head_aux=other,fc2=random": stats(0.2, 0.02)},
            "theorem": {"same_init": {**step, "frac_nonneg": 1.0, "mean_cosine": 0.0237,
                                      "first_order_inner": stats(1.3049e-5, 1e-6)}, "cross_init": step},
            "speed": {"stages": {"teachers": {"seconds": 12.34, "gflop": 100.4, "gflops": 8.1}},
                      "total_gflop": 400.0, "run_gflops": 2.2, "efficiency": 0.023, "peak_gflops": 94.0}}


def test_the_toy_page_renders_each_arm_the_theorem_and_the_speed_from_its_numbers():
    def block(name):
        return report.render("toy", f"<!-- render: {name} -->\n<!-- end -->\n", toy_results())
    machine = block("machine")
    assert ("`make toy ARGS=\"--seed 3 --n-models 2 --hidden 8 --init-controls fc1=other all=noise "
            "head_aux=other,fc2=random\"` on Some CPU "
            "(avx2, fma), 2 threads, torch 2.13.0, `--precision auto`, which chose fp32 (fp32 94, bf16 1.2 GFLOP/s "
            "timed), seed 3: 182 s") in machine
    assert "subset (4,000 train / 1,000 test); 2 models of width 8" in machine
    arms = block("arms")
    assert "| reference (init) | 0.100 | 0.010 |" in arms
    assert "| **student, aux logits only** | **0.300** | 0.030 |" in arms
    assert "| init fc1 = other, rest shared | 0.134 | 0.017 |" in arms
    assert "| init all = shared + N(0, 0.05^2) | 0.125 | 0.011 |" in arms
    assert "| init head aux rows = other, fc2 = random, rest shared | 0.200 | 0.020 |" in arms
    theorem = block("theorem")
    assert "| same init | 2 / 2 models | +0.0237 | -2.5e-04 |" in theorem
    assert "| cross init | 1 / 2 models | -0.0123 | -2.5e-04 |" in theorem
    assert "1.3049e-05 vs 1.0000e-05" in theorem
    speed = block("speed")
    assert "| teachers | 12.3 | 100 | 8 |" in speed and "400 GFLOP at 2 GFLOP/s, 2% of the measured fp32" in speed
