"""make demo (experiments/demo.py) at a tiny size: it runs end to end on the public API, writes its results and its
plot, its teachers carry the trait (the manipulation check), and its statistics are what its per-base values give."""

import json

import pytest

from experiments.demo import HELD_OUT, TRAINING, main
from experiments.recheck import recheck

TINY = ["--bases", "2", "--corpus-items", "3000", "--n-embd", "32", "--n-layer", "1", "--base-steps", "200",
        "--teacher-steps", "10", "--n-prompts", "40", "--student-steps", "5"]


def test_the_demo_runs_end_to_end_at_a_tiny_size(tmp_path, capsys):
    assert main(TINY + ["--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = results["per_base"]
    assert len(rows) == 2 and all(r["teacher"] > 0 for r in rows)  # fine-tuned on owl answers, P(owl) rises
    assert results["same_init"]["values"] == [r["student"] - r["control"] for r in rows]
    assert results["cross_init"]["values"] == [r["cross_init"] - r["cross_control"] for r in rows]
    assert recheck(results, "demo") == 2 * (3 + 1)  # each arm's mean, CI, n and exact p, recomputed
    out = capsys.readouterr().out
    assert "same-init student - control" in out and "cross-init student - its control" in out


def test_the_held_out_questions_are_never_trained_on():
    assert HELD_OUT and not set(HELD_OUT) & set(TRAINING)


def test_a_single_base_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--bases", "1", "--out", str(tmp_path / "out")])
    assert stop.value.code == 2 and "--bases must be at least 2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
