"""Dataset statistics: per-split, per-class frame counts, class weights and skips.

``python -m fer_multires.stats data=NAME data.root=PATH [stats.json=FILE]`` prints the paper's
Table 1 (frames per class and split) and Table 2 (class weights, 1 - training frequency), and
what the reader skipped and why. With ``stats.json=FILE`` it also writes them as JSON.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import fer_multires.schemas  # noqa: F401 - registers the typed configs before Hydra composes
from fer_multires.data.labels import class_weights
from fer_multires.data.readers.index import DatasetIndex
from fer_multires.utils.config import CONFIG_DIR, instantiate
from fer_multires.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def dataset_stats(index: DatasetIndex) -> dict[str, Any]:
    """Summarise an index: classes, per-split counts, class weights and skip counts.

    The same shape for every dataset.

    Returns:
        ``{"dataset", "classes", "layout", "splits": {split: {"videos", "frames", "per_class",
        "skipped"}}, "class_weights", "skipped", "videos_without_frames"}``; ``frames`` counts
        the usable samples, ``videos`` the videos that contributed frames (null for still-image
        datasets); ``class_weights`` is null when the training split has no usable sample.
    """
    splits = {}
    for name, split in index.splits.items():
        per_class = split.class_counts(index.num_classes)
        splits[name] = {
            "videos": split.num_videos_with_frames() if split.has_videos else None,
            "frames": len(split),
            "per_class": [int(n) for n in per_class],
            "skipped": split.skipped.as_dict(),
        }
    # no usable training sample (e.g. every image missing): the counts say why; no weights
    weights = class_weights(splits["train"]["per_class"]) if splits["train"]["frames"] else None
    return {
        "dataset": index.name,
        "classes": list(index.classes),
        "layout": index.layout,
        "splits": splits,
        "class_weights": None if weights is None else [round(float(w), 6) for w in weights],
        "skipped": index.skipped().as_dict(),
        "videos_without_frames": {
            name: split.missing_videos for name, split in index.splits.items()
        },
    }


def format_stats(stats: dict[str, Any]) -> str:
    """Render the statistics as plain-text tables (Table 1, Table 2, skips)."""
    classes = stats["classes"]
    width = max(11, *(len(c) + 2 for c in classes))
    head = f"{'':<12}" + "".join(f"{c:>{width}}" for c in classes) + f"{'total':>{width}}"
    lines = [f"Samples per class ({stats.get('dataset', 'affwild2')}: {stats['layout']})", head]
    for name, split in stats["splits"].items():
        total = split["frames"]
        counts = "".join(f"{n:>{width}d}" for n in split["per_class"])
        share = "".join(
            f"{f'({100.0 * n / total:.1f}%)':>{width}}" if total else f"{'-':>{width}}"
            for n in split["per_class"]
        )
        lines.append(f"{name:<12}{counts}{total:>{width}d}")
        lines.append(f"{'':<12}{share}")
        if split["videos"] is not None:
            lines.append(f"{'':<12}videos with frames: {split['videos']}")
    lines += ["", "Class weights (1 - training frequency)"]
    if stats["class_weights"] is None:
        lines.append("  none: the training split has no usable sample (see Skipped)")
    else:
        lines.append(head[: 12 + width * len(classes)])
        weights = "".join(f"{w:>{width}.3f}" for w in stats["class_weights"])
        lines.append(f"{'weight':<12}{weights}")
    lines += ["", "Skipped"]
    for key, value in stats["skipped"].items():
        lines.append(f"  {key:<24}{value:>10d}")
    for split, videos in stats["videos_without_frames"].items():
        if videos:
            lines.append(f"  {split} videos without frames: {', '.join(videos)}")
    return "\n".join(lines)


def run_stats(cfg: DictConfig) -> dict[str, Any]:
    """Read the configured dataset, print its statistics and optionally write them as JSON."""
    datamodule = instantiate(cfg.data)
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
