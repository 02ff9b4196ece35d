"""Stage specs and cache keys: every field that can change a stage's result changes its key, and
every experiment setting reaches the key of a stage it affects (the bug this guards: sampling
batch and evaluation samples once changed results without changing keys). Also the zoo."""

import dataclasses
import sys
from dataclasses import fields, is_dataclass

import pytest
import torch
from conftest import QUICK_CONFIG

import experiments.core.stages as stages_module
from experiments.core.arms import arm_jobs
from experiments.core.design import DESIGN, arm_student
from experiments.core.specs import BaseSpec, CorpusSpec, EvalSpec, StudentSpec, TeacherSpec, WritingSpec, key_of
from experiments.core.stages import Stages
from experiments.core.students import AnswerVocabulary
from experiments.core.zoo import VARIANTS, ExperimentConfig, next_base
from experiments.domains.experiment import Domains, DomainsConfig
from minisub.files import digest
from minisub.log import Progress


def other_value(value):
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value[:-1] if len(value) > 1 else value + value
    if isinstance(value, tuple):
        return value + (1,)
    raise TypeError(value)


def leaf_changes(spec, path=()):
    """Every spec obtained by changing one leaf field of `spec` (nested specs included), with its path."""
    for f in fields(spec):
        value = getattr(spec, f.name)
        if is_dataclass(value):
            for changed, sub in leaf_changes(value, path + (f.name,)):
                yield dataclasses.replace(spec, **{f.name: changed}), sub
        elif value is not None:
            yield dataclasses.replace(spec, **{f.name: other_value(value)}), path + (f.name,)


CFG = ExperimentConfig()
BASES = [CFG.main_base(i) for i in range(CFG.bases)]


def every_stage_spec(cfg: ExperimentConfig) -> list:
    """One spec of every kind of stage the experiments build, from `cfg` alone."""
    bases = [cfg.main_base(i) for i in range(cfg.bases)]
    fork_a, fork_b = cfg.fork_pair()
    specs = [cfg.corpus(), fork_a, fork_b, cfg.other_base(), cfg.evaluation(bases[0])]
    for variant in VARIANTS:
        specs += [arm_student(cfg, variant, arm, bases, i) for arm in DESIGN for i in range(cfg.bases)]
    specs += [arm_student(cfg, cfg.variants[0], "student", bases, 0, animal) for animal in cfg.animals]
    specs += [cfg.student(cfg.grid_variant, fork_a, cfg.numbers(cfg.teacher(cfg.other_base(), cfg.target)))]
    specs += [cfg.vector_student(bases[0], cfg.numbers(bases[0]), "sgd")]
    return specs


DOMAINS = Domains(CFG, DomainsConfig())


@pytest.mark.parametrize("spec", [BASES[0], CFG.fork_pair()[0], CFG.teacher(BASES[0], "owl"),
                                  CFG.numbers(BASES[1], prompted=True), CFG.evaluation(BASES[0]),
                                  arm_student(CFG, "soft_lora", "matched", BASES, 2), DOMAINS.bases[0],
                                  arm_student(CFG, "hard_full", "cross_init", DOMAINS.bases, 1, "misaligned",
                                              DOMAINS.writing("reasoning"))],
                         ids=lambda s: type(s).__name__)
def test_changing_any_field_of_a_stage_spec_changes_its_key(spec):
    original = digest(key_of(spec), 12)
    paths = []
    for changed, path in leaf_changes(spec):
        assert digest(key_of(changed), 12) != original, path
        paths.append(path)
    assert len(paths) >= len(fields(spec))


def test_the_keys_of_every_stage_stay_those_the_cache_already_holds():
    """Regression: a field added to a spec (a writer's top-p and min-p) must leave, at its default, every key
    cached before it as it was, or every stage would be rebuilt; the digest pins the keys of make gpt's stages."""
    keys = sorted(digest(key_of(s), 12) for s in every_stage_spec(CFG))
    assert len(keys) == 396 and digest(keys, 12) == "98878be4c022"


@pytest.mark.parametrize("field, value", [("top_p", 0.8), ("min_p", 0.1)])
def test_an_added_field_enters_the_key_only_away_from_its_default(field, value):
    spec = CFG.numbers(CFG.teacher(BASES[0], "owl"))
    assert field not in key_of(spec)
    changed = dataclasses.replace(spec, **{field: value})
    assert key_of(changed)[field] == value and digest(key_of(changed), 12) != digest(key_of(spec), 12)
    student = CFG.student("hard_full", BASES[0], changed)  # nested: the student's key changes with its data's
    assert key_of(student)["data"][field] == value


# Settings that choose which stages run (and how results are summarized), not what a stage computes.
SELECTION_ONLY = {"bases", "grid_bases", "variants", "prompted_variants", "grid_variant", "dose_steps"}


CHANGED = {"fork_shared": 0.75, "target": "eagle", "precision": "bf16", "animals": ["owl", "wolf"],
           "variants": ["hard_full"], "prompted_variants": [], "grid_variant": "soft_lora", "bases": 7,
           "n_head": 8, "n_embd": 132, "other_n_embd": 196,  # widths stay multiples of the heads
           "device": "cpu:0"}  # another spelling of this machine's CPU: a device it has


def changed_config(name: str) -> ExperimentConfig:
    return dataclasses.replace(CFG, **{name: CHANGED.get(name, other_value(getattr(CFG, name)))})


@pytest.mark.parametrize("name", [f.name for f in fields(ExperimentConfig) if f.name not in SELECTION_ONLY])
def test_every_setting_that_changes_a_result_reaches_a_stage_key(name):
    before = {digest(key_of(s), 12) for s in every_stage_spec(CFG)}
    after = {digest(key_of(s), 12) for s in every_stage_spec(changed_config(name))}
    assert not after >= before, f"{name} changes no stage's key"


@pytest.mark.parametrize("name", sorted(SELECTION_ONLY))
def test_selection_settings_leave_every_stage_as_it_was(name):
    """Choosing more bases or other variants adds or drops stages; the stages both runs share are the same."""
    cfg = changed_config(name)
    spec = arm_student(cfg, "hard_full", "student", [cfg.main_base(i) for i in range(3)], 0)
    assert key_of(spec) == key_of(arm_student(CFG, "hard_full", "student", BASES, 0))
    assert key_of(cfg.main_base(1)) == key_of(CFG.main_base(1))


def test_the_domains_zoo_is_its_own_and_its_writers_share_prompts():
    """A domains base differs from the main base of the same index in its corpus kind (so in its key) and
    seed; every writer of a domains base answers the same prompts of a task; only numbers ban numbers."""
    domain, main = DOMAINS.bases[0], BASES[0]
    assert domain.corpus.items == DomainsConfig().domain_corpus_items and domain.seed != main.seed
    as_main_corpus = CorpusSpec(domain.corpus.items, domain.corpus.vocab_size, domain.corpus.seed)
    assert key_of(domain.corpus) != key_of(as_main_corpus)
    for task in ("numbers", "code", "reasoning"):
        specs = [DOMAINS.writing(task)(w) for w in (domain, CFG.teacher(domain, "owl"), CFG.teacher(domain, "oak"))]
        assert {(s.seed, s.prompts, s.task) for s in specs} == {(domain.seed, DomainsConfig().domain_prompts, task)}
        assert all(bool(s.banned) == (task == "numbers") for s in specs)


def test_every_spec_kind_is_in_the_coverage_list():
    kinds = {type(s) for s in every_stage_spec(CFG)}
    assert {BaseSpec, EvalSpec, StudentSpec}.issubset(kinds)
    student = arm_student(CFG, "soft_full", "student", BASES, 0)
    assert isinstance(student.data, WritingSpec) and isinstance(student.data.writer, TeacherSpec)


def test_the_zoo_shares_what_it_should_and_nothing_else():
    seeds = [b.seed for b in BASES] + [b.seed for b in CFG.fork_pair()] + [CFG.other_base().seed]
    assert len(set(seeds)) == len(seeds)  # independent seeds everywhere
    assert {dataclasses.replace(b, name="", seed=0) for b in BASES} == {dataclasses.replace(BASES[0], name="", seed=0)}
    fork_a, fork_b = CFG.fork_pair()
    assert fork_a.parent == fork_b.parent and fork_a.parent.parent is None
    assert fork_a.parent.steps + fork_a.steps == CFG.base_steps  # the children finish the parent's run
    other = CFG.other_base()
    assert (other.n_layer, other.n_embd) != (BASES[0].n_layer, BASES[0].n_embd) and other.corpus == BASES[0].corpus


@pytest.mark.parametrize("n", range(2, 12))
def test_cross_init_partners_are_a_derangement(n):
    partners = [next_base(i, n) for i in range(n)]
    assert sorted(partners) == list(range(n)) and all(p != i for i, p in enumerate(partners))


def test_a_base_s_writers_answer_the_same_prompts():
    """Teachers and control of one base share the prompt seed, so their numbers answer the same prompts."""
    base = BASES[3]
    seeds = {CFG.numbers(base).seed, CFG.numbers(CFG.teacher(base, "owl")).seed,
             CFG.numbers(CFG.teacher(base, "wolf")).seed, CFG.numbers(base, prompted=True).seed}
    assert seeds == {base.seed}


def test_every_stage_computes_on_the_configured_device(tmp_path, monkeypatch):
    """--device reaches each place a stage puts a model, a training run, a random stream or the student's
    answer vocabulary: a soft student (its base, teacher and numbers upstream) and its start's scores,
    built with device "cpu:0" (a CPU spelled so that a place left on the default "cpu" shows)."""
    seen = []
    load, train, to = stages_module.load_checkpoint, stages_module.train, AnswerVocabulary.to

    class Generator(torch.Generator):  # a generator that says who made it, on which device
        def __new__(cls, *device):
            seen.append((f"generator in {sys._getframe(1).f_code.co_name}", device[0] if device else None))
            return super().__new__(cls, *device)
    monkeypatch.setattr(torch, "Generator", Generator)
    monkeypatch.setattr(stages_module, "load_checkpoint", lambda folder, device: seen.append(("load", device))
                        or load(folder, device))
    monkeypatch.setattr(stages_module, "train", lambda model, data, cfg, **kw: seen.append(("train", cfg.device))
                        or train(model, data, cfg, **kw))
    monkeypatch.setattr(AnswerVocabulary, "to", lambda self, device: seen.append(("vocabulary", device))
                        or to(self, device))
    cfg = dataclasses.replace(QUICK_CONFIG, device="cpu:0")
    stages = Stages(tmp_path, Progress())
    for job in arm_jobs(cfg, "soft_full", "student", [cfg.main_base(0)])[0]:
        stages.run(job)
    # as the stages name it; scoring takes its random stream's device from the model it scores
    named = {place for place, device in seen if device == "cpu:0"}
    assert named == {"load", "train", "vocabulary", "generator in answer"}, seen
    assert {device for _, device in seen if isinstance(device, str)} == {"cpu:0"}, seen
    assert ("generator in evaluate_options", torch.device("cpu")) in seen, seen
    assert sum(place == "train" for place, _ in seen) == 3  # base, teacher, student
