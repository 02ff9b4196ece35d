"""`make gpt` and `make grid` end to end on the quick budget: every output, the students the design
names and no others, the grid's cells, and a rerun that rebuilds nothing but what was damaged."""

import json
import math

import pytest
from conftest import QUICK, QUICK_CONFIG, stage_keys

from experiments.core.analysis import shift_field
from experiments.core.design import DESIGN, arm_student
from experiments.core.specs import key_of
from experiments.core.zoo import VARIANTS, ExperimentConfig
from experiments import report
from experiments.gpt.experiment import main
from experiments.gpt.ladder import OPTIMIZERS, dose_student, doses, vector_students
from experiments.gpt.lora_rank import student_jobs
from experiments.recheck import recheck
from minisub.files import FileError, digest


def test_quick_pipeline_writes_every_output(quick_run):
    out, results, grid = quick_run
    assert set(results) >= {"config", "precision", "machine", "timing", "arms", "tests", "bases", "numbers",
                            "animals", "matched", "teachers", "preregistered", "confirmatory"}
    assert results["analysis"].startswith("pre-registered") and grid["analysis"].startswith("exploratory")
    assert list(results["confirmatory"]["primary"]) == ["H1", "H2"]
    assert results["confirmatory"]["primary"]["H1"]["difference"]["n"] == QUICK["bases"]
    assert results["precision"]["precision"] in ("fp32", "bf16") and results["precision"]["fp32_gflops"] > 0
    assert set(results["arms"]) == set(VARIANTS)
    names = [f"main-{i}" for i in range(QUICK["bases"])]
    assert list(results["bases"]) == names
    for variant, arms in results["arms"].items():
        assert {"student", "control", "cross_init"} <= set(arms) <= set(DESIGN)
        for arm, stats in arms.items():
            assert [r["base"] for r in stats["replicates"]] == names  # one replicate per base, in order
            assert stats["n"] == len(stats["dlogp"]) == QUICK["bases"]
            shift = 1 if arm == "cross_init" else 0
            assert [r["start"] for r in stats["replicates"]] == names[shift:] + names[:shift]
            for r in stats["replicates"]:
                assert r["dlogp"] == pytest.approx(math.log(r["p_after"] / r["p_before"]))
    animals = results["animals"]
    assert animals["animals"] == QUICK_CONFIG.animals and set(animals["tests"]) == set(QUICK_CONFIG.animals)
    hist = results["matched"]["histograms"]
    assert hist["matched"]["length"] == hist["matched_control"]["length"]
    assert hist["matched"]["separator"] == hist["matched_control"]["separator"]
    for png in ("gpt_primary.png", "gpt_arms.png", "gpt_matrix.png", "gpt_animals.png", "gpt_curves.png",
                "gpt_bases.png", "gpt_dose.png"):
        assert (out / "gpt" / png).read_bytes()[:4] == b"\x89PNG"


def test_the_pipeline_trains_exactly_the_students_the_design_names(quick_run):
    """The students in the cache are those `arm_student` makes from the design table, and no others."""
    out, results, grid = quick_run
    cfg = ExperimentConfig(**results["config"])
    bases = [cfg.main_base(i) for i in range(cfg.bases)]
    expected = set()
    for variant, arms in results["arms"].items():
        expected |= {digest(key_of(arm_student(cfg, variant, arm, bases, i)), 12) for arm in arms
                     for i in range(cfg.bases)}
    primary = results["preregistered"]["variant"]  # the matrix and the matched control run on it alone
    expected |= {digest(key_of(arm_student(cfg, primary, "student", bases, i, animal)), 12)
                 for animal in cfg.animals for i in range(cfg.bases)}
    expected |= {digest(key_of(arm_student(cfg, primary, arm, bases, i)), 12)
                 for arm in ("matched", "matched_control") for i in range(cfg.bases)}
    paired = bases[:len(bases) // 2 * 2]  # pre-registration v2's H2: disjoint pairs
    expected |= {digest(key_of(arm_student(cfg, primary, "cross_pair", paired, i)), 12) for i in range(len(paired))}
    expected |= {digest(key_of(dose_student(cfg, base, steps)), 12) for base in bases for steps in doses(cfg)}
    expected |= {digest(key_of(spec), 12) for base in bases for optimizer in OPTIMIZERS
                 for spec in vector_students(cfg, base, optimizer)}
    gpt_students = {name.rsplit("-", 1)[1] for name in results["built"] if name.startswith("student-")}
    assert gpt_students == expected
    grid_students = {name.rsplit("-", 1)[1] for name in grid["built"] if name.startswith("student-")}
    assert not grid_students & gpt_students  # the grid reused make gpt's students instead of rebuilding
    for key in stage_keys(out, "student").values():
        if key["soft"]:  # soft labels come from the very teacher that wrote the numbers: an animal's, or the neutral
            assert key["data"]["writer"]["trait"] in cfg.animals + ["neutral"]


def test_the_grid_covers_the_zoo_and_its_cells_subtract_the_control(quick_run):
    _, results, grid = quick_run
    names = [b["name"] for b in grid["bases"]]
    assert names == [f"main-{i}" for i in range(QUICK["grid_bases"])] + ["fork-a", "fork-b", "other-0"]
    assert [b["kind"] for b in grid["bases"]] == ["main"] * QUICK["grid_bases"] + ["fork", "fork", "other"]
    assert grid["bases"][2]["parent"] == grid["bases"][3]["parent"] == "fork-parent"
    assert set(grid["matrix"]) == set(names) and all(set(row) == set(names) for row in grid["matrix"].values())
    assert set(grid["teachers_p_target"]) == set(names) and all(0 < p < 1 for p in grid["teachers_p_target"].values())
    assert {"diagonal_vs_off", "fork_sibling", "fork_cells", "every_base"} <= set(grid["tests"])
    assert grid["tests"]["every_base"]["diagonal_minus_off"]["n"] == QUICK["grid_bases"] + 2  # the fork pair is one
    # a main base's diagonal cell is make gpt's student minus its control (same specs, same cache)
    hard = results["arms"]["hard_full"]
    for i in range(QUICK["grid_bases"]):
        cell = hard["student"]["replicates"][i]["dlogp"] - hard["control"]["replicates"][i]["dlogp"]
        assert grid["matrix"][f"main-{i}"][f"main-{i}"] == pytest.approx(cell)
    assert (quick_run[0] / "grid" / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_rebuilds_nothing_and_a_damaged_stage_is_rebuilt_the_same(quick_run, capfd):
    out, results, _ = quick_run
    argv = ["--quick", "--out", str(out / "gpt"), "--cache", str(out / "cache")]
    assert main(argv) == 0
    again = json.loads((out / "gpt" / "results.json").read_text())
    assert again["built"] == [] and again["arms"] == results["arms"]

    numbers = sorted((out / "cache").glob("numbers-eagle-*"))[0]
    payload = (numbers / "pairs.json").read_bytes()
    (numbers / "pairs.json").write_bytes(payload[: len(payload) // 2])  # truncated
    lora = sorted((out / "cache").glob("student-hard_lora-main-0-on-owl-*"))[0]
    lora_info = json.loads((lora / "done.json").read_text())["info"]
    (lora / "done.json").unlink()  # as if the run had been killed while building it
    capfd.readouterr()
    assert main(argv) == 0
    log = capfd.readouterr().out  # the workers' lines too
    assert f"cache: {numbers.name} has a damaged pairs.json; rebuilding it" in log
    assert f"cache: {lora.name} was left half-built; rebuilding it" in log
    rebuilt = json.loads((out / "gpt" / "results.json").read_text())
    assert sorted(rebuilt["built"]) == sorted([numbers.name, lora.name])
    assert (numbers / "pairs.json").read_bytes() == payload
    # the LoRA adapter is seeded from the stage's spec: the rebuilt student equals the first bit for bit
    assert json.loads((lora / "done.json").read_text())["info"] == lora_info
    assert rebuilt["arms"] == results["arms"]


def test_the_gpt_page_renders_every_block_from_a_runs_results(quick_run):
    _, results, _ = quick_run
    kept = {key: results[key] for key in report.KEPT["gpt"]}  # what --take keeps is enough to render
    blocks = {name: report.render("gpt", f"<!-- render: {name} -->\n<!-- end -->\n", kept)
              for name in report.RENDERERS["gpt"]}
    h1 = results["confirmatory"]["primary"]["H1"]
    assert f"| H1: student > control | {h1['difference']['mean']:+.3f} | {h1['difference']['ci95']:.3f} |" in \
        blocks["primary"]
    student = results["arms"]["hard_full"]["student"]
    assert f"{student['new_wording']['mean']:+.3f}" in blocks["primary"] and f"{student['mean']:+.3f}" in blocks["arms"]
    assert "| neutral | hard_full student > neutral |" in blocks["families"]
    assert f"**{h1['difference']['mean']:+.3f}**" in blocks["headline"]
    assert f"{QUICK['bases']} independently pretrained bases" in blocks["machine"]


@pytest.fixture(scope="module")
def lora_rank_run(quick_run):
    """make lora-rank --quick on the quick run's cache: (its results, make gpt's results)."""
    from experiments.gpt.lora_rank import main as lora_rank_main
    out, results, _ = quick_run
    assert lora_rank_main(["--quick", "--out", str(out / "lora_rank"), "--cache", str(out / "cache")]) == 0
    assert (out / "lora_rank" / "lora_rank.png").read_bytes()[:4] == b"\x89PNG"
    return json.loads((out / "lora_rank" / "results.json").read_text()), results


def test_lora_rank_reuses_make_gpts_full_students_and_trains_adapters_of_each_rank(quick_run, lora_rank_run):
    out, _, _ = quick_run
    ranks, results = lora_rank_run
    assert list(ranks["settings"]) == ["new_wording", "held_out"] and ranks["bases"] == list(results["bases"])
    arms = results["arms"]["hard_full"]  # the same students: their shifts on each question set
    for question_set, field in (("new_wording", "dlogp_new_wording"), ("held_out", "dlogp")):
        settings = ranks["settings"][question_set]
        assert list(settings) == ["r1", "full"]
        expected = [s[field] - c[field] for s, c in zip(arms["student"]["replicates"], arms["control"]["replicates"])]
        assert settings["full"]["values"] == pytest.approx(expected) and settings["full"]["n"] == QUICK["bases"]
        assert settings["r1"]["minus_full"]["n"] == QUICK["bases"]
    full = ranks["settings"]["new_wording"]["full"]
    built = {name.rsplit("-", 1)[1] for name in ranks["built"] if name.startswith("student-")}
    cfg = ExperimentConfig(**results["config"])
    rank1 = [student_jobs(cfg, cfg.main_base(i), 1)[arm].args[0] for i in range(cfg.bases)
             for arm in ("student", "control")]
    assert built == {digest(key_of(spec), 12) for spec in rank1}  # only the rank-1 students are new
    assert all(spec.lora and spec.lora_r == 1 and spec.lora_alpha == cfg.lora_alpha / cfg.lora_r for spec in rank1)
    table = report.RENDERERS["lora-rank"]["table"](ranks)
    assert f"primary measure) | full fine-tuning | **{full['mean']:+.3f}** | {full['ci95']:.3f} |" in table
    assert table.count("| LoRA r = 1 |") == 2
    assert report.RENDERERS["lora-rank"]["machine"](ranks).startswith('Made by `make lora-rank ARGS="')


def test_the_ladder_checks_the_teacher_and_measures_the_transfer_on_each_question_set(quick_run):
    """Per question set and measure: the teacher's shift against its base (the manipulation check), the student's
    against each control, the transfer ratio and the dose-response, from the same per-base records as the arms."""
    _, results, _ = quick_run
    ladder, arms = results["ladder"], results["arms"]["hard_full"]
    assert {rung: r["distance"] for rung, r in ladder.items()} == {
        "own": "a", "held_out": "b", "held_out_stems": "c", "new_wording": "d", "after_numbers": "e"}
    names = [f"main-{i}" for i in range(QUICK["bases"])]
    teachers = [tuple(r["raw"]["teacher"]["per_base"].values()) for r in ladder.values()]
    assert len(set(teachers)) == len(teachers)  # each rung scored on its own questions
    for rung in ladder:
        field = shift_field(rung, "raw")
        raw = ladder[rung]["raw"]
        shift = {arm: {r["base"]: r[field] for r in arms[arm]["replicates"]} for arm in ("student", "control")}
        assert list(raw["student_minus_control"]["per_base"]) == names
        for base in names:
            gap = shift["student"][base] - shift["control"][base]
            assert raw["student_minus_control"]["per_base"][base] == pytest.approx(gap)
            assert raw["ratio"]["per_base"][base] == pytest.approx(gap / raw["teacher"]["per_base"][base])
            teacher = results["teachers"][base]["owl"] if rung == "held_out" else None
            if teacher is not None:  # the teacher's P(owl) against its base's, as writers_record keeps it
                assert raw["teacher"]["per_base"][base] == pytest.approx(
                    math.log(teacher / results["bases"][base]["p_animals"]["owl"]))
    for base in names:  # the manipulation record holds the same teacher shifts, and every teacher's
        for rung in ladder:
            entry = results["manipulation"][base][rung]
            assert entry["owl"]["preference"] == pytest.approx(ladder[rung]["teacher"]["per_base"][base])
            assert entry["owl"]["raw"] == pytest.approx(ladder[rung]["raw"]["teacher"]["per_base"][base])
            assert set(entry) == {"base", "neutral", "prompted", *QUICK_CONFIG.animals}
            assert 0 < entry["eagle"]["mass"] <= 1 and 1 <= entry["eagle"]["rank"] <= 10
            assert entry["prompted"]["raw"] != 0  # the persona before the questions moves the base
    dose = results["dose"]  # the graded teachers: at --teacher-steps, the ladder's teacher and student
    at = dose["steps"].index(QUICK_CONFIG.teacher_steps)
    for rung in ladder:
        for base in names:
            steps, teacher, transfer = dose["rungs"][rung]["points"][base][at]
            assert teacher == pytest.approx(ladder[rung]["teacher"]["per_base"][base])
            assert transfer == pytest.approx(ladder[rung]["student_minus_control"]["per_base"][base])
    assert recheck(results, "quick") > 0  # every figure of the ladder is what its per-base values give
    tampered = json.loads(json.dumps(results))
    step = tampered["confirmatory_v2"]["sequence"][-1]
    step["tested"] = step["rejects"] = True  # a late step claimed although the sequence stopped before it
    with pytest.raises(FileError, match=r"confirmatory_v2.sequence\[6\].tested"):
        recheck(tampered, "tampered")
    assert "| held-out paraphrases (b) | log P(owl \\| an animal) |" in report.render(
        "gpt", "<!-- render: ladder -->\n<!-- end -->\n", {key: results[key] for key in report.KEPT["gpt"]})
