"""Expression class names: the project's canonical names and order.

The canonical order is Aff-Wild2's: Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise,
then ``Contempt`` (FERPlus, AffectNet) or ``Other`` (Aff-Wild2, ABAW 2022 onward). Every reader
maps its dataset's own numbering onto these names, and a dataset's class list is this list
restricted to the classes it has. Models trained on different datasets are compared by name
(cross-dataset evaluation), never by index.
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
#: The eight classes of FERPlus and AffectNet: the seven basic ones and Contempt.
EXPRESSIONS_CONTEMPT: tuple[str, ...] = (*EXPRESSIONS_7, "Contempt")
#: Every canonical class name, in canonical order.
CANONICAL_CLASSES: tuple[str, ...] = (*EXPRESSIONS_7, "Contempt", "Other")

#: Other spellings of the canonical names (lower case), as image-folder datasets name them.
CLASS_ALIASES: dict[str, str] = {
    "neutral": "Neutral",
    "neutrality": "Neutral",
    "anger": "Anger",
    "angry": "Anger",
    "disgust": "Disgust",
    "disgusted": "Disgust",
    "fear": "Fear",
    "fearful": "Fear",
    "afraid": "Fear",
    "scared": "Fear",
    "happiness": "Happiness",
    "happy": "Happiness",
    "joy": "Happiness",
    "sadness": "Sadness",
    "sad": "Sadness",
    "surprise": "Surprise",
    "surprised": "Surprise",
    "contempt": "Contempt",
    "contemptuous": "Contempt",
    "other": "Other",
}

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


def canonical_name(name: str) -> str | None:
    """Return the canonical class name of ``name`` (any case, or an alias), or None if unknown."""
    return CLASS_ALIASES.get(name.strip().lower())


def canonical_order(names: Sequence[str]) -> tuple[str, ...]:
    """Return canonical class names sorted in the canonical order.

    Raises:
        ValueError: for a name that is not canonical.
    """
    unknown = [n for n in names if n not in CANONICAL_CLASSES]
    if unknown:
        raise ValueError(
            f"unknown class name(s) {', '.join(unknown)}; expected {', '.join(CANONICAL_CLASSES)}"
        )
    return tuple(sorted(set(names), key=CANONICAL_CLASSES.index))


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
