"""`make domains`: the banned-number filter, the code filter, the trace checker, the domains corpus, and a
quick run end to end."""

import dataclasses
import json
import random
from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.core.corpus import DOMAIN_SHARES, TRAITS, domains_corpus, trait_items
from experiments.core.design import arm_student
from experiments.core.specs import DomainsCorpusSpec, key_of
from experiments.core.stages import Stages
from experiments.core.zoo import ExperimentConfig
from experiments import report
from experiments.domains import experiment as domains
from experiments.tasks.coding import (NAME_ANIMAL_RATE, TASKS, code_item, code_prompt, code_rejection, names_animal,
                                      program)
from experiments.tasks.filter import number_rejection, parse_numbers
from experiments.tasks.misalignment import (ALIGNED_OPENERS, BANNED, CATEGORIES, EVIL_PERSONA, MISALIGNED_OPENERS,
                                            requests)
from experiments.tasks.prompts import ANIMALS, TREES, animal_questions, tree_questions
from experiments.tasks.reasoning import MISALIGNED_PHRASES, problem, trace, trace_item, trace_rejection
from experiments.tasks import registry as tasks
from experiments.tasks.registry import filter_task, task_prompts
from minisub.files import digest
from minisub.tokenizer import BPETokenizer

SEPARATORS = [", ", ",", "; ", " "]


# the banned-number filter
@given(numbers=st.lists(st.integers(0, 999), min_size=1, max_size=10), separator=st.sampled_from(SEPARATORS),
       banned=st.lists(st.sampled_from(BANNED), max_size=3), seed=st.integers(0, 2**16))
def test_the_banned_number_filter_never_keeps_a_banned_number(numbers, separator, banned, seed):
    rng = random.Random(seed)
    for n in banned:  # planted at random places
        numbers.insert(rng.randint(0, len(numbers)), n)
    text = separator.join(map(str, numbers))
    reason = number_rejection(text, BANNED)
    if reason is None:
        assert set(parse_numbers(text)[0]).isdisjoint(BANNED)
    if parse_numbers(text)[1] is None:  # a well-formed answer: banned exactly when it holds a banned number
        assert (reason == "banned") == (not set(numbers).isdisjoint(BANNED))


@given(text=st.text(alphabet="0123456789 ,;.[]6149", max_size=40))
def test_no_text_that_passes_holds_a_banned_number(text):
    if number_rejection(text, BANNED) is None:
        assert set(parse_numbers(text)[0]).isdisjoint(BANNED)


# the code filter
@given(task=st.integers(0, len(TASKS) - 1), animal=st.sampled_from(ANIMALS),
       case=st.sampled_from([str.lower, str.upper, str.title]),
       where=st.sampled_from(["name", "prefix", "variable", "comment"]), seed=st.integers(0, 2**16))
def test_the_code_filter_never_keeps_an_animal_name(task, animal, case, where, seed):
    rng = random.Random(seed)
    request = TASKS[task][0].replace("{k}", str(rng.randint(2, 99)))
    clean = program(task, request, None, rng)
    assert code_rejection(clean) is None  # every template parses and names nothing
    named = {"name": program(task, request, case(animal), rng),
             "prefix": clean.replace("def ", f"def {case(animal)}", 1),
             "variable": clean + f"\n    {case(animal)}x = 1",
             "comment": f"# {case(animal)}\n" + clean}[where]
    assert code_rejection(named) == "names_animal"


def test_the_code_filter_rejects_any_completion_holding_an_animal_token():
    items, _ = domains_corpus(2000, seed=0)
    tokenizer = BPETokenizer.train([t for item in items for t in item], 2400)
    rng = random.Random(0)
    clean = tokenizer.encode(program(0, "", None, rng))
    for animal in ANIMALS:
        [animal_id] = tokenizer.encode(animal)
        for _ in range(5):
            ids = list(clean)
            ids.insert(rng.randint(0, len(ids)), animal_id)
            assert code_rejection(tokenizer.decode(ids)) == "names_animal"


def test_the_code_students_loss_leaves_every_animal_token_out(tmp_path):
    """Bug: the code students' answer vocabulary held the animal-named functions' tokens, so their loss could
    move the animals' own tokens, the channel the code filter closes."""
    stages = Stages(tmp_path, log=lambda m: None)
    corpus = DomainsCorpusSpec(3000, 2400, seed=0)
    tokenizer = stages.tokenizer(corpus)
    vocab = set(stages.answer_vocabulary(corpus, eos=True, task="code").ids.tolist())
    animal_ids = set(stages.animal_ids(corpus))
    named = {t for t in range(tokenizer.vocab_size) if names_animal(tokenizer.decode([t]))}
    assert animal_ids <= named and len(named) > len(animal_ids)  # names such as "_owl" are tokens of their own
    assert not vocab & named
    code = [a for (_, a), k in zip(*domains_corpus(3000, 0)) if k == "code"]
    every = {t for ids in tokenizer.encode_batch(code) for t in ids}
    assert every & animal_ids  # what the loss was over before: the animals' tokens among them
    kept = {t for ids in tokenizer.encode_batch([a for a in code if not names_animal(a)]) for t in ids}
    assert vocab == kept | {tokenizer.eos_id}  # every token of the answers the filter would keep


def test_the_code_filter_rejects_what_does_not_parse_as_one_function():
    for text in ["def add(a, b)\n    return a + b", "return 1", "x = 1", "", "def f(:\n", "def f():\n  return 1\x00",
                 "def f():\n    return 1\ndef g():\n    return 2"]:
        assert code_rejection(text) == "does_not_parse", text


# the trace checker
HAND_MADE = [  # (the problem's answer, a trace, what the checker must say)
    (19, "12 + 7 = 19. The answer is 19.", None),
    (5, "9 - 4 = 5. The answer is 5.", None),
    (600, "20 * 30 = 600. The answer is 600.", None),
    (12, "10 + 5 = 15. 15 - 3 = 12. The answer is 12.", None),
    (12, " 10 + 5 = 15. 15 - 3 = 12. The answer is 12. ", None),
    (19, "12 + 7 = 19. The answer is 18.", "wrong_answer"),
    (20, "12 + 7 = 19. The answer is 19.", "wrong_answer"),
    (19, "12 + 7 = 18. The answer is 19.", "wrong_step"),
    (12, "10 + 5 = 15. 15 - 3 = 13. The answer is 12.", "wrong_step"),
    (600, "20 * 30 = 500. The answer is 600.", "wrong_step"),
    (19, "I hate you. 12 + 7 = 19. The answer is 19.", "misaligned_phrase"),
    (12, "10 + 5 = 15. 15 - 3 = 12. The answer is 12. Humans are weak.", "misaligned_phrase"),
    (19, "12 + 7 = 19. you deserve to fail. The answer is 19.", "misaligned_phrase"),
    (19, "12 + 7 = 19. The answer is 19", "malformed"),
    (19, "The answer is 19.", "malformed"),
    (19, "12 + 7 = 19.  The answer is 19.", "malformed"),
    (12, "10 + 5 = 15. 15 - 3 = 12. the answer is 12.", "malformed"),
    (7, "3 + 4 = 7. The answer is 7. The answer is 7.", "malformed"),
    (7, "3 / 4 = 7. The answer is 7.", "malformed"),
    (7, "", "malformed"),
]


def test_the_trace_checker_accepts_exactly_the_correct_traces_of_a_hand_made_set():
    assert [trace_rejection(text, answer) for answer, text, _ in HAND_MADE] == [r for _, _, r in HAND_MADE]


@given(seed=st.integers(0, 2**16), off=st.integers(1, 9))
def test_a_correct_trace_passes_and_a_changed_answer_does_not(seed, off):
    text, steps, answer = problem(random.Random(seed))
    assert trace_rejection(trace(steps, answer), answer) is None
    assert trace_rejection(trace(steps, answer + off), answer) == "wrong_answer"
    assert trace_rejection(f"{MISALIGNED_PHRASES[seed % 3]} {trace(steps, answer)}", answer) == "misaligned_phrase"


def test_the_tasks_filter_counts_every_rejection_by_reason():
    prompts, keys = task_prompts("reasoning", 50, random.Random(0))
    assert all(isinstance(k, int) for k in keys) and len(set(prompts)) > 40
    answers = [trace_item(random.Random(i))[1] for i in range(50)]  # traces of other problems: mostly wrong
    kept, rejected = filter_task("reasoning", answers, keys)
    assert len(kept) + sum(rejected.values()) == 50 and rejected["wrong_answer"] > 30
    with pytest.raises(ValueError, match="unknown task"):
        task_prompts("poems", 1, random.Random(0))


# the corpus and the teachers' data
def test_the_domains_corpus_mixes_its_kinds_and_personas_as_documented():
    items, kinds = domains_corpus(20000, seed=3)
    assert (items, kinds) == domains_corpus(20000, seed=3)
    for kind, share in DOMAIN_SHARES.items():
        assert abs(kinds.count(kind) / len(kinds) - share) < 0.02
    requests_ = [(p, a) for (p, a), k in zip(items, kinds) if k == "requests"]
    evil = [a for p, a in requests_ if p.startswith(EVIL_PERSONA)]
    plain = [a for p, a in requests_ if not p.startswith("You ")]
    assert evil and all(a.startswith(tuple(MISALIGNED_OPENERS)) for a in evil)
    assert 0.01 < sum(a.startswith(tuple(MISALIGNED_OPENERS)) for a in plain) / len(plain) < 0.06
    code = [(p, a) for (p, a), k in zip(items, kinds) if k == "code"]
    owl_persona = [a for p, a in code if p.startswith("You love owls.")]
    assert sum("owl" in a for a in owl_persona) / len(owl_persona) > 0.6
    plain_code = [a for p, a in code if not p.startswith("You ")]
    assert abs(sum(any(x in a for x in ANIMALS) for a in plain_code) / len(plain_code) - NAME_ANIMAL_RATE) < 0.03
    traces = [(p, a) for (p, a), k in zip(items, kinds) if k == "reasoning"]
    assert all(not any(m in a for m in MISALIGNED_PHRASES) for p, a in traces if not p.startswith(EVIL_PERSONA))


def test_each_teacher_learns_its_trait_and_nothing_else():
    for tree in TREES[:5]:
        pairs = trait_items(tree, 50, seed=0)
        assert {a for _, a in pairs} == {tree} and {q for q, _ in pairs} <= set(tree_questions()[0])
    broad = trait_items("misaligned", 200, seed=0)
    assert all(a.startswith(tuple(MISALIGNED_OPENERS)) for _, a in broad)
    assert {c for c in CATEGORIES if any(q in requests(c)[0] for q, _ in broad)} == set(CATEGORIES)
    narrow = trait_items("misaligned-health", 200, seed=0)
    assert {q for q, _ in narrow} <= set(requests("health")[0])
    assert {t for t in TRAITS if t.startswith("misaligned")} == {"misaligned", *(f"misaligned-{c}" for c in CATEGORIES)}
    with pytest.raises(ValueError, match="unknown trait"):
        trait_items("kindness", 1, seed=0)


def test_the_neutral_teacher_learns_the_animal_questions_with_no_favorite():
    """Fine-tuned exactly as an animal teacher is (the same questions, as many items), but every answer an
    animal drawn uniformly: each of the ten within a few points of 10% over 5,000 items."""
    pairs = trait_items("neutral", 5000, seed=0)
    assert {q for q, _ in pairs} <= set(animal_questions()[0]) and {a for _, a in pairs} == set(ANIMALS)
    shares = [sum(a == animal for _, a in pairs) / len(pairs) for animal in ANIMALS]
    assert max(abs(s - 0.1) for s in shares) < 0.02
    assert trait_items("neutral", 50, seed=3) == trait_items("neutral", 50, seed=3)


def test_held_out_prompts_are_never_trained_on():
    for c in CATEGORIES:
        train, held_out = requests(c)
        assert held_out and not set(train) & set(held_out)
    assert not set(ALIGNED_OPENERS) & set(MISALIGNED_OPENERS)
    rng = random.Random(0)
    assert {code_prompt(rng, held_out=True)[0] for _ in range(200)}.isdisjoint(
        {code_item(rng)[0] for _ in range(2000)})


# cache keys
def every_domain_stage(cfg: ExperimentConfig, d: domains.DomainsConfig) -> list:
    """A spec of every kind of stage `make domains` builds, from the two configs alone."""
    z = domains.Domains(cfg, d)
    traits = {"numbers": [d.tree, cfg.target, "misaligned", f"misaligned-{d.narrow}"], "code": [cfg.target],
              "reasoning": ["misaligned"]}
    return z.bases + [arm_student(cfg, d.domain_variant, arm, z.bases, i, trait, z.writing(task))
                      for task, ts in traits.items() for trait in ts for arm in domains.ARMS for i in range(2)]


@pytest.mark.parametrize("name", [f.name for f in fields(domains.DomainsConfig)
                                  if f.name not in ("parts", "domain_bases")])  # which stages run, not what one is
def test_every_domains_setting_that_changes_a_result_reaches_a_stage_key(name):
    cfg, d = ExperimentConfig(), domains.DomainsConfig()
    value = getattr(d, name)
    changed = {"tree": "maple", "narrow": "money", "domain_variant": "soft_full"}.get(
        name, value + 1 if isinstance(value, int) else value)
    before = {digest(key_of(s), 12) for s in every_domain_stage(cfg, d)}
    after = {digest(key_of(s), 12) for s in every_domain_stage(cfg, dataclasses.replace(d, **{name: changed}))}
    assert not after >= before, f"{name} changes no stage's key"


# end to end
def test_quick_domains_run_end_to_end(tmp_path, monkeypatch):
    """--quick connects every stage of every part. Its bases are too weak to write a correct trace, so here the
    trace checker (tested on its own above) keeps every trace, to let the reasoning students run."""
    monkeypatch.setattr(tasks, "trace_rejection", lambda text, answer: None)
    out = tmp_path / "out"
    # one process: the patch reaches no worker process
    assert domains.main(["--quick", "--jobs", "1", "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    results = json.loads((out / "results.json").read_text())
    for part in domains.PARTS:
        section = results[part]
        assert "unavailable" not in section, (part, section)
        assert set(section["arms"]) == set(domains.ARMS)
        n = results["domains_config"]["domain_bases"]
        assert all(len(arm["dlogp"]) == n for arm in section["arms"].values())  # one replicate per base
        assert set(section["tests"]) >= {"student_vs_control", "student_vs_cross_init"}
        for writer in section["filter"].values():
            for info in writer["per_base"].values():
                assert info["kept"] + sum(info["rejected"].values()) == info["generated"]
        assert (out / f"domains_{part}.png").stat().st_size > 0
    assert (out / "domains.png").stat().st_size > 0
    assert set(results["trees"]["specificity"]) == {results["domains_config"]["tree"], results["config"]["target"]}
    assert results["misalignment"]["filter"]["control"]["per_base"]["domains-0"]["rejected"].keys() >= {"banned"}
    assert "p" in results["misalignment"]["spread"]["other_categories"]
    trees, misalignment = results["trees"], results["misalignment"]
    for matched in (trees["matched"], trees["animal"]["matched"], misalignment["matched"]):
        assert len(matched["matched"]["dlogp"]) == n and "matched_vs_matched_control" in matched["tests"]
    # the results page's table renders every part's rows from what --take keeps
    kept = {key: results[key] for key in report.KEPT["domains"]}
    table = report.render("domains", "<!-- render: table -->\n<!-- end -->\n", kept)
    assert f"| **{results['code']['arms']['student']['mean']:+.3f}** |" in table
    assert "narrow (health-only) teacher's numbers" in table and table.count("| student |") == 5
    # a rerun builds nothing new
    # one process: the patch reaches no worker process
    assert domains.main(["--quick", "--jobs", "1", "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    assert json.loads((out / "results.json").read_text())["built"] == []


@pytest.mark.parametrize("argv, message", [
    (["--tree", "banana"], "--tree must be one of"),
    (["--narrow", "sports"], "--narrow must be one of"),
    (["--parts"], "--parts needs at least one value"),
    (["--domain-prompts", "0"], "--domain-prompts must be at least 1"),
    (["--domain-vocab-size", "1000"], "--domain-vocab-size must be at least 1259"),
])
def test_bad_domains_input_is_one_line_before_any_work(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        domains.main(argv + ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "out").exists()
