"""Matching a model's classes with a dataset's, by canonical name (cross-dataset evaluation).

A model trained on one dataset is evaluated on another through the classes both know: samples
of a class the model does not know are left out and counted, the prediction is the argmax over
the shared classes' logits, and the metrics are over the shared classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassMatch:
    """How a model's classes map onto a dataset's.

    Attributes:
        model_classes: the model's class names, in its output order.
        data_classes: the dataset's class names, in label order.
        shared: the classes both have, in the dataset's order: the evaluation's classes.
        label_map: per data label, its index in ``shared``, or -1 for a class the model does
            not know (int64).
        logit_columns: per shared class, the model output that scores it (int64).
    """

    model_classes: tuple[str, ...]
    data_classes: tuple[str, ...]
    shared: tuple[str, ...]
    label_map: np.ndarray
    logit_columns: np.ndarray

    @property
    def is_identity(self) -> bool:
        """True when the model and the data have the same classes in the same order."""
        return self.model_classes == self.data_classes

    @property
    def excluded(self) -> tuple[str, ...]:
        """The data's classes that the model does not know (their samples are left out)."""
        return tuple(c for c in self.data_classes if c not in self.shared)

    @property
    def unused(self) -> tuple[str, ...]:
        """The model's classes that the data does not have (their logits are ignored)."""
        return tuple(c for c in self.model_classes if c not in self.shared)

    def excluded_counts(self, labels: np.ndarray) -> dict[str, int]:
        """Return, per excluded class, how many of ``labels`` (data labels) it holds.

        A missing label (-1: a multi-task frame without an expression) is no class's.
        """
        labels = labels.astype(np.int64)
        counts = np.bincount(labels[labels >= 0], minlength=len(self.data_classes))
        return {c: int(counts[self.data_classes.index(c)]) for c in self.excluded}


def match_classes(model_classes: Sequence[str], data_classes: Sequence[str]) -> ClassMatch:
    """Match a model's classes with a dataset's by name.

    Raises:
        ValueError: if they share no class, naming both lists.
    """
    model, data = tuple(model_classes), tuple(data_classes)
    shared = tuple(c for c in data if c in model)
    if not shared:
        raise ValueError(
            f"the model's classes ({', '.join(model)}) and the data's ({', '.join(data)}) "
            "share none"
        )
    label_map = np.array([shared.index(c) if c in shared else -1 for c in data], dtype=np.int64)
    columns = np.array([model.index(c) for c in shared], dtype=np.int64)
    return ClassMatch(model, data, shared, label_map, columns)
