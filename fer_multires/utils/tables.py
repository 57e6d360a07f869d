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


def format_split_table(split_metrics: Mapping[str, float], classes: Sequence[str]) -> str:
    """Render per-class F1, accuracy, macro F1 and challenge score of one split as a table.

    Args:
        split_metrics: ``{"acc", "f1", "score", "f1_<Class>", ...}`` of one split.
        classes: class names in label order.
    """
    width = max([10, *(len(c) + 2 for c in classes)])  # no classes (task=va, au): 10
    lines = [
        "".join(f"{c:>{width}}" for c in classes),
        "".join(f"{split_metrics.get(f'f1_{c}', float('nan')):>{width}.3f}" for c in classes),
        "",
        f"{'accuracy':>12}{'macro F1':>12}{'score':>12}",
        f"{split_metrics.get('acc', float('nan')):>12.4f}"
        f"{split_metrics.get('f1', float('nan')):>12.4f}"
        f"{split_metrics.get('score', float('nan')):>12.4f}",
    ]
    return "\n".join(["per-class F1 (val_full)", *lines])
