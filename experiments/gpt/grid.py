"""`python -m experiments.gpt.grid` (`make grid`): the cross-model grid, teacher base x student base.

The paper's strongest evidence (Cloud et al. 2025, Sec. 5) is a grid: a teacher model's
numbers fine-tune a student model, and the trait transfers only where the two share an
initialization (within a model, and between GPT-4.1 and GPT-4o, which share one). Here the
models are the zoo's (experiments/core/zoo.py): the first --grid-bases main bases, the fork pair
(two bases that share the first half of pretraining) and the other-architecture base. Cell
(teacher t, student s) is the shift of log P(target) of a student from base s trained on the
numbers of base t's target teacher, minus the shift of s's control (s on its own numbers).
Tests count independent initializations, never cells: the fork pair shares its parent, so it
is one replicate (a *cluster*), and the grid's cells share their bases, so they are not
independent either.
- Diagonal: per student base, its own teacher's cell minus the mean of the other teachers'
  cells in its column, averaged within each cluster, tested > 0 over clusters (one-sided):
  among the main bases (n = --grid-bases), and over the whole zoo (n = --grid-bases + 2).
- Fork pair: in each fork's column, the sibling's cell minus the mean of the unrelated
  teachers' cells, averaged over the two columns; an exact test over teacher labels puts each
  unrelated teacher in the sibling's place. With one pair it cannot go below 1 / (unrelated
  teachers + 1): the grid shows the fork effect, it cannot establish it.
Stages are shared with `make gpt` through the cache.
"""

import sys
from pathlib import Path

from experiments.core.analysis import replicate_record
from experiments.core.cli import experiment_main
from experiments.core.specs import BaseSpec
from experiments.core.stages import Job, Stages
from experiments.core.zoo import ExperimentConfig
from experiments.gpt.experiment import zoo_record
from experiments.gpt.plots import plot_grid
from experiments.gpt import render as page
from minisub.files import write_json
from minisub.stats import paired_greater, sign_flip_greater, summary


def grid_bases(cfg: ExperimentConfig) -> dict[str, BaseSpec]:
    bases = [cfg.main_base(i) for i in range(cfg.grid_bases)] + list(cfg.fork_pair()) + [cfg.other_base()]
    return {base.name: base for base in bases}


def cell(cfg: ExperimentConfig, student: BaseSpec, writer) -> tuple[Job, Job]:
    """What a cell reads: the student from base `student` on `writer`'s numbers, and that base's scores."""
    spec = cfg.student(cfg.grid_variant, student, cfg.numbers(writer))
    return Job(Stages.student, (spec,)), Job(Stages.scores, (student, spec.eval))


def shift(stages: Stages, cfg: ExperimentConfig, student: BaseSpec, writer) -> float:
    trained, start = cell(cfg, student, writer)
    return replicate_record(student.name, student.name, stages.run(start), stages.run(trained), cfg.target)["dlogp"]


def diagonal_test(matrix: dict, names: list[str], cluster: dict[str, str]) -> dict:
    """Per student base among `names`: its own teacher's cell minus the mean of the other teachers' cells;
    averaged within each cluster (bases that share an initialization); the clusters' values tested > 0."""
    gaps: dict[str, list[float]] = {}
    for s in names:
        off = sum(matrix[t][s] for t in names if t != s) / (len(names) - 1)
        gaps.setdefault(cluster[s], []).append(matrix[s][s] - off)
    values = {c: sum(g) / len(g) for c, g in gaps.items()}
    return {"diagonal_minus_off": summary(list(values.values())), "per_cluster": values,
            "diagonal_vs_off": paired_greater(list(values.values()), [0.0] * len(values)),
            "diagonal_vs_off_exact": sign_flip_greater(list(values.values()))}


def sibling_test(matrix: dict, pair: list[str], unrelated: list[str]) -> dict:
    """Does a fork's sibling move it more than unrelated teachers do? In each fork's column, the teacher in the
    sibling's place minus the mean of the column's other non-diagonal teachers, averaged over the two columns.
    Exact over teacher labels: under the null the sibling is exchangeable with any unrelated teacher, so each
    of them in turn takes the sibling's place (in both columns); p = the share of those values >= observed."""
    a, b = pair

    def gap(student: str, teacher: str, candidates: list[str]) -> float:
        rest = [matrix[u][student] for u in candidates if u != teacher]
        return matrix[teacher][student] - sum(rest) / len(rest)

    def contrast(in_a: str, in_b: str) -> float:
        return (gap(a, in_a, [b, *unrelated]) + gap(b, in_b, [a, *unrelated])) / 2
    observed = contrast(b, a)
    values = [observed] + [contrast(u, u) for u in unrelated]
    return {"sibling_minus_unrelated": observed, "p": sum(v >= observed for v in values) / len(values),
            "labels": len(values)}


def grid_tests(matrix: dict, kinds: dict, cluster: dict[str, str]) -> dict:
    """kinds: base -> main, fork or other; cluster: base -> the initialization it shares (its parent, or itself)."""
    main = [name for name, kind in kinds.items() if kind == "main"]
    fork = [name for name, kind in kinds.items() if kind == "fork"]
    unrelated = [name for name in kinds if name not in fork]
    cells = [matrix[t][s] for t in kinds for s in kinds
             if t != s and not (t in fork and s in fork) and not (t in main and s in main)]
    return {
        **diagonal_test(matrix, main, cluster),
        "every_base": diagonal_test(matrix, list(kinds), cluster),
        "fork_cells": [matrix[fork[0]][fork[1]], matrix[fork[1]][fork[0]]],
        "unrelated_cells": {"mean": sum(cells) / len(cells), "cells": len(cells)},  # descriptive: cells share bases
        "fork_sibling": sibling_test(matrix, fork, unrelated),
    }


def run(cfg: ExperimentConfig, _, out: Path, stages: Stages, header: dict) -> dict:
    bases = grid_bases(cfg)
    kinds = {name: name.split("-")[0] for name in bases}
    cluster = {name: b.parent.name if b.parent else name for name, b in bases.items()}
    teachers_of = {t: cfg.teacher(b, cfg.target) for t, b in bases.items()}
    stages.prefetch([job for writer in [*bases.values(), *teachers_of.values()] for student in bases.values()
                     for job in cell(cfg, student, writer)]
                    + [Job(Stages.scores, (t, cfg.evaluation(t.base))) for t in teachers_of.values()])
    control = {s: shift(stages, cfg, base, base) for s, base in bases.items()}
    matrix, teachers = {}, {}
    for t, teacher_base in bases.items():
        teacher = teachers_of[t]
        teachers[t] = stages.scores(teacher, cfg.evaluation(teacher_base))["p"][cfg.target]
        matrix[t] = {s: shift(stages, cfg, base, teacher) - control[s] for s, base in bases.items()}
        stages.log(f"grid: teacher {t}: " + ", ".join(f"{s} {v:+.2f}" for s, v in matrix[t].items()))
    results = {
        **header, **stages.work_record(),
        "bases": [{"name": name, **zoo_record(stages, cfg, b), "parent": b.parent.name if b.parent else None}
                  for name, b in bases.items()],
        "teachers_p_target": teachers, "control": control, "matrix": matrix,
        "tests": grid_tests(matrix, kinds, cluster),
    }
    write_json(out / "results.json", results)
    plot_grid(results, out / "grid.png")
    return results


def report(results: dict, out: Path) -> str:
    """The page's own blocks: the matrix and its tests (experiments/gpt/render.py)."""
    return (f"{page.grid_matrix(results)}\n{page.grid_tests(results)}\n"
            f"{results['timing']['total']:.0f}s; wrote {out}/results.json, grid.png")


def main(argv=None) -> int:
    return experiment_main(argv, "python -m experiments.gpt.grid", __doc__, "grid", run, report)


if __name__ == "__main__":
    sys.exit(main())
