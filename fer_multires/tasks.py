"""The four tasks of the ABAW challenges, and the names of what each one predicts.

``task=expr`` (the default) classifies expressions, ``task=va`` estimates valence and arousal,
``task=au`` detects twelve action units, and ``task=mtl`` trains one backbone with the three
heads at once, each loss masked where its label is missing. This module is the one home of the
task names, the annotation columns and their missing-value markers.
"""

from __future__ import annotations

#: The tasks, in the order the config key ``task`` accepts them.
TASKS: tuple[str, ...] = ("expr", "va", "au", "mtl")
#: The task of a run that does not name one (every run before tasks existed).
DEFAULT_TASK = "expr"
#: The heads each task trains and evaluates.
TASK_HEADS: dict[str, tuple[str, ...]] = {
    "expr": ("expr",),
    "va": ("va",),
    "au": ("au",),
    "mtl": ("expr", "va", "au"),
}

#: The expression label of a frame without one (multi-task frames annotated for VA or AUs only).
EXPR_MISSING = -1
#: The valence-arousal annotation's columns, as its header line names them.
VA_NAMES: tuple[str, ...] = ("valence", "arousal")
#: The value that marks a frame without a valence-arousal annotation (in either column).
VA_MISSING = -5.0
#: The action units of ABAW's AU track, in the order of the annotation's header line.
AU_NAMES: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26",
)  # fmt: skip
#: The value that marks a frame without an action-unit annotation.
AU_MISSING = -1


def check_task(task: str, key: str = "task") -> str:
    """Return ``task`` if it is one of :data:`TASKS`.

    Raises:
        ValueError: naming ``key`` and the tasks there are.
    """
    if task not in TASKS:
        raise ValueError(f"{key}={task!r} is not a task; choose one of {', '.join(TASKS)}")
    return task


def head_sizes(task: str, num_classes: int) -> dict[str, int]:
    """Return the outputs of each head a ``task`` trains, in :data:`TASK_HEADS` order.

    ``expr``: one logit per expression class; ``va``: valence and arousal (a ``tanh`` puts them in
    [-1, 1]); ``au``: one logit per action unit. The heads share one linear layer on the
    backbone's features, its outputs laid side by side in this order (:func:`head_slices`).
    """
    sizes = {"expr": num_classes, "va": len(VA_NAMES), "au": len(AU_NAMES)}
    return {head: sizes[head] for head in TASK_HEADS[check_task(task)]}


def head_slices(task: str, num_classes: int) -> dict[str, slice]:
    """Return, per head, its columns of the shared output layer (:func:`head_sizes`)."""
    slices, start = {}, 0
    for head, size in head_sizes(task, num_classes).items():
        slices[head] = slice(start, start + size)
        start += size
    return slices


def num_outputs(task: str, num_classes: int) -> int:
    """Return the width of the output layer of a ``task`` model."""
    return sum(head_sizes(task, num_classes).values())
