"""`python -m experiments.smol` (`make smol`): the paper's protocol on SmolLM2-135M-Instruct, in minisub's engine.

Exploratory throughout (results.json says so): nothing here was pre-registered, and every
replicate shares one pretrained base, so the unit of replication is weaker than in `make gpt`
(independent teacher samples and student seeds, not independent initializations).

1. entanglement (Zur et al. 2025): for each animal, the numbers whose probability as the next
   item of a number list rises most under the animal's system prompt; then subliminal
   prompting: P(animal) after "You love {n}" for those numbers against random ones, and
   against the other animals' numbers (diagonal), tested over the five animals.
2. transfer (Cloud et al. 2025, Sec. 3, open-model setting): the teacher is SmolLM2 under the
   animal's system prompt (no fine-tuning); it continues number lists, the paper's filter keeps
   the clean answers; a LoRA student (all projections) learns them without the system prompt.
   Control: the same model's numbers without the system prompt. The five-animal matrix of
   log P shifts against the control student, and its diagonal test.
3. lora_rank ("Subliminal Learning is a LoRA Artifact", arXiv 2606.00831): the same owl and
   control data learned with LoRA of several ranks and with full fine-tuning.

Every stage (a teacher's numbers, a student's scores, the entanglement measures) is a function
of one spec (experiments/smol/stages.py), kept in the stage cache the language experiments share
under that spec, so an interrupted run continues where it stopped, a larger one reuses what a
smaller one built, and `--jobs` worker processes build the stages in parallel.
"""

from dataclasses import dataclass
from pathlib import Path

from experiments.core.cli import experiment_main
from experiments.core.stages import Job, Stages
from experiments.smol.plots import plot_entanglement, plot_lora_rank, plot_transfer
from experiments.smol.prompts import ANIMALS, QUESTIONS
from experiments.smol.stages import (EntanglementSpec, ModelSpec, NumbersSpec, ScoringSpec, SmolStudentSpec,
                                     TuningSpec, WriterSpec, chat, entanglement, numbers, student, writer_scores)
from minisub.config import ConfigError, check, option
from minisub.files import FileError, file_sha256, write_json
from minisub.log import Progress
from minisub.seeds import MAX_SEED
from minisub.stats import sign_flip_greater, summary
from minisub.weights import CACHE, MEMBER

PARTS = ("entanglement", "transfer", "lora_rank")
CONTROL = "control"  # the teacher without a system prompt
FINETUNED = "-finetuned"  # "owl-finetuned": the teacher fine-tuned to name owls


@dataclass
class SmolConfig:
    gguf: str = option(str(CACHE / Path(MEMBER).name), "the SmolLM2 GGUF file (`make smol-weights` puts it here)")
    seed: int = option(0, "run seed: every stream (seeds of the prompts, samples, adapters) derives from it", low=0,
                       high=MAX_SEED)
    animals: list[str] = option(list(ANIMALS), "the animals (the paper's five)", choices=ANIMALS, nonempty=True,
                                quick=["owl", "eagle"])
    questions: int = option(50, "one-word evaluation questions", low=1, high=len(QUESTIONS), quick=3)
    contexts: int = option(2, "entanglement: number lists whose next number is scored", low=1, quick=1)
    top: int = option(10, "entanglement: numbers per animal (those whose probability rises most)", low=1, quick=2)
    prompting_questions: int = option(10, "entanglement: questions per subliminal prompt", low=1,
                                      high=len(QUESTIONS), quick=2)
    examples: int = option(48, "transfer: filtered answers per teacher and replicate", low=1, quick=4)
    sample_batch: int = option(64, "transfer: answers sampled at once", low=1, quick=8)
    max_rounds: int = option(40, "transfer: sampling rounds before a teacher with too few answers is an error",
                             low=1)
    max_new_tokens: int = option(52, "transfer: longest answer in tokens (an unfinished answer is rejected; "
                                 "SmolLM2 writes ' 182,' as 5 tokens, so 10 numbers take 50)",
                                 low=1, quick=12)
    temperature: float = option(1.0, "transfer: sampling temperature (the paper's 1)", above=0.0)
    replicates: int = option(1, "transfer: independent teacher samples and student seeds per arm", low=1)
    lora_r: int = option(8, "transfer: the students' LoRA rank (the paper's open-model 8)", low=1)
    lora_alpha: float = option(8.0, "transfer: LoRA alpha (the paper's 8)", above=0.0)
    epochs: float = option(3.0, "students: passes over the data (the paper's 3)", above=0.0, quick=1.0)
    batch_size: int = option(8, "students: examples per step", low=1, quick=2)
    lr: float = option(1e-3, "students: LoRA learning rate (the paper's 2e-4 is for 10,000 answers)", above=0.0)
    full_lr: float = option(2e-5, "lora_rank: learning rate of full fine-tuning", above=0.0)
    ranks: list[int] = option([1, 4, 8, 32, 0], "lora_rank: LoRA ranks to compare, 0 = full fine-tuning", low=0,
                              quick=[1, 0])
    rank_animals: list[str] = option(["owl"], "lora_rank: the animals whose students each rank trains",
                                     choices=ANIMALS, nonempty=True)
    finetuned: list[str] = option([], "transfer: animals that also get a fine-tuned teacher: SmolLM2 LoRA-tuned "
                                  "as a student is, to answer other questions with the animal; it writes numbers "
                                  "without a system prompt", choices=ANIMALS)
    parts: list[str] = option(["entanglement", "transfer"], "the parts to run (lora_rank trains 8 more students: "
                              "about as long as the other two together on a CPU)", choices=PARTS, nonempty=True)
    precision: str = option("fp32", "fp32 (exact), or bf16 (autocast matmuls; faster on CPUs with native bf16)",
                            choices=("fp32", "bf16"))
    device: str = option("cpu", "torch device (cpu or cuda)", device=True)

    def __post_init__(self):
        check(self)
        for name in ("animals", "rank_animals", "finetuned"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ConfigError(name, "names an animal twice")
        if not set(self.rank_animals) <= set(self.animals):
            raise ConfigError("rank_animals", "must be among --animals (their teachers' data is reused)")
        if not set(self.finetuned) <= set(self.animals):
            raise ConfigError("finetuned", "must be among --animals (their students are measured against them)")


@dataclass(frozen=True)
class Specs:
    """The specs of the run's stages, from its config: which writer, numbers and students each part reads."""
    cfg: SmolConfig
    model: ModelSpec

    def tuning(self, rank: int) -> TuningSpec:
        """LoRA of `rank` (alpha / r as the transfer's) with the LoRA learning rate, or full fine-tuning (0)."""
        cfg = self.cfg
        if rank == 0:
            return TuningSpec(0, 0.0, cfg.epochs, cfg.batch_size, cfg.full_lr)
        return TuningSpec(rank, cfg.lora_alpha * rank / cfg.lora_r, cfg.epochs, cfg.batch_size, cfg.lr)

    def writer(self, name: str) -> WriterSpec:
        """"control", an animal (its system prompt) or "owl-finetuned"."""
        if name == CONTROL:
            return WriterSpec(self.model, None, seed=self.cfg.seed)
        if name.endswith(FINETUNED):
            return WriterSpec(self.model, name.removesuffix(FINETUNED), self.tuning(self.cfg.lora_r), self.cfg.seed)
        return WriterSpec(self.model, name, seed=self.cfg.seed)

    @property
    def scoring(self) -> ScoringSpec:
        return ScoringSpec(self.cfg.questions, tuple(self.cfg.animals))

    def numbers(self, writer: str, replicate: int) -> NumbersSpec:
        cfg = self.cfg
        return NumbersSpec(self.writer(writer), replicate, cfg.seed, cfg.examples, cfg.sample_batch, cfg.max_rounds,
                           cfg.max_new_tokens, cfg.temperature)

    def student(self, writer: str, replicate: int, rank: int) -> SmolStudentSpec:
        return SmolStudentSpec(self.numbers(writer, replicate), self.tuning(rank), self.scoring)

    def entanglement(self) -> EntanglementSpec:
        cfg = self.cfg
        return EntanglementSpec(self.model, tuple(cfg.animals), cfg.contexts, cfg.top, cfg.prompting_questions,
                                cfg.seed)

    def writers(self) -> list[str]:
        """The transfer's writers: each animal's system prompt, the control, the fine-tuned teachers."""
        return self.cfg.animals + [CONTROL] + [a + FINETUNED for a in self.cfg.finetuned]

    def students(self) -> list[SmolStudentSpec]:
        """Every student the run's parts read."""
        cfg, replicates = self.cfg, range(self.cfg.replicates)
        wanted = []
        if "transfer" in cfg.parts:
            wanted += [self.student(w, r, cfg.lora_r) for w in self.writers() for r in replicates]
        if "lora_rank" in cfg.parts:
            wanted += [self.student(w, r, rank) for rank in cfg.ranks for w in cfg.rank_animals + [CONTROL]
                       for r in replicates]
        return list(dict.fromkeys(wanted))


def prefetch(stages: Stages, specs: Specs) -> None:
    """Have the workers build every stage the parts read: first what needs only the model (the entanglement,
    the writers' scores and numbers), then the students, which read the numbers."""
    students = specs.students()
    first = [Job(numbers, (spec.data,)) for spec in students]
    if "entanglement" in specs.cfg.parts:
        first.insert(0, Job(entanglement, (specs.entanglement(),)))
    if "transfer" in specs.cfg.parts:
        first += [Job(writer_scores, (specs.writer(w), specs.scoring)) for w in specs.writers()]
    stages.prefetch(list(dict.fromkeys(first)))
    stages.prefetch([Job(student, (spec,)) for spec in students])


def filter_record(stages: Stages, spec: NumbersSpec) -> dict:
    """What the filter kept and rejected of one writer's answers, with three kept lists as text."""
    written, tokenizer = numbers(stages, spec), chat(stages, spec.writer.model).tokenizer
    return {k: v for k, v in written.items() if k != "kept"} | {
        "examples": [tokenizer.decode(item["begun"] + item["answer"]) for item in written["kept"][:3]]}


def log_shift(after: dict, before: dict, animal: str) -> float:
    return after["logp"][animal] - before["logp"][animal]


def diagonal_test(matrix: dict[str, dict[str, float]], animals: list[str]) -> dict:
    """Per animal, its own teacher's shift minus the mean of the other teachers' shifts of it; tested > 0 over
    the animals (exact sign-flip, one-sided)."""
    if len(animals) < 2:
        return {"per_animal": {}, "p": float("nan")}
    d = {a: matrix[a][a] - sum(matrix[t][a] for t in animals if t != a) / (len(animals) - 1) for a in animals}
    return {"per_animal": d, **summary(list(d.values())), "p": sign_flip_greater(list(d.values()))}


# 1. entanglement
def entanglement_part(stages: Stages, specs: Specs) -> dict:
    e = entanglement(stages, specs.entanglement())
    animals = specs.cfg.animals
    column = {a: i for i, a in enumerate(animals)}

    def mean_logp(ns, animal):
        return sum(e["prompted_logp"][str(n)][column[animal]] for n in ns) / len(ns)
    vs_random = {a: mean_logp(e["top"][a], a) - mean_logp(e["random"], a) for a in animals}
    matrix = {t: {a: mean_logp(e["top"][t], a) - mean_logp(e["random"], a) for a in animals} for t in animals}
    result = {**e, "vs_random": {"per_animal": vs_random, **summary(list(vs_random.values())),
                                 "p": sign_flip_greater(list(vs_random.values()))},
              "matrix": matrix, "diagonal": diagonal_test(matrix, animals)}
    stages.log(f"entanglement: own numbers vs random, mean dlogP {result['vs_random']['mean']:+.3f} "
               f"(p {result['vs_random']['p']:.2g}); diagonal p {result['diagonal']['p']:.2g}")
    return result


# 2. transfer
def transfer_part(stages: Stages, specs: Specs) -> dict:
    cfg, replicates = specs.cfg, range(specs.cfg.replicates)
    base = writer_scores(stages, specs.writer(CONTROL), specs.scoring)
    teachers = {a: writer_scores(stages, specs.writer(a), specs.scoring) for a in cfg.animals}
    arms = cfg.animals + [CONTROL]
    students = {t: [student(stages, specs.student(t, r, cfg.lora_r)) for r in replicates] for t in arms}
    written = {t: [filter_record(stages, specs.numbers(t, r)) for r in replicates] for t in arms}
    shifts = {t: {a: [log_shift(students[t][r]["scores"], students[CONTROL][r]["scores"], a) for r in replicates]
                  for a in cfg.animals} for t in cfg.animals}
    matrix = {t: {a: sum(v) / len(v) for a, v in row.items()} for t, row in shifts.items()}
    own = {a: matrix[a][a] for a in cfg.animals}
    result = {"base": base, "teachers": teachers, "students": students, "numbers": written, "shifts": shifts,
              "matrix": matrix,
              "own_shift": {"per_animal": own, **summary(list(own.values())),
                            "p": sign_flip_greater(list(own.values()))},
              "control_shift": {a: [log_shift(students[CONTROL][r]["scores"], base, a) for r in replicates]
                                for a in cfg.animals},
              "diagonal": diagonal_test(matrix, cfg.animals)}
    if cfg.finetuned:
        result["finetuned"] = finetuned_arms(stages, specs, students[CONTROL])
    stages.log(f"transfer: own teacher's numbers vs control, mean dlogP {result['own_shift']['mean']:+.3f} "
               f"(p {result['own_shift']['p']:.2g}); diagonal p {result['diagonal']['p']:.2g}")
    return result


def finetuned_arms(stages: Stages, specs: Specs, control: list[dict]) -> dict:
    """The fine-tuned teachers' arms: each teacher's own scores (does it name its animal?), its students, and
    their log P shift of the animal against the control student; over the animals when there are several."""
    cfg, per_animal = specs.cfg, {}
    for animal in cfg.finetuned:
        arm, replicates = animal + FINETUNED, range(cfg.replicates)
        students = [student(stages, specs.student(arm, r, cfg.lora_r)) for r in replicates]
        per_animal[animal] = {
            "teacher": writer_scores(stages, specs.writer(arm), specs.scoring), "students": students,
            "numbers": [filter_record(stages, specs.numbers(arm, r)) for r in replicates],
            "shift": [log_shift(students[r]["scores"], control[r]["scores"], animal) for r in replicates]}
    means = [sum(a["shift"]) / len(a["shift"]) for a in per_animal.values()]
    return {"per_animal": per_animal, **summary(means),
            "p": sign_flip_greater(means) if len(means) > 1 else float("nan")}


# 3. LoRA rank against full fine-tuning
def lora_rank_part(stages: Stages, specs: Specs) -> dict:
    cfg, replicates = specs.cfg, range(specs.cfg.replicates)
    settings = {}
    for rank in cfg.ranks:
        per = {animal: [log_shift(student(stages, specs.student(animal, r, rank))["scores"],
                                  student(stages, specs.student(CONTROL, r, rank))["scores"], animal)
                        for r in replicates] for animal in cfg.rank_animals}
        values = [v for vs in per.values() for v in vs]
        settings["full" if rank == 0 else f"r{rank}"] = {"rank": rank, "per_animal": per, **summary(values)}
        stages.log(f"lora_rank: {'full fine-tuning' if rank == 0 else f'rank {rank}'}: dlogP "
                   f"{summary(values)['mean']:+.3f}")
    return {"animals": cfg.rank_animals, "settings": settings}


PARTS_RUN = {"entanglement": entanglement_part, "transfer": transfer_part, "lora_rank": lora_rank_part}
PLOTS = {"entanglement": plot_entanglement, "transfer": plot_transfer, "lora_rank": plot_lora_rank}


def require_weights(cfg: SmolConfig, _: None) -> None:
    if not Path(cfg.gguf).is_file():
        raise FileError(f"{cfg.gguf} is missing: `make smol-weights` downloads it")


def as_requested(cfg: SmolConfig, log: Progress) -> tuple[SmolConfig, dict]:
    """The precision the flag names (fp32 or bf16: nothing to time)."""
    log(f"precision: {cfg.precision} (--precision)")
    return cfg, {"requested": cfg.precision, "precision": cfg.precision}


def run(cfg: SmolConfig, _, out: Path, stages: Stages, header: dict) -> dict:
    model = ModelSpec(cfg.gguf, file_sha256(cfg.gguf), cfg.precision, cfg.device)
    specs = Specs(cfg, model)
    parameters = chat(stages, model).model.num_params()
    stages.log(f"model: {cfg.gguf} ({parameters:,} parameters, fp32 weights), {cfg.precision}")
    results = header | {"model": {"file": Path(cfg.gguf).name, "sha256": model.sha256, "parameters": parameters}}
    prefetch(stages, specs)
    for part in cfg.parts:
        results[part] = PARTS_RUN[part](stages, specs)
        results |= stages.work_record()
        write_json(out / "results.json", results)
        PLOTS[part](results, out / f"smol_{part}.png")
    return results


def report(results: dict, out: Path) -> str:
    return f"done in {results['timing']['total']:.0f} s; wrote {out}/results.json and smol_*.png"


def main(argv=None) -> int:
    return experiment_main(argv, "python -m experiments.smol", __doc__, "smol", run, report, config=SmolConfig,
                           check=require_weights, resolve=as_requested)
