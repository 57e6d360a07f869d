"""Every figure: an evaluation's (robustness, confusion matrix), the sweep report's, compare's.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state), and
written atomically: to a temporary name in the target folder, then renamed.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.results import NATIVE, json_interval
from fer_multires.utils.io import atomic_output

#: ``(metric key, axis title, top of the axis)`` of the panels of the resolution-robustness
#: figure of an expression model (other tasks': ``evaluation/outputs.py``, ``TASK_PANELS``).
ROBUSTNESS_PANELS: tuple[tuple[str, str, float], ...] = (
    ("challenge_score", "challenge score", 1.0),
    ("f1_macro", "macro F1", 1.0),
    ("accuracy", "accuracy", 1.0),
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
    results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]],
    resolutions: Sequence[int],
    path: str | Path,
    split: str = "val_rest",
    panels: Sequence[tuple[str, str, float]] = ROBUSTNESS_PANELS,
) -> None:
    """Plot the panels' metrics (by default score, macro F1, accuracy) against the resolution.

    With one degradation kernel, one line per split; with several, one line per kernel on
    ``split``. The native resolution (no degradation) is a dashed line. The y axes start at 0
    (or below, for a negative value: a CCC can be), so that a small drop does not look like a
    cliff, and end at the panel's top. Entries with an interval (``ci95``) get a shaded band.

    Args:
        results: ``{kernel: {split: {"native" | str(resolution): {"challenge_score",
            "f1_macro", "accuracy", ...}}}}``.
        resolutions: the degraded resolutions, in pixels.
        path: the PNG to write.
        split: the split drawn when there are several kernels.
        panels: ``(metric key, title, top of the axis)`` of each panel.
    """
    if len(results) == 1:
        lines = dict(next(iter(results.values())))
    else:
        lines = {kernel: by_split[split] for kernel, by_split in results.items()}
    figure = new_figure(4.2 * max(len(panels), 1.5), 3.8)
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    xs = sorted(resolutions)
    for ax, (key, title, top) in zip(axes, panels, strict=True):
        lowest = 0.0
        for i, (name, by_res) in enumerate(lines.items()):
            color = f"C{i}"
            ys = [by_res[str(r)][key] for r in xs]
            ax.plot(xs, ys, marker="o", color=color, label=name)
            bands = [json_interval(by_res[str(r)], key) for r in xs]
            draw_band(ax, xs, bands, color)
            lowest = min(lowest, by_res[NATIVE][key], *ys, *(b[0] for b in bands if b))
            if i == 0 or len(results) == 1:
                ax.axhline(by_res[NATIVE][key], color=color, linestyle="--", linewidth=1)
        if xs:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(r) for r in xs])
            ax.minorticks_off()
        ax.set_ylim(lowest, top)
        ax.set_xlabel("resolution (px, shorter side)")
        ax.set_title(title if len(results) == 1 else f"{title} ({split})")
        ax.grid(True, alpha=0.3)
    figure.supylabel("dashed: native resolution (no degradation)", fontsize="small")
    axes[0].legend(loc="best", fontsize="small")
    save_figure_atomic(figure, path)


def draw_band(
    ax: Any, xs: Sequence[float], intervals: Sequence[Sequence[float] | None], color: str
) -> None:
    """Shade the intervals around a line (nothing if any point lacks one)."""
    if not xs or any(b is None for b in intervals):
        return
    lows, highs = zip(*intervals, strict=True)
    ax.fill_between(xs, lows, highs, color=color, alpha=0.2, linewidth=0)


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


# --------------------------------------------------------------------------- sweep report


@dataclass
class ScoreGrid:
    """One heatmap panel: a score per (row, column) cell, NaN where a cell has none.

    Attributes:
        rows: row labels, top to bottom.
        cols: column labels, left to right.
        values: ``(len(rows), len(cols))`` scores; NaN cells are drawn grey.
        texts: the annotation of each filled cell, by ``(row index, column index)``.
        title: the panel's title.
        xlabel: the column axis label.
        ylabel: the row axis label.
    """

    rows: list[str]
    cols: list[str]
    values: np.ndarray
    texts: dict[tuple[int, int], str]
    title: str
    xlabel: str
    ylabel: str


def placeholder_figure(message: str) -> Any:
    """Return a small figure that says why there is nothing to plot."""
    figure = new_figure(6, 2)
    figure.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return figure


def plot_score_grids(grids: Sequence[ScoreGrid]) -> Any:
    """Draw heatmap panels side by side on one shared colour scale; return the figure."""
    import matplotlib

    finite = np.concatenate([g.values[np.isfinite(g.values)] for g in grids])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    width = sum(1.2 * len(g.cols) + 2.8 for g in grids)
    height = 0.75 * max(len(g.rows) for g in grids) + 2.0
    figure = new_figure(width, height)
    axes = np.atleast_1d(figure.subplots(1, len(grids)))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.88")
    for ax, grid in zip(axes, grids, strict=True):
        image = ax.imshow(np.ma.masked_invalid(grid.values), cmap=cmap, aspect="auto",
                          vmin=vmin, vmax=vmax)  # fmt: skip
        for (i, j), text in grid.texts.items():
            value = grid.values[i, j]
            dark = np.isfinite(value) and image.norm(value) < 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if dark else "k")
        ax.set_xticks(range(len(grid.cols)), grid.cols)
        ax.set_yticks(range(len(grid.rows)), grid.rows)
        ax.set_xlabel(grid.xlabel)
        ax.set_ylabel(grid.ylabel)
        chars = int(11 * (1.2 * len(grid.cols) + 2.8))
        ax.set_title(textwrap.fill(grid.title, width=chars), fontsize=9)
    if finite.size:
        figure.colorbar(image, ax=list(axes), label="challenge score")
    return figure


def plot_resolution_curves(
    curves: Mapping[str, Mapping[str, float]],
    ylabel: str,
    bands: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> Any:
    """Draw a score against input resolution, one line per label; native as a square at right.

    Args:
        curves: ``{label: {"8" | "16" | ... | "native": score}}``.
        ylabel: the score axis label.
        bands: ``{label: {resolution: (low, high)}}``: each line's intervals, shaded (a line
            with an interval missing at any resolution gets no band).
    """
    all_res = sorted({int(r) for scores in curves.values() for r in scores if r.isdigit()})
    native_x = 2.0 * max(all_res, default=1)
    figure = new_figure(8.5 if len(curves) > 6 else 7, 4.5)
    ax = figure.add_subplot()
    for label, scores in curves.items():
        points = sorted((int(r), v) for r, v in scores.items() if r.isdigit())
        xs = [r for r, _ in points]
        (line,) = ax.plot(xs, [v for _, v in points], marker="o", label=label)
        band = (bands or {}).get(label, {})
        draw_band(ax, xs, [band.get(str(r)) for r in xs], line.get_color())
        if NATIVE in scores:
            ax.plot([native_x], [scores[NATIVE]], marker="s", color=line.get_color(),
                    linestyle="none")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks([*all_res, native_x], [*map(str, all_res), NATIVE])
    ax.minorticks_off()
    if all_res:
        ax.axvline(math.sqrt(all_res[-1] * native_x), color="0.7", linestyle=":")
    ax.set_xlabel("input resolution (px; degraded and scaled back)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    outside = len(curves) > 6
    ax.legend(
        fontsize=7,
        loc="upper left" if outside else "lower right",
        bbox_to_anchor=(1.01, 1.0) if outside else None,
    )
    return figure


# --------------------------------------------------------------------------- compare


def plot_comparison(
    a: Mapping[str, float],
    b: Mapping[str, float],
    names: tuple[str, str],
    ylabel: str,
    path: str | Path,
    bands: tuple[Mapping[str, Sequence[float]], Mapping[str, Sequence[float]]] = ({}, {}),
    difference: Mapping[str, tuple[float, Sequence[float] | None]] | None = None,
) -> None:
    """Plot two models' score against resolution (log scale), native as dashed lines.

    Args:
        a: model A's score per resolution key (``"8"``, ..., ``"native"``).
        b: model B's.
        names: the two models' names.
        ylabel: the score axis label.
        path: the PNG to write.
        bands: each model's own interval per key, drawn as a shaded band.
        difference: per key, A - B and its paired interval (or None): a second panel with the
            difference, its band and the zero line.
    """
    panels = 2 if difference else 1
    figure = new_figure(6.0 * panels, 4.0)
    axes = np.atleast_1d(figure.subplots(1, panels))
    ax = axes[0]
    keys = sorted((k for k in a.keys() & b.keys() if k != NATIVE), key=int)
    xs = [int(k) for k in keys]
    for i, (scores, name, band) in enumerate(((a, names[0], bands[0]), (b, names[1], bands[1]))):
        ax.plot(xs, [scores[k] for k in keys], marker="o", color=f"C{i}", label=name)
        draw_band(ax, xs, [band.get(k) for k in keys], f"C{i}")
        if NATIVE in scores:
            ax.axhline(scores[NATIVE], color=f"C{i}", linestyle="--", linewidth=1)
    # from 0 (or a negative value's, a CCC's) to 1 (or above, an mtl_score's): a small drop
    # must not look like a cliff
    values = [*a.values(), *b.values(), *(v for band in bands for bound in band.values()
                                          for v in bound)]  # fmt: skip
    ax.set_ylim(min(0.0, *values), max(1.0, *values))
    ax.set_ylabel(ylabel)
    ax.legend()
    if difference:
        diff_ax = axes[1]
        diff_ax.plot(xs, [difference[k][0] for k in keys], marker="o", color="C2")
        draw_band(diff_ax, xs, [difference[k][1] for k in keys], "C2")
        diff_ax.axhline(0.0, color="0.3", linewidth=1)
        if NATIVE in difference:
            diff_ax.axhline(difference[NATIVE][0], color="C2", linestyle="--", linewidth=1)
        diff_ax.set_ylabel(f"{names[0]} - {names[1]} (band: paired interval)")
    for axis in axes:
        axis.set_xscale("log", base=2)
        axis.set_xticks(xs, [str(x) for x in xs])
        axis.minorticks_off()
        axis.set_xlabel("input resolution (px, shorter side; dashed: native)")
        axis.grid(alpha=0.3)
    save_figure_atomic(figure, path)
