"""make forks: its family of models (child a is the parent's run itself, child b shares exactly the steps before
its fork), its refusals, and its pre-registered tests as the results file and `recheck` hold them."""

import dataclasses
import json
import random

import pytest
import torch
from conftest import QUICK_CONFIG, refusal
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.core.specs import BaseSpec
from experiments.core.stages import Stages
from experiments.forks.experiment import ALPHA, PREREGISTERED, family, main, over_pairs, sibling_tests
from experiments.recheck import recheck
from minisub.checkpoint import load_checkpoint
from minisub.files import FileError
from minisub.log import Progress
from minisub.stats import sign_flip_greater


def history(stages: Stages, base: BaseSpec) -> dict:
    return stages.cache.info(stages.base(base))["history"]


def test_child_a_is_the_parents_run_never_stopped_and_child_b_shares_exactly_its_steps_before_the_fork(quick_run):
    """The bug this guards: a child that reseeds its data order where it should continue the parent's stream (or
    the reverse) is still a trained model, and only its weights show it."""
    out, _, _ = quick_run
    stages = Stages(out / "cache", Progress())
    fam = family(QUICK_CONFIG, [0, 40], pair=0)
    never_stopped = dataclasses.replace(fam.a, parent=None)
    a = load_checkpoint(stages.base(fam.a))[0].state_dict()
    for name, weight in load_checkpoint(stages.base(never_stopped))[0].state_dict().items():
        assert torch.equal(a[name], weight), name
    logged = history(stages, never_stopped)["train"]
    for step, b in fam.b.items():
        forked = history(stages, b)
        assert forked["forked"] == [{"step": step, "seed": b.seed}] and b.seed != fam.a.seed
        assert [row for row in forked["train"] if row[0] <= step] == [row for row in logged if row[0] <= step]
        assert not torch.equal(load_checkpoint(stages.base(b))[0].lm_head.weight, a["lm_head.weight"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, QUICK_CONFIG.base_steps - 1), min_size=1, max_size=6, unique=True), st.integers(0, 9))
def test_a_family_chains_its_stops_and_every_child_has_a_main_bases_training(steps, pair):
    steps = sorted(steps)
    fam = family(QUICK_CONFIG, steps, pair)
    assert [s.step for s in fam.states.values()] == steps
    assert [s.previous.step if s.previous else None for s in fam.states.values()] == [None, *steps[:-1]]
    assert fam.a.parent is fam.states[steps[-1]] and fam.a.seed == fam.states[steps[0]].seed
    main = QUICK_CONFIG.main_base(pair)
    recipe = {"name", "seed", "parent"}
    for child in [fam.a, *fam.b.values()]:
        assert {f.name for f in dataclasses.fields(BaseSpec) if getattr(child, f.name) != getattr(main, f.name)} \
            <= recipe  # the main bases' corpus, architecture and schedule, all of it
    seeds = [fam.a.seed] + [b.seed for b in fam.b.values()] + [family(QUICK_CONFIG, steps, pair + 1).a.seed, main.seed]
    assert len(set(seeds)) == len(seeds)
    assert fam.unrelated == main


@pytest.mark.parametrize("argv, message", [
    (["--fork-points", "0.5", "1.0"], "--fork-points must each be below 1"),
    (["--fork-points", "0.5", "0.5"], "--fork-points must each be given once"),
    (["--fork-points", "-0.1"], "--fork-points must be at least 0.0"),
    (["--pairs", "1"], "--pairs must be at least 2"),
    (["--base-steps", "100", "--fork-points", "0.5", "0.504"], "two points fall on one step"),
])
def test_bad_fork_points_and_pairs_are_one_line_before_any_work(argv, message, tmp_path, capsys):
    code, err = refusal(main, argv, tmp_path, capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def synthetic_results(points: list[float], pairs: int, seed: int) -> dict:
    """A results file of make forks' shape with random per-pair arms, its derived figures made as `run` makes them."""
    rng = random.Random(seed)
    names = [f"forks{j}" for j in range(pairs)]
    records = []
    for k, point in enumerate(sorted(points)):
        arms = {arm: {n: rng.gauss(0.1, 0.2) for n in names} for arm in ("self", "sibling", "unrelated")}
        records.append({"fork_point": point, "step": k,
                        **{arm: over_pairs(values) for arm, values in arms.items()},
                        "share": over_pairs({n: arms["sibling"][n] / arms["self"][n] for n in names}, test=False),
                        "sibling_minus_unrelated": over_pairs({n: arms["sibling"][n] - arms["unrelated"][n]
                                                               for n in names})})
    return {"preregistered": PREREGISTERED, "fork_points": records, "sequence": sibling_tests(records)}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.5, 0.8, 0.9, 0.95, 0.99]), min_size=1, max_size=6, unique=True),
       st.integers(2, 7), st.integers(0, 2**31 - 1))
def test_the_sequence_runs_from_the_latest_fork_point_and_stops_at_the_first_non_rejection(points, pairs, seed):
    results = synthetic_results(points, pairs, seed)
    sequence = results["sequence"]
    assert [s["fork_point"] for s in sequence] == sorted(points, reverse=True)
    by_point = {p["fork_point"]: p["sibling_minus_unrelated"] for p in results["fork_points"]}
    for k, step in enumerate(sequence):
        assert step["p_exact"] == sign_flip_greater(list(by_point[step["fork_point"]]["per_pair"].values()))
        assert step["tested"] == all(s["rejects"] for s in sequence[:k])
        assert step["rejects"] == (step["tested"] and step["p_exact"] <= ALPHA)
    assert recheck(json.loads(json.dumps(results)), "forks.json") > 0


def changed(node: dict, pair: str, value: float) -> None:
    """One pair's value changed, and the summary over pairs made again from it: only the check across arms sees it."""
    node.update(over_pairs(node["per_pair"] | {pair: value}, test="p_exact" in node))


@pytest.mark.parametrize("tamper, field", [
    (lambda r: r["fork_points"][0]["sibling_minus_unrelated"].update(p_holm=0.001), "p_holm"),
    (lambda r: r["sequence"][-1].update(tested=not r["sequence"][-1]["tested"]), "tested"),
    (lambda r: changed(r["fork_points"][0]["share"], "forks0", 9.0), "share.per_pair.forks0"),
    (lambda r: changed(r["fork_points"][1]["sibling_minus_unrelated"], "forks1", 5.0),
     "sibling_minus_unrelated.per_pair.forks1"),
])
def test_recheck_refuses_a_forks_file_whose_derived_figures_do_not_follow_from_its_pairs(tamper, field):
    results = synthetic_results([0.0, 0.5, 0.9], pairs=6, seed=3)
    recheck(results, "forks.json")
    tamper(results)
    with pytest.raises(FileError, match=field):
        recheck(results, "forks.json")


@pytest.mark.slow
def test_a_quick_run_writes_every_field_the_page_reads_and_its_figure(quick_run, tmp_path):
    from experiments.forks.render import PAGES
    out, _, _ = quick_run
    assert main(["--quick", "--out", str(tmp_path), "--cache", str(out / "cache"), "--jobs", "2"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [p["fork_point"] for p in results["fork_points"]] == [0.0, 0.5] and (tmp_path / "forks_curve.png").is_file()
    for point in results["fork_points"]:
        for arm in ("teacher", "self", "sibling", "unrelated", "share"):
            assert set(point[arm]) >= {"per_pair", "mean", "ci95"} and len(point[arm]["per_pair"]) == 2
        assert 0 < point["sibling_minus_unrelated"]["p_exact"] <= 1
    recheck(results, "results.json")
    for render in PAGES["forks"].values():
        assert render(results).strip()


def test_a_teacher_step_cosine_is_a_stage_the_workers_can_build_and_it_is_the_cosine(quick_run):
    from experiments.core.scheduler import upstream
    from experiments.core.stages import Job
    from experiments.forks.experiment import alignments
    from experiments.forks.geometry import alignment, cosine, first_step, model_vector
    out, _, _ = quick_run
    stages = Stages(out / "cache", Progress())
    spec = alignments(QUICK_CONFIG, family(QUICK_CONFIG, [40], pair=0), 40)["sibling"]
    assert {job.args[0] for job in upstream(Job(alignment, (spec,)))} == {
        spec.teacher, spec.start, spec.teacher_data, spec.own_data}
    change = model_vector(stages.load(spec.teacher)) - model_vector(stages.load(spec.teacher.base))
    by_hand = cosine(change, first_step(stages, stages.load(spec.start), spec.start, spec.teacher_data)
                     - first_step(stages, stages.load(spec.start), spec.start, spec.own_data))
    assert alignment(stages, spec) == pytest.approx(by_hand, abs=1e-12)
    assert alignment(stages, spec) == alignment(Stages(out / "cache", Progress()), spec)  # read back, not rebuilt
