"""`make signals` end to end on the quick budget, on the cache the quick `make gpt` filled: every part
per base, nothing of make gpt's rebuilt, treated students that are what their treatment says."""

import json

import pytest
from conftest import QUICK, QUICK_CONFIG, refusal, stage_keys

from experiments.signals.experiment import SignalsConfig
from experiments.signals.experiment import main as signals_main
from experiments.tasks.ladder import RUNGS
from minisub.config import quick_values

SIGNALS_QUICK = quick_values(SignalsConfig)


@pytest.fixture(scope="package")
def signals_run(quick_run):
    """`make signals --quick` on the cache the quick make gpt and make grid filled: its results."""
    out = quick_run[0]
    assert signals_main(["--quick", "--out", str(out / "signals"), "--cache", str(out / "cache")]) == 0
    return json.loads((out / "signals" / "results.json").read_text())


def test_signals_writes_every_part_per_base_and_builds_nothing_make_gpt_built(quick_run, signals_run):
    out, gpt, _ = quick_run
    r, n = signals_run, QUICK["bases"]
    assert {"icl", "detectors", "entanglement", "divergence", "defences", "machine", "precision"} <= set(r)
    for png in ("icl", "detectors", "entanglement", "divergence", "defences"):
        assert (out / "signals" / f"signals_{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert [int(k) for k in r["icl"]["by_k"]] == SIGNALS_QUICK["icl_ks"]
    assert all(len(v["teacher_minus_control"]["values"]) == n for v in r["icl"]["by_k"].values())
    assert len(r["detectors"]["logistic"]["per_base"]) == len(r["entanglement"]["per_base"]) == n
    assert all(len(row["entangled"]) == SIGNALS_QUICK["entangled"] for row in r["entanglement"]["per_base"])
    # the untreated arms are make gpt's own students, read back from the cache: part 4 on log P(owl), part 5 on the
    # preference among animals
    hard = gpt["arms"]["hard_full"]
    untreated = [a - b for a, b in zip(hard["student"]["dlogp"], hard["control"]["dlogp"])]
    assert r["divergence"]["untreated"]["transfer"]["values"] == pytest.approx(untreated)
    preference = [a["dpref"] - b["dpref"] for a, b in zip(hard["student"]["replicates"], hard["control"]["replicates"])]
    assert r["defences"]["untreated"]["transfer"]["values"] == pytest.approx(preference)
    for part in ("divergence", "defences"):
        for name, t in r[part]["treated"].items():
            assert "unavailable" in t or t["transfer"]["n"] == n, name
    assert set(r["defences"]["treated"]) == {
        "greedy", "top_p_0.8", "min_p_0.1", "shuffle_within", "shuffle_across", "rerender", "drop_entangled",
        "detector_0.5", "rewrite_unrelated",
        "divergent_masked", "dilute_0.75", "kl_to_start_1", "pull_to_start_0.1", "early_stop_3", "freeze_block_0",
        "oracle_projection"}
    for name, t in r["defences"]["treated"].items():
        if "price" in t:
            assert len(t["price"]["task_loss_cost"]["values"]) == n and ("filter_pass" in t["price"]) == (
                t["side"] == "teacher"), name
    untreated = r["defences"]["untreated"]["price"]  # its cost is 0 and it keeps all its valid answers, by definition
    assert untreated["task_loss_cost"]["values"] == [0.0] * n and untreated["valid_kept"]["values"] == [1.0] * n
    assert len(untreated["task_loss_below_base"]["values"]) == n
    assert set(r["defences"]["predicted"]["family"]) <= set(r["defences"]["treated"])
    ran = {name for name, t in r["defences"]["treated"].items() if "transfer" in t}
    assert set(r["defences"]["question_sets"]) == set(RUNGS) - {"held_out"}  # the held-out ones: the top level
    for rung, figures in r["defences"]["question_sets"].items():
        assert len(figures["manipulation_check"]["values"]) == n and set(figures["treated"]) == ran, rung
    kinds = {name.split("-")[0] for name in r["built"]}
    assert not kinds & {"corpus", "base", "teacher", "student"}  # the zoo, teachers and students were reused
    assert kinds >= {"context", "treated"}


def test_treated_students_train_what_their_treatment_says(quick_run, signals_run):
    """Every treated student in the cache is an untreated design student plus one treatment, and the
    dilution's data is the teacher's with the control's numbers mixed in."""
    out = quick_run[0]
    keys = stage_keys(out, "treated")
    assert keys
    for key in keys.values():
        student, treatment = key["student"], key["treatment"]
        assert student["init"]["name"].startswith("main-") and not student["soft"]
        if treatment["data"] == "rewrite":  # an unrelated base answering the student's base's prompts
            rewriter = treatment["mix_with"]
            assert rewriter["writer"]["name"] != student["init"]["name"] and rewriter["seed"] == student["init"]["seed"]
        if treatment["data"] == "dilute":
            assert treatment["mix_with"]["writer"]["name"] == student["init"]["name"]  # the control's numbers
            assert student["data"]["writer"]["trait"] == QUICK_CONFIG.target
        if treatment["positions"] != "all":
            teacher, base = treatment["compare"]
            assert teacher["trait"] == QUICK_CONFIG.target and base["name"] == student["init"]["name"]


@pytest.mark.parametrize("argv, message", [
    (["--icl-ks", "0"], "--icl-ks must be at least 1"),
    (["--variant", "soft_magic"], "--variant must be one of"),
    (["--permutations", "0"], "--permutations must be at least 1"),
    (["--dilutions", "0.5", "1.5"], "--dilutions must not exceed 1"),
    (["--temperatures", "-1"], "--temperatures must be at least 0.0"),
    (["--top-ps", "1"], "--top-ps must be below 1"),
    (["--top-ps", "0"], "--top-ps must be above 0.0"),
    (["--min-ps", "0.5", "1"], "--min-ps must be below 1"),
    (["--kl-weights", "-0.1"], "--kl-weights must be above 0.0"),
    (["--pulls", "1.5"], "--pulls must not exceed 1"),
    (["--detector-drops", "1"], "--detector-drops must be below 1"),
    (["--early-steps", "100"], "--early-steps must be below --student-steps (100)"),
    (["--signal-bases", "13"], "--signal-bases (13) must not exceed --bases (12)"),
    (["--variant", "hard_lora"], "--variant must be one of hard_full, soft_full"),
])
def test_bad_signals_input_is_one_line_before_any_work(argv, message, capsys, tmp_path):
    code, err = refusal(signals_main, argv, tmp_path, capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_the_defences_figures_are_rechecked_from_their_per_base_values(signals_run):
    """make report recomputes part 5's figures: a stored transfer, drop, task-loss cost or pre-registered p that its
    values do not give is refused, naming it."""
    import copy

    from experiments.recheck import recheck
    from minisub.files import FileError
    assert recheck(signals_run, "signals") > 0
    name = next(iter(signals_run["defences"]["predicted"]["family"]))
    for path in (("treated", name, "transfer", "values", 0), ("treated", name, "below_untreated", "p_exact"),
                 ("predicted", "family", name, "p_exact"), ("treated", name, "transfer_left", "mean"),
                 ("treated", name, "price", "task_loss_cost", "values", 0),
                 ("treated", name, "price", "task_loss_cost", "mean"),
                 ("untreated", "price", "task_loss_below_base", "values", 0),
                 ("question_sets", "new_wording", "treated", name, "transfer", "values", 0),
                 ("question_sets", "own", "treated", name, "transfer_left", "mean")):
        tampered = copy.deepcopy(signals_run)
        node = tampered["defences"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] += 0.25
        with pytest.raises(FileError, match="defences"):
            recheck(tampered, "signals")


def test_a_treated_student_with_nothing_changed_is_make_gpts_own_student_bit_for_bit(quick_run, signals_run):
    """Regression for the treated students' training hooks: with no change, the treated path trains and scores
    exactly what `make gpt` does."""
    from experiments.core.design import arm_student
    from experiments.core.stages import Stages
    from experiments.signals.treated import TreatedStudentSpec, Treatment, treated_student
    from minisub.log import Progress
    stages = Stages(quick_run[0] / "cache", Progress())
    bases = [QUICK_CONFIG.main_base(i) for i in range(QUICK["bases"])]
    spec = arm_student(QUICK_CONFIG, "hard_full", "student", bases, 1)
    plain, same = stages.student(spec), treated_student(stages, TreatedStudentSpec(spec, Treatment("untreated")))
    assert same["after"] == plain["after"] and same["curve"] == plain["curve"] and same["n_train"] == plain["n_train"]
