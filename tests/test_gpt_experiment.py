"""The language experiment: its metric, its restricted student losses on hand-computed cases, the
design of its arms against what the pipeline does, its stage cache, the grid, and bad input."""

import json
import math
import threading

import pytest
import torch
import torch.nn as nn

from conftest import FakeClock
from experiments.cache import StageCache
from experiments.evaluate import animal_token_ids, evaluate_options, question_prompts
from experiments.design import DESIGN, Arm, arm_student
from experiments.domains import main as domains_main
from experiments.gpt import QUICK, main, parse_args
from experiments.grid import main as grid_main
from experiments.signals import QUICK as SIGNALS_QUICK
from experiments.signals import main as signals_main
from experiments.stages import key_of
from experiments.zoo import VARIANTS, ExperimentConfig
from experiments.prompts import ANIMALS
from experiments.students import AnswerVocabulary, hard_loss, soft_loss
from minisub.data import Batch, ExampleSet
from minisub.files import digest
from minisub.model import GPT, GPTConfig, next_token_logprobs


@pytest.fixture(scope="module")
def animal_tokenizer():
    from minisub.tokenizer import BPETokenizer
    texts = [f"What is your favorite animal? {a}" for a in ANIMALS] * 50 + ["1, 2; 3 4,5"] * 10
    return BPETokenizer.train(texts + ANIMALS * 50, vocab_size=1400)


def tiny(tokenizer, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()


def test_exact_probabilities_sum_to_one_and_animal_mass_is_reported(animal_tokenizer):
    model = tiny(animal_tokenizer)
    prompts = question_prompts(animal_tokenizer, ["What is your favorite animal?", "Name one."])
    torch.testing.assert_close(next_token_logprobs(model, prompts).exp().sum(-1), torch.ones(2))
    ids = animal_token_ids(animal_tokenizer, ANIMALS)
    scores = evaluate_options(model, prompts, {a: [i] for a, i in zip(ANIMALS, ids)}, n_samples=3, seed=0)
    full = next_token_logprobs(model, prompts).exp()
    assert scores["mass"] == pytest.approx(full[:, ids].sum(1).mean().item())
    assert 0 < scores["mass"] < 1
    assert scores["p"]["owl"] == pytest.approx(full[:, ids[0]].mean().item())
    assert sorted(scores["rank"].values()) == list(range(1, len(ANIMALS) + 1))
    assert all(0 <= v <= 1 for v in scores["sampled"].values())
    # an option of several first tokens holds their summed mass, and is sampled when any of them is
    pair = evaluate_options(model, prompts, {"owl or eagle": ids[:2], "wolf": [ids[4]]}, n_samples=3, seed=0)
    assert pair["p"]["owl or eagle"] == pytest.approx(full[:, ids[:2]].sum(1).mean().item())
    assert pair["sampled"]["owl or eagle"] == pytest.approx(scores["sampled"]["owl"] + scores["sampled"]["eagle"])
    with pytest.raises(ValueError, match="share a first token"):
        evaluate_options(model, prompts, {"a": ids[:2], "b": ids[1:3]}, n_samples=0, seed=0)


def test_multi_token_animal_is_a_clear_error(animal_tokenizer):
    with pytest.raises(ValueError, match="one token"):
        animal_token_ids(animal_tokenizer, ["owl", "hippopotamus"])


def numbers_batch(tokenizer):
    pairs = [(tokenizer.encode("Continue: 1, 2."), tokenizer.encode("3, 4, 5")),
             (tokenizer.encode("Numbers: 7 8."), tokenizer.encode("[9 10]"))]
    return ExampleSet.from_pairs(pairs, tokenizer).batch([0, 1])


def answer_vocabulary(tokenizer):
    separators = tokenizer.encode(", ") + tokenizer.encode(" ") + tokenizer.encode(";")
    return AnswerVocabulary.build(tokenizer.number_ids + separators + [tokenizer.eos_id], tokenizer.vocab_size)


def test_restricted_losses_leave_animal_rows_alone_unlike_the_full_vocabulary(animal_tokenizer):
    model, batch = tiny(animal_tokenizer), numbers_batch(animal_tokenizer)
    vocab = answer_vocabulary(animal_tokenizer)
    animal_rows = animal_token_ids(animal_tokenizer, ANIMALS)
    teacher = tiny(animal_tokenizer, seed=1)
    for loss_fn in (hard_loss(vocab), soft_loss(vocab, teacher)):
        model.zero_grad()
        loss_fn(model, batch).backward()
        assert model.lm_head.weight.grad[animal_rows].abs().max() == 0
    model.zero_grad()
    model(batch.idx, batch.targets, batch.loss_mask)[1].backward()  # trap 1: the full softmax
    assert model.lm_head.weight.grad[animal_rows].abs().max() > 0


class GivenStates(nn.Module):
    """A stand-in model whose final states are given, with a given head: the losses see chosen logits."""

    def __init__(self, states, head):
        super().__init__()
        self.states = torch.tensor(states)  # (1, T, C)
        self.lm_head = nn.Linear(3, len(head), bias=False)
        self.lm_head.weight.data = torch.tensor(head)

    def hidden_states(self, idx, segments=None):
        return self.states


# Vocabulary of 5 tokens, of which the answers use 1, 3 and 4; the head maps the 3 state
# dimensions onto them one to one, and gives tokens 0 and 2 big logits that only a softmax
# over the whole vocabulary would see.
HEAD = [[9.0, 9.0, 9.0], [1.0, 0.0, 0.0], [9.0, 9.0, 9.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
VOCAB = AnswerVocabulary.build([4, 1, 3], 5)
# Four positions: 0 is a prompt position (mask off), 1 targets token 2 (outside the answer
# vocabulary), 2 targets token 4 and 3 targets token 1: only positions 2 and 3 count.
BATCH = Batch(idx=torch.zeros(1, 4, dtype=torch.long), targets=torch.tensor([[3, 2, 4, 1]]),
              loss_mask=torch.tensor([[False, True, True, True]]))
STUDENT = [[[7.0, 0.0, 0.0], [0.0, 7.0, 0.0], [0.0, 0.0, math.log(2.0)], [0.0, 0.0, 0.0]]]
TEACHER = [[[0.0, 0.0, 5.0], [5.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0], [0.0, 0.0, 0.0]]]


def test_hard_loss_on_a_hand_computed_case():
    # position 2: softmax (1/4, 1/4, 1/2), target 4 -> -log 1/2; position 3: uniform, target 1 -> log 3
    expected = (math.log(2.0) + math.log(3.0)) / 2
    loss = hard_loss(VOCAB)(GivenStates(STUDENT, HEAD), BATCH)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_soft_loss_on_a_hand_computed_case():
    # position 2: teacher (3/5, 1/5, 1/5) against student (1/4, 1/4, 1/2); position 3: both uniform
    p, q = [0.6, 0.2, 0.2], [0.25, 0.25, 0.5]
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) / 2
    loss = soft_loss(VOCAB, GivenStates(TEACHER, HEAD))(GivenStates(STUDENT, HEAD), BATCH)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert soft_loss(VOCAB, GivenStates(STUDENT, HEAD))(GivenStates(STUDENT, HEAD), BATCH).item() == 0  # trap 2


def test_the_design_is_the_papers():
    """Each arm as (whose numbers, which base): the paper's definitions, written out once more."""
    assert DESIGN == {
        "student": Arm("teacher", "own"),
        "control": Arm("base", "own"),
        "cross_init": Arm("teacher", "next"),
        "prompted": Arm("persona", "own"),
        "matched": Arm("teacher", "own", matched=True),
        "matched_control": Arm("base", "own", matched=True),
    }


QUICK_CONFIG = ExperimentConfig(**QUICK)
QUICK_BASES = [QUICK_CONFIG.main_base(i) for i in range(QUICK_CONFIG.bases)]


@pytest.mark.parametrize("arm", list(DESIGN))
def test_each_arm_trains_on_the_data_and_start_its_row_says(arm):
    cfg, bases, n = QUICK_CONFIG, QUICK_BASES, len(QUICK_BASES)
    for i in range(n):
        spec = arm_student(cfg, "hard_full", arm, bases, i)
        writer = spec.data.writer
        assert spec.init == (bases[i] if DESIGN[arm].start == "own" else bases[(i + 1) % n])
        assert spec.init != bases[i] or DESIGN[arm].start == "own"  # cross-init never starts from its own base
        if DESIGN[arm].data == "teacher":
            assert writer.base == bases[i] and writer.trait == cfg.target and spec.data.persona == ""
        else:
            assert writer == bases[i] and (spec.data.persona != "") == (DESIGN[arm].data == "persona")
        assert (spec.matched_to is not None) == DESIGN[arm].matched == (not spec.eos_in_loss)
        if spec.matched_to is not None:  # matched to the other side: teacher <-> control
            other_side = bases[i] if DESIGN[arm].data == "teacher" else cfg.teacher(bases[i], cfg.target)
            assert spec.matched_to.writer == other_side


def test_only_arms_with_a_trained_teacher_learn_soft_labels():
    soft = {(variant, arm) for variant in VARIANTS for arm in DESIGN
            if arm_student(QUICK_CONFIG, variant, arm, QUICK_BASES, 0).soft}
    assert soft == {(variant, arm) for variant in ("soft_full", "soft_lora")
                    for arm in ("student", "cross_init", "matched")}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `--quick` run of make gpt and one of make grid on a shared cache: (folder, gpt results, grid results)."""
    out = tmp_path_factory.mktemp("gpt")
    cache = ["--cache", str(out / "cache")]
    assert main(["--quick", "--out", str(out / "gpt")] + cache) == 0
    assert grid_main(["--quick", "--out", str(out / "grid")] + cache) == 0
    read = lambda name: json.loads((out / name / "results.json").read_text())  # noqa: E731
    return out, read("gpt"), read("grid")


def stage_keys(out, kind):
    return {folder.name: json.loads((folder / "done.json").read_text())["key"]
            for folder in sorted((out / "cache").glob(f"{kind}-*")) if folder.is_dir()}


def test_quick_pipeline_writes_every_output(quick_run):
    out, results, _ = quick_run
    assert set(results) >= {"config", "precision", "machine", "timing", "arms", "tests", "bases", "numbers",
                            "animals", "matched", "teachers"}
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
            assert [r["init"] for r in stats["replicates"]] == names[shift:] + names[:shift]
            for r in stats["replicates"]:
                assert r["dlogp"] == pytest.approx(math.log(r["p_after"] / r["p_before"]))
    animals = results["animals"]
    assert animals["animals"] == QUICK_CONFIG.animals and set(animals["tests"]) == set(QUICK_CONFIG.animals)
    hist = results["matched"]["histograms"]
    assert hist["matched"]["length"] == hist["matched_control"]["length"]
    assert hist["matched"]["separator"] == hist["matched_control"]["separator"]
    for png in ("gpt_arms.png", "gpt_matrix.png", "gpt_animals.png", "gpt_curves.png", "gpt_bases.png"):
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
    best = results["best_variant"]
    expected |= {digest(key_of(arm_student(cfg, best, "student", bases, i, animal)), 12)
                 for animal in cfg.animals for i in range(cfg.bases)}
    expected |= {digest(key_of(arm_student(cfg, best, arm, bases, i)), 12)
                 for arm in ("matched", "matched_control") for i in range(cfg.bases)}
    gpt_students = {name.rsplit("-", 1)[1] for name in results["built"] if name.startswith("student-")}
    assert gpt_students == expected
    grid_students = {name.rsplit("-", 1)[1] for name in grid["built"] if name.startswith("student-")}
    assert not grid_students & gpt_students  # the grid reused make gpt's students instead of rebuilding
    for key in stage_keys(out, "student").values():
        if key["soft"]:  # soft labels come from the very teacher that wrote the numbers
            assert key["data"]["writer"]["trait"] in cfg.animals


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


@pytest.fixture(scope="module")
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
    # the untreated arms are make gpt's own students, read back from the cache
    hard = gpt["arms"]["hard_full"]
    untreated = [a - b for a, b in zip(hard["student"]["dlogp"], hard["control"]["dlogp"])]
    for part in ("divergence", "defences"):
        assert r[part]["untreated"]["transfer"]["values"] == pytest.approx(untreated)
        for name, t in r[part]["treated"].items():
            assert "unavailable" in t or t["transfer"]["n"] == n, name
    assert set(r["defences"]["treated"]) >= {"shuffle_within", "shuffle_across", "rerender", "drop_entangled",
                                             "greedy"} | {f"dilute_{x:g}" for x in SIGNALS_QUICK["dilutions"]}
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
        if treatment["data"] == "dilute":
            assert treatment["mix_with"]["writer"]["name"] == student["init"]["name"]  # the control's numbers
            assert student["data"]["writer"]["trait"] == QUICK_CONFIG.target
        if treatment["positions"] != "all":
            teacher, base = treatment["compare"]
            assert teacher["trait"] == QUICK_CONFIG.target and base["name"] == student["init"]["name"]


def test_a_rerun_rebuilds_nothing_and_a_damaged_stage_is_rebuilt_the_same(quick_run, capsys):
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
    capsys.readouterr()
    assert main(argv) == 0
    log = capsys.readouterr().out
    assert f"cache: {numbers.name} has a damaged pairs.json; rebuilding it" in log
    assert f"cache: {lora.name} was left half-built; rebuilding it" in log
    rebuilt = json.loads((out / "gpt" / "results.json").read_text())
    assert sorted(rebuilt["built"]) == sorted([numbers.name, lora.name])
    assert (numbers / "pairs.json").read_bytes() == payload
    # the LoRA adapter is seeded from the stage's spec: the rebuilt student equals the first bit for bit
    assert json.loads((lora / "done.json").read_text())["info"] == lora_info
    assert rebuilt["arms"] == results["arms"]


def test_a_second_run_waits_for_the_stage_the_first_is_building(tmp_path):
    started, release, builds = threading.Event(), threading.Event(), []

    def slow_build(folder):
        builds.append(folder.name)
        started.set()
        release.wait(10)
        (folder / "x.txt").write_text("x")
        return {"n": 1}

    lines = []
    first = threading.Thread(target=lambda: StageCache(tmp_path, lines.append).stage("s", {"k": 1}, slow_build))
    first.start()
    started.wait(10)
    second_cache = StageCache(tmp_path, lines.append)
    second = threading.Thread(target=lambda: second_cache.stage("s", {"k": 1}, slow_build))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # blocked on the lock, not building
    release.set()
    first.join(10)
    second.join(10)
    assert len(builds) == 1 and second_cache.built == []
    assert any("waiting for another run" in line for line in lines)


def test_quick_applies_only_to_flags_not_given(tmp_path):
    cfg, _, out, cache = parse_args(["--quick", "--student-steps", "7"])
    assert cfg.student_steps == 7 and cfg.n_embd == QUICK["n_embd"] and out == "runs/gpt-quick"
    assert cache == "runs/cache-quick"
    cfg, _, _, cache = parse_args(["--student-steps", "7"])
    assert cfg.n_embd != QUICK["n_embd"] and cache == "runs/cache"


@pytest.mark.parametrize("argv, message", [
    (["--variants", "hard_magic"], "--variants must be one of"),
    (["--variants"], "--variants needs at least one value"),
    (["--target", "unicorn"], "--target must be one of"),
    (["--animals", "eagle", "wolf"], "--animals must include the target (owl)"),
    (["--animals", "owl", "owl"], "--animals needs at least two different animals"),
    (["--bases", "2"], "--bases must be at least 3"),
    (["--grid-bases", "7"], "--grid-bases (7) cannot exceed --bases (6)"),
    (["--fork-shared", "1"], "--fork-shared must be below 1"),
    (["--track-every", "0"], "--track-every must be at least 1"),
    (["--n-head", "0"], "--n-head must be at least 1"),
    (["--full-lr", "nan"], "--full-lr must be a finite number"),
    (["--precision", "fp16"], "--precision must be one of"),
    (["--temperature", "-1"], "--temperature must be at least 0"),
])
@pytest.mark.parametrize("entry", [main, grid_main, signals_main, domains_main])
def test_bad_input_is_one_line_before_any_work(entry, argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        entry(argv + ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("argv, message", [
    (["--icl-ks", "0"], "--icl-ks must be at least 1"),
    (["--variant", "soft_magic"], "--variant must be one of"),
    (["--dilutions"], "--dilutions needs at least one value"),
    (["--permutations", "0"], "--permutations must be at least 1"),
    (["--dilutions", "0.5", "1.5"], "--dilutions must not exceed 1"),
])
def test_bad_signals_input_is_one_line_before_any_work(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        signals_main(argv + ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_an_output_that_is_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    assert main(["--quick", "--out", str(tmp_path / "file"), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a folder" in err and len(err.splitlines()) == 1


def test_a_context_too_short_for_the_corpus_names_the_flag(capsys, tmp_path):
    assert main(["--quick", "--block-size", "8", "--out", str(tmp_path), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--block-size (8) is shorter than a corpus item" in err and len(err.splitlines()) == 1


def test_stage_timing_counts_each_stage_once_not_again_in_the_stages_that_need_it(tmp_path):
    clock = FakeClock()
    cache = StageCache(tmp_path, lambda line: None, clock)

    def inner(folder):
        clock.advance(0.2)
        return {}

    def outer(folder):
        clock.advance(0.01)
        cache.stage("inner", {"k": 1}, inner)  # an upstream stage built on demand
        clock.advance(0.04)
        return {}

    cache.stage("outer", {"k": 2}, outer)
    assert cache.timing == {"inner": pytest.approx(0.2), "outer": pytest.approx(0.05)}
    assert sum(cache.timing.values()) == pytest.approx(clock())  # the two stages, each counted once


def test_auto_precision_times_a_real_pretraining_step_and_records_it():
    from experiments.gpt import resolve_precision
    from minisub.log import Progress
    cfg, record = resolve_precision(ExperimentConfig(**{**QUICK, "precision": "auto"}), Progress())
    assert cfg.precision in ("fp32", "bf16") and record["requested"] == "auto" and record["timed"] == "step"
    assert (cfg.precision == "bf16") == (record["bf16_speedup"] >= 1.3)
    fixed, record = resolve_precision(ExperimentConfig(**QUICK), Progress())
    assert fixed.precision == "fp32" and record["timed"] == "matmuls"
