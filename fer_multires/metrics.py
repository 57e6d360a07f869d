"""The ABAW expression challenge metrics, computed exactly from a confusion matrix.

The state of :class:`ChallengeScore` is one C x C confusion matrix, summed across processes
(``dist_reduce_fx="sum"``), so the result on N processes equals the result on one when each
sample is seen by exactly one process. From it:

* accuracy: micro accuracy (correct / all), not torchmetrics' default macro (balanced) accuracy;
* per-class F1 with zero_division = 0, and macro F1 as the mean over *all* C classes, including
  classes that never occur (the authors' code averaged only the classes present and used
  zero_division = 1, which inflates F1 most at low resolutions);
* challenge score = 0.33 * accuracy + 0.67 * macro F1.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric, SumMetric

from fer_multires.tasks import EXPR_MISSING

ACCURACY_WEIGHT = 0.33
F1_WEIGHT = 0.67


def confusion_from_labels(
    target: torch.Tensor | np.ndarray,
    predicted: torch.Tensor | np.ndarray,
    num_classes: int,
    counted: torch.Tensor | None = None,
) -> torch.Tensor:
    """Count the ``C x C`` confusion matrix (rows = true class) of two label arrays or tensors.

    ``counted`` (booleans, optional) leaves out the samples where it is False, without selecting
    them (which would wait for the device): a multi-task batch's frames without an expression.

    The one place a confusion matrix is counted: the metric below and the evaluation's smoothing
    both use it. Counted with ``index_add_`` into ``C * C`` zeros rather than ``torch.bincount``,
    whose CUDA kernel reads the input's range back to the host (a sync at every validation
    step); integer additions are exact in any order.

    Raises:
        IndexError: for a label outside ``0..C-1`` (CPU; a device-side assert on CUDA).
    """
    target = torch.as_tensor(target).long().reshape(-1)
    predicted = torch.as_tensor(predicted, device=target.device).long().reshape(-1)
    weight = torch.ones_like(target) if counted is None else counted.reshape(-1).long()
    if counted is not None:
        target = torch.where(counted.reshape(-1), target, 0)
    index = target * num_classes + predicted
    if index.device.type == "cpu" and index.numel():
        bad = (target < 0) | (target >= num_classes) | (predicted < 0) | (predicted >= num_classes)
        if bool(bad.any()):
            raise IndexError(f"a label outside 0..{num_classes - 1} in the confusion matrix")
    counts = torch.zeros(num_classes**2, dtype=torch.long, device=index.device)
    counts.index_add_(0, index, weight)
    return counts.view(num_classes, num_classes)


def metrics_from_confusion(confusion: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
    """Compute accuracy, per-class F1, macro F1 and challenge score from confusion matrices.

    Args:
        confusion: ``C x C`` counts, rows = true class, columns = predicted class; or a stack
            ``(..., C, C)`` of them (the bootstrap scores thousands at once).

    Returns:
        ``{"acc", "f1", "score", "f1_per_class", "n"}`` as float64 tensors of the leading shape
        (``f1_per_class`` with a last axis of length C; ``n`` the number of samples). With no
        samples, every value is 0.
    """
    cm = torch.as_tensor(confusion, dtype=torch.float64)
    n = cm.sum(dim=(-2, -1))
    true_pos = cm.diagonal(dim1=-2, dim2=-1)
    support = cm.sum(dim=-1)
    predicted = cm.sum(dim=-2)
    denominator = support + predicted
    f1_per_class = torch.where(
        denominator > 0, 2 * true_pos / denominator.clamp(min=1), torch.zeros_like(true_pos)
    )
    acc = torch.where(n > 0, true_pos.sum(dim=-1) / n.clamp(min=1), torch.zeros_like(n))
    f1 = f1_per_class.mean(dim=-1)
    return {
        "acc": acc,
        "f1": f1,
        "score": ACCURACY_WEIGHT * acc + F1_WEIGHT * f1,
        "f1_per_class": f1_per_class,
        "n": n,
    }


class SampleCount(SumMetric):
    """How many samples of one split were read (or could not be), summed across processes.

    Counts made on the host (Python ints, from the data module's count before the batch moves
    to the device) are added up in Python and given to the metric once, by :meth:`total`, so no
    step waits for the device; a count that is a device tensor (a step called without the data
    module) is added as it comes.
    """

    def __init__(self) -> None:
        super().__init__(nan_strategy="disable")  # counts are never NaN; the check would sync
        self.host_count = 0

    def add(self, count: int | torch.Tensor) -> None:
        """Add one batch's count."""
        if isinstance(count, int):
            self.host_count += count
        else:
            self.update(count)

    def total(self) -> torch.Tensor:
        """Return the count over all processes (a collective under DDP), then start from zero."""
        self.update(float(self.host_count))
        total = self.compute()
        self.reset()
        return total

    def reset(self) -> None:
        """Start from zero, the host count included."""
        super().reset()
        self.host_count = 0


class ChallengeScore(Metric):
    """Accumulates a confusion matrix; computes the challenge metrics exactly.

    Args:
        num_classes: number of classes C.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state(
            "confusion",
            default=torch.zeros(num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch.

        Args:
            preds: predicted class indices ``(N,)`` or scores/logits ``(N, C)``.
            target: true class indices ``(N,)``; :data:`~fer_multires.tasks.EXPR_MISSING`
                (multi-task frames without an expression) is left out.
        """
        if preds.ndim == 2:
            preds = preds.argmax(dim=1)
        counted = target != EXPR_MISSING
        self.confusion = self.confusion + confusion_from_labels(
            target, preds, self.num_classes, counted
        )

    def compute(self) -> dict[str, torch.Tensor]:
        """Return the metrics of :func:`metrics_from_confusion` and the ``confusion`` matrix.

        Under DDP both are over all processes' samples.
        """
        return {**metrics_from_confusion(self.confusion), "confusion": self.confusion.clone()}
