"""Why siblings transfer or not, read in weights: the cosines `make forks` sets beside its transfer shares.

Cloud et al. (2025, Theorem 1) show that one small step of a student imitating a teacher that
shares its initialization moves the student toward the teacher: the step's inner product with
the teacher's own weight change is at least 0. Read across models, the quantity is the cosine
between a teacher's fine-tuning change and the first step a student from another base takes on
that teacher's numbers. Here, per pair and fork point:
- `children`: cosine between the two children's weight changes since the fork, a pair's shared
  direction of travel (near 1 for a late fork, where both change little and alike);
- `self`, `sibling`, `unrelated`: cosine between the child-b teacher's change (teacher minus its
  base) and the first gradient step of a student from b itself, from its sibling a, from the
  pair's unrelated base, on the teacher's numbers less the same step on the student's own
  base's numbers (its control's data): the part of the step that the teacher's numbers add.
All over every weight of the model, flattened into one vector (the tied lm_head counted once).
Each teacher-step cosine is a cached stage of its own (`AlignmentSpec`), so that the worker
processes compute them beside the students.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from experiments.core.specs import BaseSpec, ForkSpec, TeacherSpec, WritingSpec, key_of, label
from experiments.core.stages import Stages
from experiments.core.students import hard_loss
from minisub.checkpoint import weights
from minisub.files import read_tensor_file
from minisub.model import GPT
from minisub.training import STATE_FILE

STEP_EXAMPLES = 256  # the answers a first gradient step is taken on (the first kept ones, as a full batch)


def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Every weight in one vector, in name order."""
    return torch.cat([tensors[name].flatten().double() for name in sorted(tensors)])


def model_vector(model: GPT) -> torch.Tensor:
    return flat(weights(model))


def state_vector(stages: Stages, spec: ForkSpec) -> torch.Tensor:
    """The weights of a stopped run (its training state's model tensors)."""
    tensors = read_tensor_file(stages.fork_state(spec) / STATE_FILE)[0]
    return flat({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a, b, dim=0).item()


def first_step(stages: Stages, model: GPT, start: BaseSpec, data: WritingSpec, examples: int = STEP_EXAMPLES
               ) -> torch.Tensor:
    """Minus the gradient of a hard-label student's loss at `model` (`start`, loaded), on the first `examples`
    answers of `data`."""
    model.train()
    pairs = stages.written_pairs(data)[:examples]
    answers = stages.examples(start.corpus, pairs)
    loss = hard_loss(stages.answer_vocabulary(start.corpus, eos=True).to(start.device))
    model.zero_grad(set_to_none=True)
    packed = answers.batch(list(range(len(answers))), pack_to=model.config.block_size)  # the loss of each alone
    loss(model, packed.to(start.device)).backward()
    return -flat({name: p.grad if p.grad is not None else torch.zeros_like(p)
                  for name, p in model.named_parameters()})


@dataclass(frozen=True)
class AlignmentSpec:
    """One teacher-step cosine: `teacher`'s change against the first step of a student from `start` on the
    teacher's numbers (`teacher_data`), less the same step on the start's own numbers (`own_data`)."""
    teacher: TeacherSpec
    start: BaseSpec
    teacher_data: WritingSpec
    own_data: WritingSpec
    examples: int = STEP_EXAMPLES


def alignment(stages: Stages, spec: AlignmentSpec) -> float:
    """The cosine, computed once and cached under its whole spec: a stage of make forks, which the worker processes
    build beside the others (`Job(alignment, (spec,))`)."""
    def build(folder) -> dict:
        change = model_vector(stages.load(spec.teacher)) - model_vector(stages.load(spec.teacher.base))
        start = stages.load(spec.start)  # one model for both steps: each zeroes the gradient first
        step = (first_step(stages, start, spec.start, spec.teacher_data, spec.examples)
                - first_step(stages, start, spec.start, spec.own_data, spec.examples))
        return {"cosine": cosine(change, step)}
    name = f"alignment-{label(spec.teacher)}-from-{spec.start.name}"
    return stages.cache.info(stages.cache.stage(name, key_of(spec), build))["cosine"]
