"""Plain-text tables of the challenge metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def metrics_for_split(metrics: Mapping[str, float], split: str) -> dict[str, float]:
    """Pick one split's metrics out of logged metric names (``<split>/<name>``)."""
    prefix = f"{split}/"
    return {key[len(prefix) :]: float(v) for key, v in metrics.items() if key.startswith(prefix)}


def format_split_table(split_metrics: Mapping[str, float], classes: Sequence[str]) -> str:
    """Render per-class F1, accuracy, macro F1 and challenge score of one split as a table.

    Args:
        split_metrics: ``{"acc", "f1", "score", "f1_<Class>", ...}`` of one split.
        classes: class names in label order.
    """
    width = max(10, *(len(c) + 2 for c in classes))
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
