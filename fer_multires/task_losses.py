"""The training losses of the valence-arousal, action-unit and (masked) expression heads.

Each loss leaves out the frames whose label is missing, by masking rather than indexing (nothing
waits for the device), and returns a zero that still has a gradient when a batch has no labelled
frame at all, so that a multi-task step (the sum of the heads' losses) never sees NaN and every
process runs the same backward graph under DDP.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fer_multires.tasks import AU_MISSING, AU_NAMES, EXPR_MISSING, VA_MISSING, VA_NAMES

#: The largest positive weight of an AU (and 1 / it the smallest): an AU seen positive in fewer
#: than 1 of 51 training frames is weighted as if it were 1 of 51, so that a handful of positives
#: does not dominate the loss.
MAX_AU_POS_WEIGHT = 50.0


def ccc_loss(preds: torch.Tensor, target: torch.Tensor, mse_weight: float = 0.0) -> torch.Tensor:
    """Return 1 - the mean CCC of valence and arousal over a batch's annotated frames.

    ``1 - CCC`` is what ABAW's winning valence-arousal entries train on: it optimises the
    challenge's measure directly, agreement in mean and scale included, where MSE rewards
    shrinking towards the mean. The CCC is computed with the definition of
    :func:`~fer_multires.task_metrics.ccc_from_sums` (population moments, 0 when the denominator
    is 0), on the batch's frames only: a biased, noisy estimate of the CCC over a split, the more
    so the smaller the batch (a batch of 4 frames of one video has almost no variance to match).
    Train with batches of dozens of frames or more, or add ``mse_weight`` times the mean squared
    error, which does not depend on the batch's composition.

    Computed in float32 (bfloat16 head outputs under mixed precision are cast up).

    Args:
        preds: predicted valence and arousal ``(N, 2)``.
        target: annotations ``(N, 2)``; a frame with any value equal to
            :data:`~fer_multires.tasks.VA_MISSING`, or NaN, is left out.
        mse_weight: weight of the MSE added to ``1 - CCC`` (0: none).

    Returns:
        A scalar; a zero with a gradient when no frame is annotated.
    """
    if preds.shape != target.shape or preds.ndim != 2 or preds.shape[1] != len(VA_NAMES):
        raise ValueError(
            f"valence-arousal predictions {tuple(preds.shape)} and annotations "
            f"{tuple(target.shape)}: both must be (N, {len(VA_NAMES)})"
        )
    y = target.float()
    present = ~((y == VA_MISSING) | y.isnan()).any(dim=1, keepdim=True)
    weight = present.float()
    n = weight.sum()
    count = n.clamp(min=1)
    x = torch.where(present, preds.float(), 0.0)
    y = torch.where(present, y, 0.0)
    mean_x, mean_y = x.sum(dim=0) / count, y.sum(dim=0) / count
    dx, dy = (x - mean_x) * weight, (y - mean_y) * weight
    var_x, var_y = (dx * dx).sum(dim=0) / count, (dy * dy).sum(dim=0) / count
    cov = (dx * dy).sum(dim=0) / count
    denominator = var_x + var_y + (mean_x - mean_y) ** 2
    defined = denominator > 0
    ccc = torch.where(defined, 2 * cov / denominator.where(defined, 1.0), 0.0)
    loss = 1 - ccc.mean()
    if mse_weight:
        loss = loss + mse_weight * ((x - y) ** 2).sum() / (count * len(VA_NAMES))
    return torch.where(n > 0, loss, preds.sum() * 0)


def au_positive_rates(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return each AU's positive rate among its labelled training frames.

    Args:
        labels: ``(N, 12)`` AU labels: 1, 0 or :data:`~fer_multires.tasks.AU_MISSING`.

    Returns:
        ``(12,)`` float64; NaN for an AU no frame labels (:func:`au_pos_weights` refuses it).
    """
    labels = np.asarray(torch.as_tensor(labels).cpu())
    positives = np.sum(labels == 1, axis=0)
    labelled = np.sum(labels != AU_MISSING, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return positives / labelled


def au_pos_weights(
    positive_rate: Sequence[float] | np.ndarray | torch.Tensor,
    max_weight: float = MAX_AU_POS_WEIGHT,
) -> torch.Tensor:
    """Return each AU's positive weight for :func:`au_bce_loss`: ``(1 - p) / p``, clipped.

    With ``p`` an AU's positive rate in training, ``(1 - p) / p`` (negatives per positive) gives
    the AU's positive and negative frames equal total weight, so rare AUs (AU15, AU23, AU24 are
    positive in a few percent of Aff-Wild2's frames) are not learnt as "always absent". The
    weight is clipped to ``[1 / max_weight, max_weight]``: an AU never positive (p = 0) gets
    ``max_weight`` (it applies to no frame until one is positive), an AU always positive
    (p = 1) ``1 / max_weight``, not 0, which would switch its loss off.

    Raises:
        ValueError: naming the AU whose rate is not in [0, 1] (NaN: no frame labels it).
    """
    rates = torch.as_tensor(positive_rate, dtype=torch.float64).reshape(-1)
    if len(rates) != len(AU_NAMES):
        raise ValueError(f"{len(rates)} AU positive rates for the {len(AU_NAMES)} AUs")
    for name, rate in zip(AU_NAMES, rates.tolist(), strict=True):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name}: positive rate {rate} is not in [0, 1] (no labelled frame?)")
    weights = (1 - rates) / rates.clamp(min=1 / (1 + max_weight))  # p = 0: not a division by 0
    return weights.clamp(min=1 / max_weight, max=max_weight).float()


def au_bce_loss(
    logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy of the AU logits, weighted per AU, over the labelled entries.

    Each entry labelled :data:`~fer_multires.tasks.AU_MISSING` is left out on its own; the loss
    is the mean over the labelled entries of the batch, where an entry's loss is
    ``-(pos_weight[a] * y log σ(z) + (1 - y) log(1 - σ(z)))`` (as
    ``binary_cross_entropy_with_logits`` with ``pos_weight``).

    Args:
        logits: ``(N, 12)``.
        target: ``(N, 12)`` labels: 1, 0 or missing.
        pos_weight: ``(12,)`` from :func:`au_pos_weights`, or None for weight 1.

    Returns:
        A scalar; a zero with a gradient when no entry is labelled.
    """
    if logits.shape != target.shape or logits.ndim != 2 or logits.shape[1] != len(AU_NAMES):
        raise ValueError(
            f"AU logits {tuple(logits.shape)} and labels {tuple(target.shape)}: "
            f"both must be (N, {len(AU_NAMES)})"
        )
    labelled = target != AU_MISSING
    per_entry = F.binary_cross_entropy_with_logits(
        logits.float(),
        torch.where(labelled, target, 0).float(),
        pos_weight=pos_weight,
        reduction="none",
    )
    total = torch.where(labelled, per_entry, 0.0).sum()
    return total / labelled.sum().clamp(min=1)


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Class-weighted cross-entropy over the frames with an expression label.

    Frames labelled :data:`EXPR_MISSING` (in a multi-task batch, those annotated only for
    valence-arousal or AUs) are left out; over the others it equals
    ``F.cross_entropy(logits, target, weight)``: the sum of ``weight[y] * -log p(y)`` divided by
    the sum of ``weight[y]``.

    Args:
        logits: ``(N, C)``.
        target: ``(N,)`` class indices, or :data:`EXPR_MISSING`.
        weight: ``(C,)`` class weights, or None.

    Returns:
        A scalar; a zero with a gradient when no frame is labelled (where ``F.cross_entropy``
        gives NaN).
    """
    per_frame = F.cross_entropy(
        logits.float(), target, weight=weight, ignore_index=EXPR_MISSING, reduction="none"
    )
    labelled = target != EXPR_MISSING
    index = torch.where(labelled, target, 0)
    frame_weight = torch.ones_like(per_frame) if weight is None else weight.float()[index]
    total_weight = torch.where(labelled, frame_weight, 0.0).sum()
    # no labelled frame: the sum is an exact 0 (with its graph), divided by 1
    return per_frame.sum() / torch.where(total_weight > 0, total_weight, 1.0)
