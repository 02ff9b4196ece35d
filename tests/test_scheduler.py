"""The stage scheduler (experiments/core/scheduler.py): the graph it builds in, and results that do not
depend on how many worker processes built them."""

import json
import multiprocessing
import os
import time
from dataclasses import replace

import pytest
import torch

from conftest import QUICK_BASES, QUICK_CONFIG, read_results
from experiments.core.arms import arm_jobs
from experiments.core.cache import counting_flops
from experiments.core.cli import parse_args
from experiments.core.scheduler import ClusterWorkers, Workers, expand, upstream
from experiments.core.stages import Job, Stages
from experiments.gpt.experiment import main
from experiments.signals.treated import Treatment, TreatedStudentSpec
from minisub.log import Progress

CFG = QUICK_CONFIG


def test_a_students_upstream_is_its_base_and_its_numbers_and_theirs_down_to_the_corpus():
    base, teacher = QUICK_BASES[0], CFG.teacher(QUICK_BASES[0], "owl")
    student = CFG.student("soft_full", QUICK_BASES[1], CFG.numbers(teacher))  # cross-init: another base
    assert set(upstream(Job(Stages.student, (student,)))) == {Job(Stages.base, (QUICK_BASES[1],)),
                                                              Job(Stages.writing, (CFG.numbers(teacher),))}
    assert upstream(Job(Stages.writing, (CFG.numbers(teacher),))) == [Job(Stages.teacher, (teacher,))]
    assert upstream(Job(Stages.teacher, (teacher,))) == [Job(Stages.base, (base,))]
    assert upstream(Job(Stages.base, (base,))) == [Job(Stages.corpus, (CFG.corpus(),))]
    assert upstream(Job(Stages.corpus, (CFG.corpus(),))) == []
    graph = expand([Job(Stages.student, (student,))])
    assert len(graph) == 6  # student, numbers, teacher, its base, the student's base, the corpus


def test_independent_jobs_are_started_in_the_order_the_step_lists_them():
    """Regression: they were started last first, so a step's longest job, listed first, ran after the rest."""
    jobs = [Job(Stages.base, (base,)) for base in QUICK_BASES]
    assert [job for job in expand(jobs) if job in jobs] == jobs


def test_a_treated_student_also_waits_for_what_its_treatment_mixes_in():
    student = arm_jobs(CFG, "hard_full", "student", QUICK_BASES)[0][0].args[0]
    diluted = TreatedStudentSpec(student, Treatment("dilute", data="dilute", share=0.5,
                                                    mix_with=CFG.numbers(QUICK_BASES[0])))
    from experiments.signals.treated import treated_student
    assert Job(Stages.writing, (CFG.numbers(QUICK_BASES[0]),)) in upstream(Job(treated_student, (diluted,)))


def fails(stages: Stages, spec) -> None:
    raise ValueError(f"no data for {type(spec).__name__}")


def test_a_job_that_fails_in_a_worker_is_left_to_the_step_that_reads_it(tmp_path, capfd):
    workers = Workers(2, tmp_path, Progress())
    stages = Stages(tmp_path, Progress())
    job = Job(fails, (CFG.corpus(),))  # its upstream, the corpus, builds; the job itself fails
    try:
        workers.build(stages, [job])  # no exception here
    finally:
        workers.close()
    assert "workers: fails of CorpusSpec failed (no data for CorpusSpec)" in capfd.readouterr().out
    assert [p.name.split("-")[0] for p in tmp_path.iterdir() if p.is_dir()] == ["corpus"]
    assert stages.cache.built[0].startswith("corpus-") and "corpus" in stages.cache.spent["seconds"]
    with pytest.raises(ValueError, match="no data for CorpusSpec"):
        stages.run(job)


def test_a_stage_built_here_equals_the_one_a_worker_built(quick_run, tmp_path):
    """The quick run's fixture ran with --jobs 2: its bases, teachers, numbers and students were built by
    worker processes. Built again here, in this process with one thread, each is the same bit for bit."""
    out, results, _ = quick_run
    assert results["machine"]["jobs"] == 2 and results["machine"]["threads"] == 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stages = Stages(tmp_path, Progress())
        for variant in ("hard_full", "soft_full"):
            for student, start in arm_jobs(CFG, variant, "student", QUICK_BASES):
                stages.run(student)
                stages.run(start)
    finally:
        torch.set_num_threads(threads)
    built = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert {p.name.split("-")[0] for p in built} == {"corpus", "base", "teacher", "numbers", "student", "scores"}
    for folder in built:
        assert (json.loads((folder / "done.json").read_text())
                == json.loads((out / "cache" / folder.name / "done.json").read_text())), folder.name


def without_timing(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in ("timing", "built", "machine")}


@pytest.mark.slow
def test_one_worker_and_two_give_the_same_results_bit_for_bit(quick_run, tmp_path):
    """The whole of make gpt --quick again, every stage built in the main process."""
    out, results, _ = quick_run
    assert main(["--quick", "--jobs", "1", "--out", str(tmp_path / "gpt"), "--cache", str(tmp_path / "cache")]) == 0
    alone = read_results(tmp_path / "gpt")
    assert alone["machine"]["jobs"] == 1
    assert sorted(alone["built"]) == sorted(results["built"])
    assert json.dumps(without_timing(alone), sort_keys=True) == json.dumps(without_timing(results), sort_keys=True)


def test_two_stages_through_submitit_in_its_local_mode(tmp_path):
    """The cluster path, as on Slurm but with subprocesses of this machine: the corpus, then the base on it."""
    pytest.importorskip("submitit")
    stages = Stages(tmp_path, Progress())
    base = replace(QUICK_BASES[0], steps=2)
    ClusterWorkers("local", tmp_path, Progress(), poll_s=0.2, timeout_min=10).build(stages, [Job(Stages.base, (base,))])
    assert sorted(name.split("-")[0] for name in stages.cache.built) == ["base", "corpus"]
    again = Stages(tmp_path, Progress())
    again.base(base)  # read back, verified, not rebuilt
    assert again.cache.built == []


def test_a_worker_counts_the_flops_of_a_stage_as_this_process_does(tmp_path):
    """--count-flops: a base built by a worker process is metered there and counted here, the same FLOPs as
    the same build in this process."""
    base = replace(QUICK_BASES[0], steps=3)
    stages = Stages(tmp_path / "workers", Progress(), flops=lambda: 0.0)  # a meter here too, as the run has
    workers = Workers(2, tmp_path / "workers", Progress(), count_flops=True)
    try:
        workers.build(stages, [Job(Stages.base, (base,))])
    finally:
        workers.close()
    with counting_flops() as flops:
        here = Stages(tmp_path / "here", Progress(), flops)
        here.base(base)
    assert here.cache.spent["flops"]["base"] > 0
    assert stages.cache.spent["flops"] == here.cache.spent["flops"]


def test_bad_parallel_flags_are_refused_with_one_line(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--jobs", "0"], "gpt", "", "gpt")
    assert "--jobs: must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--cluster-parameter", "timeout_min"], "gpt", "", "gpt")
    assert "expected KEY=VALUE" in capsys.readouterr().err
    *_, parallel = parse_args(["--cluster", "local", "--cluster-parameter", "timeout_min=30"], "gpt", "", "gpt")
    assert parallel.cluster == "local" and dict(parallel.cluster_parameters) == {"timeout_min": 30}


def test_closing_the_workers_at_once_leaves_other_child_processes_alone(tmp_path):
    """Bug: Workers.close(now=True) terminated every multiprocessing child of the process, not only its own."""
    context = multiprocessing.get_context("spawn")
    other = context.Process(target=time.sleep, args=(60,))
    other.start()
    workers = Workers(1, tmp_path, Progress())
    try:
        workers.submit(Job(fails, (CFG.corpus(),))).exception(timeout=60)  # the pool's one worker is up
        mine = list(workers.pool._processes.values())
        workers.close(now=True)
        for process in mine:
            process.join(timeout=30)
        assert [p.is_alive() for p in mine] == [False] and other.is_alive()
    finally:
        other.terminate()
        other.join()


def test_more_jobs_than_cores_are_capped_with_a_line(capsys):
    """Bug: --jobs 1000 on 2 cores started workers until memory ran out."""
    cores = len(os.sched_getaffinity(0))
    *_, parallel = parse_args(["--jobs", str(cores + 998)], "gpt", "", "gpt")
    assert parallel.jobs == cores
    assert f"--jobs {cores + 998} is more than this machine's {cores} cores: using {cores}" in capsys.readouterr().out


def test_slurm_without_srun_is_one_line_before_any_timing(tmp_path, capsys, monkeypatch):
    """Bug: --cluster slurm on a machine without Slurm ended in submitit's RuntimeError, after the precision timing."""
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun on it
    timed = []
    monkeypatch.setattr("experiments.core.cli.resolve_precision", lambda *args: timed.append(args))
    assert main(["--quick", "--cluster", "slurm", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--cluster slurm:" in err and not timed, err
