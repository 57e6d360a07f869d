"""Tables: the one Markdown table renderer, and the plain-text table of a split's metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def markdown_cell(value: Any, digits: int = 4) -> str:
    """Render one Markdown table cell: floats to ``digits`` decimals, ``|`` escaped, ``-`` if empty.

    None renders as an empty cell (``-``), so missing scores stay visible as missing.
    """
    if isinstance(value, float):
        text = f"{value:.{digits}f}"
    else:
        text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ") or "-"


def with_interval(value: float, interval: Sequence[float] | None, digits: int = 3) -> str:
    """Render a score with its interval, ``0.612 [0.571, 0.650]`` (the score alone without one)."""
    text = f"{value:.{digits}f}"
    if interval is None:
        return text
    low, high = interval
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4
) -> list[str]:
    """Render a Markdown table as lines (see :func:`markdown_cell` for the cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(markdown_cell(v, digits) for v in row) + " |" for row in rows]


def format_split_table(
    split_metrics: Mapping[str, float], classes: Sequence[str], task: str = "expr"
) -> str:
    """Render one split's logged metrics as a table, for the heads of ``task``.

    Expressions: per-class F1, accuracy, macro F1 and challenge score; valence-arousal: the CCC
    of each dimension and their mean; action units: F1 per AU (at 0.5, training's threshold) and
    their mean; multi-task: all of them and the multi-task score.

    Args:
        split_metrics: one split's logged metrics without the split prefix (``acc``, ``f1``,
            ``score``, ``f1_<Class>``, ``ccc_valence``, ``va_score``, ``f1_<AU>``, ...).
        classes: the expression class names in label order.
        task: the run's task (:mod:`fer_multires.tasks`).
    """
    from fer_multires.tasks import AU_NAMES, TASK_HEADS

    heads = TASK_HEADS[task]

    def row(
        names: Sequence[str], keys: Sequence[str], digits: int = 3, width: int = 0
    ) -> list[str]:
        width = width or max(10, *(len(n) + 2 for n in names))
        values = (split_metrics.get(k, float("nan")) for k in keys)
        return ["".join(f"{n:>{width}}" for n in names),
                "".join(f"{v:>{width}.{digits}f}" for v in values)]  # fmt: skip

    blocks = []
    if "expr" in heads:
        # with other heads, "score" is the task's: the expression's own is not logged
        summary = ["acc", "f1", "score"] if task == "expr" else ["acc", "f1"]
        names = ["accuracy", "macro F1", "score"][: len(summary)]
        blocks.append(["per-class F1 (val_full)", *row(classes, [f"f1_{c}" for c in classes]), "",
                       *row(names, summary, 4, width=12)])  # fmt: skip
    if "va" in heads:
        blocks.append(["concordance correlation coefficient (val_full)",
                       *row(["valence", "arousal", "va_score"],
                            ["ccc_valence", "ccc_arousal", "va_score"], 4)])  # fmt: skip
    if "au" in heads:
        blocks.append(["AU F1 at threshold 0.5 (val_full)",
                       *row(AU_NAMES, [f"f1_{a}" for a in AU_NAMES]), "",
                       *row(["au_score"], ["au_score"], 4)])  # fmt: skip
    if task == "mtl":
        blocks.append(["multi-task score (val_full): va_score + expr macro F1 + au_score",
                       *row(["mtl_score"], ["score"], 4)])  # fmt: skip
    return "\n\n".join("\n".join(block) for block in blocks)
