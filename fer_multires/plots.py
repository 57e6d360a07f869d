"""Figures of an evaluation: resolution robustness and the confusion matrix.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state), and
written atomically: to a temporary name in the target folder, then renamed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.utils.io import atomic_output

#: ``(metric key, axis title)`` of the panels of the resolution-robustness figure.
ROBUSTNESS_PANELS: tuple[tuple[str, str], ...] = (
    ("challenge_score", "challenge score"),
    ("f1_macro", "macro F1"),
    ("accuracy", "accuracy"),
)


def new_figure(width: float, height: float) -> Any:
    """Return a matplotlib ``Figure`` (constrained layout) on its own Agg canvas.

    Args:
        width: width in inches.
        height: height in inches.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure_atomic(figure: Any, path: str | Path, dpi: int = 120) -> None:
    """Write a figure as PNG through a temporary file and an atomic rename."""
    with atomic_output(path, binary=True) as f:
        figure.savefig(f, format="png", dpi=dpi)


def plot_resolution_robustness(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    resolutions: Sequence[int],
    path: str | Path,
) -> None:
    """Plot score, macro F1 and accuracy against the input resolution, one line per split.

    The native resolution (no degradation) is drawn as a dashed line in each split's colour.

    Args:
        results: ``{split: {"native" | str(resolution): {"challenge_score", "f1_macro",
            "accuracy", ...}}}``.
        resolutions: the degraded resolutions, in pixels.
        path: the PNG to write.
    """
    figure = new_figure(4.2 * len(ROBUSTNESS_PANELS), 3.8)
    axes = figure.subplots(1, len(ROBUSTNESS_PANELS))
    xs = sorted(resolutions)
    for ax, (key, title) in zip(axes, ROBUSTNESS_PANELS, strict=True):
        for i, (split, by_res) in enumerate(results.items()):
            color = f"C{i}"
            ys = [by_res[str(r)][key] for r in xs]
            ax.plot(xs, ys, marker="o", color=color, label=split)
            ax.axhline(by_res["native"][key], color=color, linestyle="--", linewidth=1)
        if xs:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(r) for r in xs])
            ax.minorticks_off()
        ax.set_xlabel("resolution (px, shorter side)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    figure.supylabel("dashed: native resolution (no degradation)", fontsize="small")
    axes[0].legend(loc="best", fontsize="small")
    save_figure_atomic(figure, path)


def plot_confusion_matrix(
    confusion: np.ndarray, classes: Sequence[str], path: str | Path, title: str = ""
) -> None:
    """Plot a confusion matrix: colours normalised per true class (row), counts in the cells.

    Args:
        confusion: ``C x C`` counts, rows = true class, columns = predicted class.
        classes: class names in label order.
        path: the PNG to write.
        title: the figure title.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = 1.0 + 0.75 * len(classes)
    figure = new_figure(size + 1.5, size)
    ax = figure.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, list(classes), rotation=45, ha="right")
    ax.set_yticks(ticks, list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(counts):
        color = "white" if share[i, j] > 0.5 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize="small")
    if title:
        ax.set_title(title)
    save_figure_atomic(figure, path)
