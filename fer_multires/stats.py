"""Dataset statistics: per-split, per-class frame counts, class weights and skips; per task.

``python -m fer_multires.stats data=NAME data.root=PATH [task=TASK] [stats.json=FILE]`` prints
the paper's Table 1 (frames per class and split) and Table 2 (class weights, 1 - training
frequency), and what the reader skipped and why. With ``stats.json=FILE`` it also writes them as
JSON.

``task=va`` (Aff-Wild2's valence-arousal set) prints, per split, the frames with a label, the
mean valence and arousal and a histogram of each over [-1, 1]; ``task=au`` (its action units)
the positives and the positive rate of each unit; ``task=mtl`` all three sections over the frames
any of the sets annotates. ``task=expr`` (the default) is the expression track alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

import fer_multires.schemas  # noqa: F401 - registers the typed configs before Hydra composes
from fer_multires.data.labels import class_weights
from fer_multires.data.readers.index import DatasetIndex, SplitIndex
from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, TASK_HEADS, VA_NAMES, check_task
from fer_multires.utils.config import CONFIG_DIR, instantiate
from fer_multires.utils.io import write_json_atomic

log = logging.getLogger(__name__)

#: The valence and arousal histograms: this many bins of equal width over [-1, 1].
VA_HISTOGRAM_BINS = 10
#: The width of the longest bar of the printed histograms, in characters.
HISTOGRAM_WIDTH = 24


def va_histogram_edges() -> list[float]:
    """Return the edges of the valence and arousal histograms' bins (``VA_HISTOGRAM_BINS + 1``)."""
    return [round(float(e), 6) for e in np.linspace(-1.0, 1.0, VA_HISTOGRAM_BINS + 1)]


def va_stats(va: np.ndarray) -> dict[str, Any]:
    """Summarise a split's valence-arousal targets (NaN: not annotated).

    Returns:
        ``va_frames`` (frames with a label), ``valence_mean``, ``arousal_mean`` (null without
        frames) and ``valence_histogram``, ``arousal_histogram``: frames per bin of
        :func:`va_histogram_edges` (the last bin includes 1).
    """
    annotated = va[~np.isnan(va).any(axis=1)].astype(np.float64)
    stats: dict[str, Any] = {"va_frames": len(annotated)}
    for column, name in enumerate(VA_NAMES):
        mean = float(annotated[:, column].mean()) if len(annotated) else None
        stats[f"{name}_mean"] = None if mean is None else round(mean, 6)
    for column, name in enumerate(VA_NAMES):
        counts, _ = np.histogram(annotated[:, column], bins=VA_HISTOGRAM_BINS, range=(-1.0, 1.0))
        stats[f"{name}_histogram"] = [int(n) for n in counts]
    return stats


def au_stats(au: np.ndarray) -> dict[str, Any]:
    """Summarise a split's action-unit targets (-1: not annotated), units in ``AU_NAMES`` order.

    Returns:
        ``au_frames`` (frames with at least one unit annotated), ``au_annotated`` (frames with
        each unit annotated), ``au_positives`` (frames with each unit present) and ``au_rate``
        (positives / annotated, null for a unit never annotated).
    """
    annotated = (au >= 0).sum(axis=0)
    positives = (au == 1).sum(axis=0)
    return {
        "au_frames": int((au >= 0).any(axis=1).sum()),
        "au_annotated": [int(n) for n in annotated],
        "au_positives": [int(n) for n in positives],
        "au_rate": [
            round(float(p) / float(n), 6) if n else None
            for p, n in zip(positives, annotated, strict=True)
        ],
    }


def split_stats(split: SplitIndex, heads: tuple[str, ...], num_classes: int) -> dict[str, Any]:
    """Summarise one split for the task whose heads are ``heads``."""
    stats: dict[str, Any] = {
        "videos": split.num_videos_with_frames() if split.has_videos else None,
        "frames": len(split),
    }
    if "expr" in heads:
        stats["per_class"] = [int(n) for n in split.class_counts(num_classes)]
    if "va" in heads:
        stats.update(va_stats(split.va))
    if "au" in heads:
        stats.update(au_stats(split.au))
    stats["skipped"] = split.skipped.as_dict()
    return stats


def dataset_stats(index: DatasetIndex) -> dict[str, Any]:
    """Summarise an index: per-split counts, skip counts, and each of its task's sections.

    The same shape for every dataset.

    Returns:
        ``{"dataset", "classes", "layout", "splits": {split: {"videos", "frames", "per_class",
        "skipped"}}, "class_weights", "skipped", "videos_without_frames"}``; ``frames`` counts
        the usable samples, ``videos`` the videos that contributed frames (null for still-image
        datasets); ``class_weights`` is null when the training split has no expression label.
        An index of another task than ``expr`` adds ``task``; ``classes``, ``per_class`` and
        ``class_weights`` are there where it has expression labels (``mtl``), the keys of
        :func:`va_stats` per split and ``va_histogram_edges`` where it has valence-arousal
        targets, the keys of :func:`au_stats` per split and ``au_names`` where it has action
        units.
    """
    heads = TASK_HEADS[index.task]
    splits = {
        name: split_stats(split, heads, index.num_classes) for name, split in index.splits.items()
    }
    stats: dict[str, Any] = {"dataset": index.name}
    if index.task != DEFAULT_TASK:
        stats["task"] = index.task
    if "expr" in heads:
        stats["classes"] = list(index.classes)
    stats["layout"] = index.layout
    if "au" in heads:
        stats["au_names"] = list(AU_NAMES)
    stats["splits"] = splits
    if "expr" in heads:
        # no usable training label (e.g. every image missing): the counts say why; no weights
        train = splits["train"]["per_class"]
        weights = class_weights(train) if sum(train) else None
        stats["class_weights"] = None if weights is None else [round(float(w), 6) for w in weights]
    if "va" in heads:
        stats["va_histogram_edges"] = va_histogram_edges()
    stats["skipped"] = index.skipped().as_dict()
    stats["videos_without_frames"] = {
        name: split.missing_videos for name, split in index.splits.items()
    }
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    """Render the statistics as plain-text tables (Table 1, Table 2, the task's sections, skips)."""
    sections = [format_classes(stats) if "classes" in stats else format_frames(stats)]
    if "va_histogram_edges" in stats:
        sections.append(format_va(stats))
    if "au_names" in stats:
        sections.append(format_au(stats))
    lines = [line for section in sections for line in [*section, ""]]
    lines.append("Skipped")
    key_width = max([24, *(len(key) + 2 for key in stats["skipped"])])
    for key, value in stats["skipped"].items():
        lines.append(f"  {key:<{key_width}}{value:>10d}")
    for split, videos in stats["videos_without_frames"].items():
        if videos:
            lines.append(f"  {split} videos without frames: {', '.join(videos)}")
    return "\n".join(lines)


def format_classes(stats: dict[str, Any]) -> list[str]:
    """Table 1 (samples per class and split) and Table 2 (class weights)."""
    classes = stats["classes"]
    width = max(11, *(len(c) + 2 for c in classes))
    head = f"{'':<12}" + "".join(f"{c:>{width}}" for c in classes) + f"{'total':>{width}}"
    title = f"Samples per class ({stats.get('dataset', 'affwild2')}: {stats['layout']})"
    if "task" in stats:
        title += f", frames with an expression label (task={stats['task']})"
    lines = [title, head]
    for name, split in stats["splits"].items():
        total = sum(split["per_class"])
        counts = "".join(f"{n:>{width}d}" for n in split["per_class"])
        share = "".join(
            f"{f'({100.0 * n / total:.1f}%)':>{width}}" if total else f"{'-':>{width}}"
            for n in split["per_class"]
        )
        lines.append(f"{name:<12}{counts}{total:>{width}d}")
        lines.append(f"{'':<12}{share}")
        if split["videos"] is not None:
            lines.append(f"{'':<12}videos with frames: {split['videos']}")
            if "task" in stats:
                lines.append(f"{'':<12}frames: {split['frames']}")
    lines += ["", "Class weights (1 - training frequency)"]
    if stats["class_weights"] is None:
        lines.append("  none: the training split has no usable sample (see Skipped)")
    else:
        lines.append(head[: 12 + width * len(classes)])
        weights = "".join(f"{w:>{width}.3f}" for w in stats["class_weights"])
        lines.append(f"{'weight':<12}{weights}")
    return lines


def format_frames(stats: dict[str, Any]) -> list[str]:
    """Frames and videos per split (the task has no expression classes)."""
    lines = [
        f"Frames ({stats['dataset']}: {stats['layout']}, task={stats['task']})",
        f"{'':<12}{'frames':>10}{'videos':>10}",
    ]
    for name, split in stats["splits"].items():
        videos = "-" if split["videos"] is None else str(split["videos"])
        lines.append(f"{name:<12}{split['frames']:>10d}{videos:>10}")
    return lines


def format_va(stats: dict[str, Any]) -> list[str]:
    """Per split, the mean valence and arousal and a text histogram of each."""
    edges = stats["va_histogram_edges"]
    lines = [f"Valence and arousal (frames with a label; {len(edges) - 1} bins over [-1, 1])"]
    for name, split in stats["splits"].items():
        if not split["va_frames"]:
            lines.append(f"{name}: no frame with a valence-arousal label")
            continue
        lines.append(
            f"{name}: {split['va_frames']} frames; valence mean {split['valence_mean']:.3f}, "
            f"arousal mean {split['arousal_mean']:.3f}"
        )
        valence, arousal = split["valence_histogram"], split["arousal_histogram"]
        longest = max(*valence, *arousal, 1)
        bar_width = HISTOGRAM_WIDTH + 8
        lines.append(f"  {'bin':<16}{'valence':<{bar_width}}{'arousal':<{bar_width}}")
        for i, (v, a) in enumerate(zip(valence, arousal, strict=True)):
            closing = "]" if i == len(valence) - 1 else ")"
            label = f"[{edges[i]:+.1f}, {edges[i + 1]:+.1f}{closing}"
            lines.append(f"  {label:<16}{histogram_bar(v, longest)}{histogram_bar(a, longest)}")
    return lines


def histogram_bar(count: int, longest: int) -> str:
    """A bar of ``#`` proportional to ``count`` (at least one for a non-zero count), then it."""
    length = round(HISTOGRAM_WIDTH * count / longest)
    bar = "#" * (length if length or not count else 1)
    return f"{bar:<{HISTOGRAM_WIDTH}}{count:>7d} "


def format_au(stats: dict[str, Any]) -> list[str]:
    """Per split, the positives and the positive rate of each action unit."""
    names = stats["au_names"]
    width = max(7, *(len(n) + 2 for n in names))
    lines = [
        "Action units (positives, and their share of the frames where the unit is annotated)",
        f"{'':<16}" + "".join(f"{n:>{width}}" for n in names),
    ]
    for name, split in stats["splits"].items():
        positives = "".join(f"{n:>{width}d}" for n in split["au_positives"])
        rates = "".join(
            f"{'-':>{width}}" if r is None else f"{f'{100.0 * r:.1f}%':>{width}}"
            for r in split["au_rate"]
        )
        lines.append(f"{name + ' positives':<16}{positives}")
        lines.append(f"{name + ' rate':<16}{rates}")
        lines.append(f"{'':<16}frames with a unit annotated: {split['au_frames']}")
    return lines


def run_stats(cfg: DictConfig) -> dict[str, Any]:
    """Read the configured dataset, print its statistics and optionally write them as JSON.

    Raises:
        ValueError: naming ``task`` for a task that is not one of
            :data:`~fer_multires.tasks.TASKS`, before any data is read.
    """
    task = check_task(str(cfg.get("task", DEFAULT_TASK)), "task")
    datamodule = instantiate(cfg.data, task=task)
    datamodule.prepare_data()
    stats = dataset_stats(datamodule.read_index())
    print(format_stats(stats))
    if cfg.stats.json:
        path = Path(cfg.stats.json)
        write_json_atomic(path, stats)
        print(f"\nwrote {path}")
    return stats


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="stats")
def main(cfg: DictConfig) -> None:
    """Entry point of ``python -m fer_multires.stats``."""
    run_stats(cfg)


if __name__ == "__main__":
    main()
