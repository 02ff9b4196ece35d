"""The imitation loss both halves of the project use: KL(teacher || student) between softmaxes.

The toy students imitate their teacher's auxiliary logits with it; the language students
trained on soft labels imitate the teacher's next-token distribution with it (paper, Sec. 6
and the MNIST experiment). The softmax runs over the last dimension of whatever logits are
given, so passing a slice or a sub-vocabulary restricts the imitation to those outputs.
"""

import torch
import torch.nn.functional as F


def kl_divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(student)) over the last dimension: (..., K) -> (...).

    Computed in float32 at least; zero exactly when the two softmaxes agree. Its gradient with
    respect to the student logits is softmax(student) - softmax(teacher), as for soft-label
    cross-entropy, from which it differs only by the teacher's entropy (a constant).
    """
    dtype = torch.promote_types(teacher_logits.dtype, torch.float32)
    log_p_teacher = F.log_softmax(teacher_logits.to(dtype), dim=-1)
    log_p_student = F.log_softmax(student_logits.to(dtype), dim=-1)
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)
