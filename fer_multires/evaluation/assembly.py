"""Assembling an evaluation's results: from the gathered raw arrays to :class:`EvalResults`.

Also scores temporal smoothing of the native-resolution probabilities within each video, with
the window chosen on ``val_select`` (and reported on ``val_rest``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.data.datamodule import FERDataModule
from fer_multires.evaluation.config import EvalSettings
from fer_multires.metrics import confusion_from_labels
from fer_multires.results import (
    EVAL_SPLITS,
    NATIVE,
    VAL_LOADERS,
    EvalResults,
    SplitMetrics,
)
from fer_multires.smoothing import GAUSSIAN_WINDOW_SIGMAS, choose_window, smooth_probabilities

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Native-resolution predictions of ``val_full``, sorted by (video, frame).

    Attributes:
        split: per row, ``val_select`` or ``val_rest``.
        video: per row, the video name.
        frame: per row, the frame number.
        label: per row, the true class index.
        predicted: per row, the predicted class index (argmax of the logits).
        probs: ``(N, C)`` class probabilities (softmax of the logits).
    """

    split: np.ndarray
    video: np.ndarray
    frame: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    probs: np.ndarray

    def mask(self, split: str) -> np.ndarray:
        """Return the rows of ``split`` (all rows for ``val_full``)."""
        if split == "val_full":
            return np.ones(len(self.frame), dtype=bool)
        return self.split == split


@dataclass
class RawResults:
    """What the test epoch produced: confusion matrices, skip counts and native predictions."""

    confusions: dict[str, dict[str, np.ndarray]]
    skipped: dict[str, int]
    predictions: Predictions


def load_raw_results(
    path: Path, datamodule: FERDataModule, resolutions: Sequence[int]
) -> RawResults:
    """Read the file saved by :class:`EvalModule` and check that every sample counted once.

    Raises:
        RuntimeError: if a sample was counted twice.
    """
    with np.load(path) as raw:
        data = {key: raw[key] for key in raw.files}
    keys = [NATIVE, *(str(r) for r in resolutions)]
    confusions = {
        split: dict(zip(keys, data["confusion"][s], strict=True))
        for s, split in enumerate(VAL_LOADERS)
    }
    confusions["val_full"] = {k: sum(confusions[s][k] for s in VAL_LOADERS) for k in keys}
    skipped = {split: int(data["skipped"][s]) for s, split in enumerate(VAL_LOADERS)}
    skipped["val_full"] = sum(skipped.values())
    predictions = build_predictions(data, datamodule, skipped)
    return RawResults(confusions, skipped, predictions)


def build_predictions(
    data: Mapping[str, np.ndarray], datamodule: FERDataModule, skipped: Mapping[str, int]
) -> Predictions:
    """Turn gathered (split, index) rows into named, sorted ``val_full`` predictions."""
    names, videos, frames, labels = [], [], [], []
    for s, split in enumerate(VAL_LOADERS):
        index = datamodule.splits[split]
        rows = data["index"][data["split"] == s]
        check_coverage(split, rows, len(index), skipped[split])
        names.append(np.full(len(rows), split))
        videos.append(np.asarray(index.video_names, dtype=object)[index.video_id[rows]])
        frames.append(index.frame[rows].astype(np.int64))
        labels.append(index.label[rows].astype(np.int64))
    video = np.concatenate(videos)
    frame = np.concatenate(frames)
    order = np.lexsort((frame, np.unique(video.astype(str), return_inverse=True)[1]))
    split_rows = np.concatenate([np.flatnonzero(data["split"] == s) for s in range(2)])
    return Predictions(
        split=np.concatenate(names)[order],
        video=video[order],
        frame=frame[order],
        label=np.concatenate(labels)[order],
        predicted=data["predicted"][split_rows][order],
        probs=data["probs"][split_rows][order],
    )


def check_coverage(split: str, rows: np.ndarray, size: int, skipped: int) -> None:
    """Check that each sample of a split was evaluated at most once, and say if any was not.

    Raises:
        RuntimeError: if a sample was evaluated twice (e.g. a padding sampler).
    """
    if np.unique(rows).size != rows.size:
        raise RuntimeError(
            f"{split}: {rows.size - np.unique(rows).size} samples were evaluated twice; keep "
            "trainer.use_distributed_sampler=false"
        )
    if rows.size + skipped != size:
        log.warning(
            "%s: %d of its %d frames were evaluated (%d skipped as unreadable); "
            "is trainer.limit_test_batches set?",
            split,
            rows.size,
            size,
            skipped,
        )


def smoothing_results(
    predictions: Predictions, kind: str, windows: Sequence[int], classes: Sequence[str]
) -> dict[str, Any]:
    """Score temporal smoothing for each window; choose the window on ``val_select``.

    Window 1 (no smoothing, the argmax of the logits) is always scored, so smoothing is only
    chosen when it helps on ``val_select``.

    Returns:
        ``{"kind", "windows", "chosen_window", "chosen_on", "results": {split: {window: metrics}}}``
        (plus ``gaussian_sigma`` for the Gaussian); ``{"kind": "none"}`` without smoothing.
    """
    if kind == "none":
        return {"kind": "none"}
    video_ids = np.unique(predictions.video.astype(str), return_inverse=True)[1]
    all_windows = sorted({1, *windows})
    results: dict[str, dict[str, Any]] = {split: {} for split in EVAL_SPLITS}
    for window in all_windows:
        predicted = predictions.predicted
        if window > 1:
            smoothed = smooth_probabilities(
                predictions.probs, video_ids, predictions.frame, window, kind
            )
            predicted = smoothed.argmax(axis=1)
        for split in EVAL_SPLITS:
            rows = predictions.mask(split)
            confusion = confusion_from_labels(
                predictions.label[rows], predicted[rows], len(classes)
            )
            results[split][str(window)] = SplitMetrics.from_confusion(confusion, classes).to_json()
    chosen = choose_window(
        {w: results["val_select"][str(w)]["challenge_score"] for w in all_windows}
    )
    out: dict[str, Any] = {
        "kind": kind,
        "windows": all_windows,
        "chosen_window": chosen,
        "chosen_on": "val_select",
        "results": results,
    }
    if kind == "gaussian":
        out["gaussian_sigma"] = f"window / {GAUSSIAN_WINDOW_SIGMAS:g}"
    return out


# --------------------------------------------------------------------------- writing


def build_results(
    raw: RawResults,
    settings: EvalSettings,
    datamodule: FERDataModule,
    run_config: Path | None,
) -> EvalResults:
    """Assemble the evaluation's results: per split and resolution, plus context and smoothing."""
    classes = list(datamodule.classes)
    return EvalResults(
        checkpoint=os.path.abspath(settings.ckpt_path),
        data_root=os.path.abspath(datamodule.root),
        run_config=str(run_config) if run_config else None,
        classes=classes,
        native_size=list(datamodule.native_size),
        resolutions=list(settings.resolutions),
        skipped_images=raw.skipped,
        splits={
            split: {
                key: SplitMetrics.from_confusion(confusion, classes)
                for key, confusion in raw.confusions[split].items()
            }
            for split in EVAL_SPLITS
        },
        smoothing=smoothing_results(raw.predictions, settings.smoothing, settings.windows, classes),
    )
