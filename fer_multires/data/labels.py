"""Expression class names in the canonical Aff-Wild2 order.

ABAW 2020-21 uses seven classes; ABAW 2022 onward appends ``Other`` as class 7. The order here is
the order of the annotation files' header line and of the integer labels in them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EXPRESSIONS_7: tuple[str, ...] = (
    "Neutral",
    "Anger",
    "Disgust",
    "Fear",
    "Happiness",
    "Sadness",
    "Surprise",
)
EXPRESSIONS_8: tuple[str, ...] = (*EXPRESSIONS_7, "Other")

#: Label value of a frame that is not annotated.
UNLABELLED = -1


def class_names(num_classes: int) -> tuple[str, ...]:
    """Return the class names for a 7- or 8-class expression task.

    Args:
        num_classes: 7 (ABAW 2020-21) or 8 (ABAW 2022 onward).

    Raises:
        ValueError: for any other number of classes.
    """
    if num_classes == 7:
        return EXPRESSIONS_7
    if num_classes == 8:
        return EXPRESSIONS_8
    raise ValueError(f"expression tasks have 7 or 8 classes, got {num_classes}")


def class_weights(class_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return the loss weight of each class: 1 - its frequency among the training frames.

    This is the paper's weighting (its Table 2 from its Table 1). The weights need not sum to 1.

    Args:
        class_counts: number of training frames of each class.

    Raises:
        ValueError: if there are no frames at all.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("cannot compute class weights from a split with no frames")
    return 1.0 - counts / total
