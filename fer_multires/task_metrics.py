"""The ABAW valence-arousal, action-unit and multi-task metrics, from sums exact across processes.

Like :class:`~fer_multires.metrics.ChallengeScore`, each metric keeps only sufficient statistics
and sums them across processes (``dist_reduce_fx="sum"``), so the score on N processes equals the
score on one when each frame is seen by exactly one process:

* valence-arousal (:class:`ConcordanceScore`): per dimension, the float64 sums ``n, Σx, Σy, Σx²,
  Σy², Σxy`` (x the prediction, y the annotation) of the annotated frames; from them the
  concordance correlation coefficient (CCC) of each dimension, and ``va_score``, their mean;
* action units (:class:`ActionUnitScore`): per AU, integer counts of true positives, false
  positives and false negatives at every threshold of :data:`AU_THRESHOLDS`, so a threshold can
  be chosen on one split (:func:`choose_thresholds`) and applied to another; from them F1 per AU
  (zero_division = 0) and ``au_score``, the mean over the twelve AUs;
* the multi-task score (:func:`mtl_score`): mean CCC + expression macro F1 + mean AU F1.

The pure functions (:func:`ccc_from_sums`, :func:`au_f1_from_counts`) take numpy arrays or torch
tensors and any leading shape, so the bootstrap scores a stack of resampled sums at once, as it
does with confusion matrices (:mod:`fer_multires.uncertainty`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torchmetrics import Metric

from fer_multires.tasks import AU_MISSING, AU_NAMES, VA_MISSING, VA_NAMES

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

#: The last axis of the valence-arousal sums (x the prediction, y the annotation).
VA_SUM_NAMES: tuple[str, ...] = ("n", "sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy")
#: A CCC denominator at or below this fraction of ``Σx²/n + Σy²/n`` is zero up to the rounding
#: of the sums (both series constant and equal), and the CCC is 0, as for an exact 0.
DEGENERATE_DENOMINATOR = 1e-12

#: The AU threshold of a split nobody chose one on.
DEFAULT_AU_THRESHOLD = 0.5
#: The AU thresholds are the multiples of 1 / this.
AU_THRESHOLD_STEPS = 32
#: The thresholds at which the AU counts are kept: 1/32, 2/32, ..., 31/32 (0.5 is 16/32), a
#: step near the 0.05 of ABAW's threshold searches. Multiples of 1/32 are exact in float16,
#: bfloat16, float32 and float64 (and print exactly), so ``prob >= threshold`` gives the same
#: answer in any of them; and also for a probability read back as float64 from a
#: ``predictions.csv`` that wrote its float32 with 9 significant digits: that text lies within
#: half a float32 spacing of its float32, so on the same side of a threshold (itself a float32).
AU_THRESHOLDS: np.ndarray = np.arange(1, AU_THRESHOLD_STEPS, dtype=np.float64) / AU_THRESHOLD_STEPS
AU_THRESHOLDS.setflags(write=False)


# --------------------------------------------------------------------------------------------
# valence-arousal


def va_sums(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum one batch into the valence-arousal sufficient statistics.

    A frame is left out when its annotation is missing: any of its values equal to
    :data:`~fer_multires.tasks.VA_MISSING` or NaN (both dimensions are left out together). The
    frames are masked, not indexed, so nothing waits for the device.

    Args:
        preds: predicted valence and arousal ``(N, 2)``.
        target: annotated valence and arousal ``(N, 2)``.

    Returns:
        ``(2, 6)`` float64: per dimension (:data:`~fer_multires.tasks.VA_NAMES`), the sums
        :data:`VA_SUM_NAMES` over the annotated frames.
    """
    if preds.shape != target.shape or preds.ndim != 2 or preds.shape[1] != len(VA_NAMES):
        raise ValueError(
            f"valence-arousal predictions {tuple(preds.shape)} and annotations "
            f"{tuple(target.shape)}: both must be (N, {len(VA_NAMES)})"
        )
    y = target.to(torch.float64)
    present = ~((y == VA_MISSING) | y.isnan()).any(dim=1, keepdim=True)
    x = torch.where(present, preds.to(torch.float64), 0.0)
    y = torch.where(present, y, 0.0)
    n = present.to(torch.float64).expand_as(x)
    terms = (n, x, y, x * x, y * y, x * y)
    return torch.stack([t.sum(dim=0) for t in terms], dim=-1)


def ccc_from_sums(sums: ArrayT) -> ArrayT:
    """Return the concordance correlation coefficient from sufficient statistics.

    The CCC as ABAW defines it, with population (1/n) moments::

        CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))²)

    The one formula: the metric, the bootstrap and any recomputation use it. The sums are
    float64: a sum of squares over millions of frames in float32 keeps about 7 digits, and
    ``Σx²/n - mean²`` cancels most of them; in float64 the CCC is good to about 1e-12, and sums
    added in another order (other processes, other batches) agree to that. When there is no
    frame (n = 0) or the denominator is 0 (both series constant and equal; or zero up to the
    rounding of the sums, see :data:`DEGENERATE_DENOMINATOR`), the CCC is undefined and is
    returned as 0.0.

    Args:
        sums: ``(..., 6)`` sums in the order of :data:`VA_SUM_NAMES`, numpy or torch; e.g.
            ``(2, 6)`` for valence and arousal, or ``(B, 2, 6)`` for B bootstrap resamples.

    Returns:
        The CCC, of the leading shape ``(...)``, float64, numpy for numpy input and torch for
        torch input.
    """
    as_numpy = isinstance(sums, np.ndarray)
    s = torch.as_tensor(sums, dtype=torch.float64)
    n, sx, sy, sxx, syy, sxy = s.unbind(dim=-1)
    count = n.clamp(min=1)
    mean_x, mean_y = sx / count, sy / count
    second_x, second_y = sxx / count, syy / count
    var_x = second_x - mean_x**2
    var_y = second_y - mean_y**2
    cov = sxy / count - mean_x * mean_y
    denominator = var_x + var_y + (mean_x - mean_y) ** 2
    defined = (n > 0) & (denominator > DEGENERATE_DENOMINATOR * (second_x + second_y))
    ccc = torch.where(defined, 2 * cov / denominator.where(defined, 1.0), 0.0)
    return ccc.numpy() if as_numpy else ccc


def va_metrics_from_sums(sums: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
    """Compute ``ccc_valence``, ``ccc_arousal``, ``va_score`` (their mean) and ``n``.

    Args:
        sums: ``(..., 2, 6)`` valence-arousal sums (:func:`va_sums`, or a stack of them).

    Returns:
        float64 tensors of the leading shape; ``n`` is the number of annotated frames.
    """
    s = torch.as_tensor(sums, dtype=torch.float64)
    ccc = ccc_from_sums(s)
    out = {f"ccc_{name}": ccc[..., i] for i, name in enumerate(VA_NAMES)}
    return {**out, "va_score": ccc.mean(dim=-1), "n": s[..., 0, 0]}


class ConcordanceScore(Metric):
    """Accumulates the valence-arousal sums; computes the CCC of each dimension exactly.

    The state ``sums`` ``(2, 6)`` stays float64 on whatever dtype the module is moved to (a
    ``16-true`` or ``bf16-true`` Trainer converts every floating tensor of the module; those
    sums would keep 3 digits).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state(
            "sums",
            default=torch.zeros(len(VA_NAMES), len(VA_SUM_NAMES), dtype=torch.float64),
            dist_reduce_fx="sum",
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: predictions and annotations ``(N, 2)``, missing annotations left out."""
        self.sums = self.sums + va_sums(preds, target)

    def compute(self) -> dict[str, torch.Tensor]:
        """Return :func:`va_metrics_from_sums` and the ``sums``, over all processes under DDP."""
        return {**va_metrics_from_sums(self.sums), "sums": self.sums.clone()}

    def _apply(self, fn: Any, exclude_state: Sequence[str] = ()) -> torch.nn.Module:
        """Move the sums with the module, keeping them float64."""
        this = super()._apply(fn, exclude_state=(*exclude_state, "sums"))
        device = fn(torch.zeros(1, device=this.sums.device)).device
        this.sums = this.sums.to(device=device)
        return this


# --------------------------------------------------------------------------------------------
# action units


@dataclass
class AuCounts:
    """Per-AU confusion counts at every threshold of :data:`AU_THRESHOLDS`.

    Attributes:
        tp: true positives ``(..., T, 12)`` (T thresholds, the AUs of
            :data:`~fer_multires.tasks.AU_NAMES`), int64, numpy or torch.
        fp: false positives, the same shape.
        fn: false negatives, the same shape.
    """

    tp: Any
    fp: Any
    fn: Any

    def __add__(self, other: AuCounts) -> AuCounts:
        """The counts of both sets of frames (e.g. ``val_full`` = ``val_select`` + ``val_rest``)."""
        return AuCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def check_au_batch(probs: torch.Tensor, target: torch.Tensor) -> None:
    """Check the shapes, and on the CPU the values, of an AU batch.

    Raises:
        ValueError: for shapes other than ``(N, 12)``, or (CPU tensors only: on an accelerator
            the check would wait for it) a probability outside [0, 1] or NaN, or a label other
            than 0, 1 or :data:`~fer_multires.tasks.AU_MISSING`.
    """
    if probs.shape != target.shape or probs.ndim != 2 or probs.shape[1] != len(AU_NAMES):
        raise ValueError(
            f"AU probabilities {tuple(probs.shape)} and labels {tuple(target.shape)}: "
            f"both must be (N, {len(AU_NAMES)})"
        )
    if probs.device.type == "cpu" and probs.numel():
        if not bool(((probs >= 0) & (probs <= 1)).all()):
            raise ValueError("an AU probability outside [0, 1] or NaN (give sigmoid(logits))")
        if not bool(((target == 0) | (target == 1) | (target == AU_MISSING)).all()):
            raise ValueError(f"an AU label other than 0, 1 or {AU_MISSING} (missing)")


def au_counts(probs: torch.Tensor, target: torch.Tensor) -> AuCounts:
    """Count one batch's true and false positives and false negatives at every grid threshold.

    A frame is predicted positive for an AU when ``prob >= threshold``. An entry whose label is
    :data:`~fer_multires.tasks.AU_MISSING` is left out of that AU's counts only (each AU is
    masked on its own). Integer counts: their sum over batches and processes is exact in any
    order.

    Args:
        probs: probabilities ``(N, 12)`` in [0, 1].
        target: labels ``(N, 12)``: 1, 0, or missing.

    Returns:
        :class:`AuCounts` of ``(T, 12)`` int64 tensors (T thresholds of :data:`AU_THRESHOLDS`)
        on the device of ``probs``.
    """
    check_au_batch(probs, target)
    # the grid made on the device (a copy from the host would wait for it), exact in any dtype
    steps = torch.arange(1, AU_THRESHOLD_STEPS, device=probs.device, dtype=probs.dtype)
    grid = steps / AU_THRESHOLD_STEPS
    predicted = probs.unsqueeze(0) >= grid.view(-1, 1, 1)  # (T, N, 12)
    positive, negative = target == 1, target == 0
    tp = (predicted & positive).sum(dim=1)
    fp = (predicted & negative).sum(dim=1)
    fn = positive.sum(dim=0) - tp
    return AuCounts(tp, fp, fn)


def au_f1_from_counts(tp: ArrayT, fp: ArrayT, fn: ArrayT) -> ArrayT:
    """Return F1 = 2 tp / (2 tp + fp + fn), and 0 where there is nothing to count.

    The one F1 formula of the AUs, as scikit-learn's ``f1_score(zero_division=0)``: an AU that
    is neither labelled nor predicted positive scores 0. Elementwise on any shape (a stack of
    bootstrap resamples included).

    Returns:
        float64, numpy for numpy input and torch for torch input.
    """
    as_numpy = isinstance(tp, np.ndarray)
    tp, fp, fn = (torch.as_tensor(c, dtype=torch.float64) for c in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), 0.0)
    return f1.numpy() if as_numpy else f1


def per_au_thresholds(thresholds: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Return one threshold per AU: a single value repeated, or the twelve given."""
    values = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(AU_NAMES),))
    return values.copy()


def threshold_indices(thresholds: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Return each AU's threshold as its index in :data:`AU_THRESHOLDS`.

    Raises:
        ValueError: naming a threshold that is not on the grid (its counts were not kept).
    """
    values = per_au_thresholds(thresholds)
    indices = np.searchsorted(AU_THRESHOLDS, values)
    for name, value, index in zip(AU_NAMES, values, indices, strict=True):
        if index == len(AU_THRESHOLDS) or AU_THRESHOLDS[index] != value:
            raise ValueError(
                f"{name}: threshold {float(value)!r} is not one of the AU thresholds "
                f"k/{AU_THRESHOLD_STEPS}, k = 1..{AU_THRESHOLD_STEPS - 1}"
            )
    return indices


def au_metrics_from_counts(
    counts: AuCounts, thresholds: float | Sequence[float] | np.ndarray = DEFAULT_AU_THRESHOLD
) -> dict[str, torch.Tensor]:
    """Compute F1 per AU at the given thresholds, and ``au_score``, their mean over all 12 AUs.

    Args:
        counts: :class:`AuCounts` ``(..., T, 12)`` at :data:`AU_THRESHOLDS`.
        thresholds: one grid threshold for every AU, or twelve (e.g. :func:`choose_thresholds`'s).

    Returns:
        float64 tensors of the leading shape ``(...)``: ``f1_<AU>`` for each of
        :data:`~fer_multires.tasks.AU_NAMES`, ``au_score``; and ``f1_per_au`` ``(..., 12)``.
    """
    tp, fp, fn = (torch.as_tensor(c) for c in (counts.tp, counts.fp, counts.fn))
    index = torch.as_tensor(threshold_indices(thresholds), device=tp.device)
    columns = torch.arange(len(AU_NAMES), device=tp.device)
    tp, fp, fn = (c[..., index, columns] for c in (tp, fp, fn))
    f1 = au_f1_from_counts(tp, fp, fn)
    per_au = {f"f1_{name}": f1[..., i] for i, name in enumerate(AU_NAMES)}
    return {**per_au, "au_score": f1.mean(dim=-1), "f1_per_au": f1}


def choose_thresholds(counts: AuCounts) -> np.ndarray:
    """Choose per AU the grid threshold with the highest F1 on these counts (e.g. ``val_select``).

    Ties go to the threshold closest to :data:`DEFAULT_AU_THRESHOLD` (0.5), and between two
    equally close, to the lower one; an AU whose F1 is the same at every threshold (e.g. never
    labelled positive: F1 = 0 everywhere) keeps 0.5. F1 values are compared exactly: each is a
    correctly rounded ratio of integers, so equal ratios give equal floats.

    Args:
        counts: :class:`AuCounts` ``(T, 12)`` at :data:`AU_THRESHOLDS`.

    Returns:
        ``(12,)`` float64 thresholds, members of :data:`AU_THRESHOLDS`.
    """
    f1 = au_f1_from_counts(*(np.asarray(torch.as_tensor(c).cpu()) for c in
                             (counts.tp, counts.fp, counts.fn)))  # fmt: skip
    if f1.shape != (len(AU_THRESHOLDS), len(AU_NAMES)):
        raise ValueError(f"AU counts of shape {f1.shape}: expected {(len(AU_THRESHOLDS), 12)}")
    # preference order: nearest to 0.5 first, then the lower; argmax keeps the first maximum
    order = np.lexsort((AU_THRESHOLDS, np.abs(AU_THRESHOLDS - DEFAULT_AU_THRESHOLD)))
    best = order[np.argmax(f1[order], axis=0)]
    return AU_THRESHOLDS[best].copy()


def au_f1_at(
    probs: np.ndarray, target: np.ndarray, thresholds: float | Sequence[float] | np.ndarray
) -> np.ndarray:
    """Return F1 per AU of frames' probabilities at any thresholds, in numpy.

    The reference recomputation (e.g. from a ``predictions.csv``): positive when
    ``prob >= threshold``, entries labelled :data:`~fer_multires.tasks.AU_MISSING` left out per
    AU, F1 with zero_division = 0. At grid thresholds it agrees with :class:`ActionUnitScore`
    to the last digit.

    Args:
        probs: ``(N, 12)`` probabilities.
        target: ``(N, 12)`` labels: 1, 0 or missing.
        thresholds: one threshold for all AUs or twelve.

    Returns:
        ``(12,)`` float64 F1 per AU of :data:`~fer_multires.tasks.AU_NAMES`.
    """
    probs, target = np.asarray(probs), np.asarray(target)
    predicted = probs >= per_au_thresholds(thresholds)
    positive, negative = target == 1, target == 0
    tp = np.sum(predicted & positive, axis=0)
    fp = np.sum(predicted & negative, axis=0)
    fn = np.sum(~predicted & positive, axis=0)
    return au_f1_from_counts(tp, fp, fn)


class ActionUnitScore(Metric):
    """Accumulates per-AU counts at every grid threshold; computes F1 at any of them exactly.

    The states ``tp``, ``fp``, ``fn`` are ``(T, 12)`` int64 (:data:`AU_THRESHOLDS` by
    :data:`~fer_multires.tasks.AU_NAMES`), summed across processes. :meth:`compute` takes the
    thresholds, so it is not cached: each call computes (and under DDP syncs) again, and every
    process must call it as often as the others.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("compute_with_cache", False)
        super().__init__(**kwargs)
        shape = (len(AU_THRESHOLDS), len(AU_NAMES))
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.zeros(shape, dtype=torch.long),
                           dist_reduce_fx="sum")  # fmt: skip

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: probabilities ``(N, 12)`` in [0, 1] and labels (1, 0 or missing)."""
        counts = au_counts(probs, target)
        self.tp = self.tp + counts.tp
        self.fp = self.fp + counts.fp
        self.fn = self.fn + counts.fn

    def compute(
        self, thresholds: float | Sequence[float] | np.ndarray = DEFAULT_AU_THRESHOLD
    ) -> dict[str, Any]:
        """Return :func:`au_metrics_from_counts` at ``thresholds`` and the ``counts``.

        Under DDP both are over all processes' frames; ``counts`` (:class:`AuCounts`) is what
        :func:`choose_thresholds` takes.
        """
        counts = AuCounts(self.tp.clone(), self.fp.clone(), self.fn.clone())
        return {**au_metrics_from_counts(counts, thresholds), "counts": counts}


# --------------------------------------------------------------------------------------------
# multi-task


def mtl_score(ccc_valence: Any, ccc_arousal: Any, expr_macro_f1: Any, au_score: Any) -> Any:
    """Return the multi-task score: mean CCC + expression macro F1 + mean AU F1.

    ABAW's multi-task learning track (ABAW3, Kollias CVPRW 2022; ABAW4, ECCVW 2022) ranks by
    ``P_MTL = (CCC_V + CCC_A) / 2 + (1/8) Σ F1_expr + (1/12) Σ F1_AU``: the expression macro F1
    over its 8 classes (:func:`~fer_multires.metrics.metrics_from_confusion`'s ``f1``) and the
    AU mean F1 over its 12 AUs (``au_score``). It ranges over [-1, 3]. Elementwise, so floats,
    arrays and tensors (bootstrap stacks) alike.
    """
    return (ccc_valence + ccc_arousal) / 2 + expr_macro_f1 + au_score
