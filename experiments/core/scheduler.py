"""Stages in parallel: worker processes build the stages a step needs, in the order their specs dictate.

Between the experiments' steps (experiments/core/arms.py, gpt, grid) and the stages
(experiments/core/stages.py). A step lists the results it will read as `Job`s and calls
`Stages.prefetch`; with `--jobs N` above 1, `Workers` expands them into a graph (a job's
upstream stages are the specs nested in its arguments: a student needs its base and its
numbers, numbers need their writer, a teacher its base, a base its corpus and parent, a
stopped run its stop before) and runs every job whose upstream is done in one of N worker
processes, until all are built. The step
then reads them from the cache as it would have built them.

Every worker, and the main process, computes with one thread, so a stage's result does not
depend on --jobs or on the number of cores (two threads and one sum in different orders). The
cache's per-stage locks keep two processes from building one stage, and a half-built stage has
no done.json, so Ctrl-C (which stops every worker) leaves a cache the next run continues from.
A job that fails in a worker is left to the step, which builds it where it reads it and
reports the error there.

`ClusterWorkers` hands the same jobs to a cluster instead, through submitit (Slurm; its
local executor runs them as subprocesses of this machine): the engine most academic GPU
clusters take, and one that pickles a Python call, runs it on a node and returns its result or
its error, which is all a stage needs. Each job is one task of one CPU; the cache must be on a
filesystem every node sees, and its locks (`flock`) must hold across nodes there (local disks,
NFS v4, Lustre mounted with flock).
"""

import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import fields, is_dataclass
from pathlib import Path

import torch

from experiments.core.cache import counting_flops
from experiments.core.specs import BaseSpec, CorpusSpec, DomainsCorpusSpec, ForkSpec, TeacherSpec, WritingSpec
from experiments.core.stages import Job, Stages
from minisub.log import Progress

# the stages other stages read, by the kind of their spec
PRODUCERS = {CorpusSpec: Stages.corpus, DomainsCorpusSpec: Stages.corpus, BaseSpec: Stages.base,
             ForkSpec: Stages.fork_state, TeacherSpec: Stages.teacher, WritingSpec: Stages.writing}


def producers(value) -> list:
    """The producer specs in `value` (a spec, a tuple of them, a field), not looking inside a producer:
    what it reads in turn is its own job's upstream."""
    if type(value) in PRODUCERS:
        return [value]
    if is_dataclass(value):
        return [p for f in fields(value) for p in producers(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [p for item in value for p in producers(item)]
    return []


def upstream(job: Job) -> list[Job]:
    """The jobs whose stages `job` reads while it builds."""
    spec = job.args[0]
    if PRODUCERS.get(type(spec)) is job.build:  # a producer: what its spec's fields name
        inner = [p for f in fields(spec) for p in producers(getattr(spec, f.name))]
    else:
        inner = producers(job.args)
    return [Job(PRODUCERS[type(p)], (p,)) for p in inner]


def expand(jobs: list[Job]) -> dict[Job, list[Job]]:
    """Every job and every stage upstream of one, each with its upstream jobs; the jobs in the order given (the
    workers start them in that order: a step lists its longest first)."""
    graph: dict[Job, list[Job]] = {}
    todo = list(reversed(jobs))
    while todo:
        job = todo.pop()
        if job not in graph:
            graph[job] = upstream(job)
            todo += graph[job]
    return graph


worker: Stages | None = None  # a worker process's own Stages, on the run's cache
worker_life = ExitStack()  # what stays on for a worker's life (its FLOP count), which the run's end ends


def start_worker(cache_root: Path, start: float, count_flops: bool) -> None:
    global worker
    torch.set_num_threads(1)
    flops = worker_life.enter_context(counting_flops()) if count_flops else None
    worker = Stages(cache_root, Progress(start=start), flops)  # progress times counted from the run's start


def work(job: Job) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Build one job in a worker; what it built and what that took per stage kind (StageCache.spent), for the
    run's record."""
    worker.cache.built, worker.cache.spent = [], {meter: {} for meter in worker.cache.meters}
    worker.run(job)
    return worker.cache.built, worker.cache.spent


def work_alone(cache_root: Path, count_flops: bool, job: Job) -> tuple[list[str], dict[str, dict[str, float]]]:
    """`work` in a process of its own (a cluster job)."""
    start_worker(cache_root, time.perf_counter(), count_flops)
    return work(job)


class Workers:
    """`jobs` single-threaded worker processes on one stage cache, started on first use; count_flops: each
    meters its stages' FLOPs too."""

    def __init__(self, jobs: int, cache_root: Path, log: Progress, count_flops: bool = False):
        self.jobs, self.cache_root, self.log, self.count_flops = jobs, cache_root, log, count_flops
        self.pool: ProcessPoolExecutor | None = None
        self.done: set[Job] = set()  # built (or found built) by a worker in this run: a later step's
        # prefetch of the same job need not send it again

    def submit(self, job: Job):
        """Start building `job`; a future (`done()`, `result()`)."""
        if self.pool is None:
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=start_worker,
                                            initargs=(self.cache_root, self.log.start, self.count_flops))
        return self.pool.submit(work, job)

    def finished(self, running: dict) -> set:
        """Wait until one of the `running` futures is done; those done."""
        return wait(running, return_when=FIRST_COMPLETED)[0]

    def build(self, stages: Stages, jobs: list[Job]) -> None:
        """Build `jobs` and their upstream stages, each as soon as its upstream is done; record what they took
        in `stages`' cache as if built there."""
        waiting = {job: needs for job, needs in expand(jobs).items() if job not in self.done}
        done, failed, running = self.done, set(), {}
        try:
            while waiting or running:
                for job, needs in list(waiting.items()):
                    if any(n in failed for n in needs):
                        failed.add(job)
                    elif all(n in done for n in needs):
                        running[self.submit(job)] = job
                    else:
                        continue
                    del waiting[job]
                if not running:
                    break
                for future in self.finished(running):
                    job = running.pop(future)
                    try:
                        built, spent = future.result()
                    except BrokenProcessPool:
                        raise
                    except Exception as err:  # built again, and reported, where the step reads it
                        failed.add(job)
                        self.log(f"workers: {job.build.__name__} of {type(job.args[0]).__name__} failed ({err}); "
                                 "it is built again where it is read")
                        continue
                    done.add(job)
                    stages.cache.add(spent, built)
        except BrokenProcessPool:  # a worker died (out of memory?): the step builds the rest where it reads it
            self.log("workers: a worker process died; the stages left are built in the main process")
            self.close(now=True)
        except BaseException:  # Ctrl-C: stop every worker now (a half-built stage has no done.json)
            self.close(now=True, running=running)
            raise

    def close(self, now: bool = False, running: dict | None = None) -> None:
        """Stop the pool; now: terminate its worker processes at once (and no other child of this process)."""
        if self.pool is not None:
            mine = list(self.pool._processes.values())  # shutdown forgets them; the executor has no public handle
            self.pool.shutdown(wait=not now, cancel_futures=True)
            if now:
                for process in mine:
                    process.terminate()
            self.pool = None


class ClusterWorkers(Workers):
    """Each job a submitit job of one CPU on `cluster` ("slurm", or "local": subprocesses here), its files and
    logs under <cache>/submitit; parameters: submitit's (e.g. slurm_partition, timeout_min)."""

    def __init__(self, cluster: str, cache_root: Path, log: Progress, count_flops: bool = False, poll_s: float = 1.0,
                 **parameters):
        try:
            import submitit  # the optional extra [cluster]
        except ImportError:
            raise ValueError("--cluster needs submitit: pip install 'minisub[cluster]'") from None
        super().__init__(1, cache_root, log, count_flops)  # no local pool: submit hands every job to the cluster
        try:
            self.executor = submitit.AutoExecutor(folder=cache_root / "submitit" / "%j", cluster=cluster)
        except RuntimeError as err:  # e.g. slurm asked for on a machine without srun
            raise ValueError(f"--cluster {cluster}: {err}") from None
        self.executor.update_parameters(cpus_per_task=1, **parameters)
        self.poll_s = poll_s

    def submit(self, job: Job):
        return self.executor.submit(work_alone, self.cache_root, self.count_flops, job)

    def finished(self, running: dict) -> set:
        while not (done := {job for job in running if job.done()}):
            time.sleep(self.poll_s)
        return done

    def close(self, now: bool = False, running: dict | None = None) -> None:
        for job in running or {}:
            job.cancel(check=False)
