"""Assembling an evaluation's results: from the gathered raw arrays to :class:`EvalResults`.

Also scores temporal smoothing of the native-resolution probabilities within each video, with
the window chosen on ``val_select`` (and reported on ``val_rest``); still-image datasets have no
videos, so smoothing is skipped for them, and the report says so.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.data.batch_transforms import TRAINING_KERNEL
from fer_multires.data.datamodule import FERDataModule
from fer_multires.evaluation.classes import ClassMatch
from fer_multires.evaluation.config import EvalSettings
from fer_multires.evaluation.module import evaluation_points
from fer_multires.metrics import confusion_from_labels
from fer_multires.models.hub import initial_weights_of
from fer_multires.results import (
    EVAL_SPLITS,
    NATIVE,
    VAL_LOADERS,
    EvalResults,
    SplitMetrics,
)
from fer_multires.smoothing import GAUSSIAN_WINDOW_SIGMAS, choose_window, smooth_probabilities
from fer_multires.uncertainty import (
    FEW_GROUPS,
    BootstrapSettings,
    PerVideoStats,
    VideoBootstrap,
    group_confusions,
    per_video_stats,
    point_name,
)
from fer_multires.utils.io import printable_name

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Native-resolution predictions of ``val_full``, sorted by (video, frame).

    Attributes:
        split: per row, ``val_select`` or ``val_rest``.
        video: per row, the video name (for still images: the image's name).
        frame: per row, the frame number (0 for still images).
        label: per row, the true class index (into the evaluation's classes).
        predicted: per row, the predicted class index (argmax of the logits).
        probs: ``(N, C)`` class probabilities (softmax of the logits).
        point_predicted: ``(N, P)`` the predicted class at every evaluated point
            (:func:`~fer_multires.evaluation.module.evaluation_points`; native first).
        has_videos: whether the rows are video frames (else still images).
    """

    split: np.ndarray
    video: np.ndarray
    frame: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    probs: np.ndarray
    point_predicted: np.ndarray
    has_videos: bool = True

    @property
    def unit(self) -> str:
        """What a group of rows is: ``video``, or ``image`` for still images."""
        return "video" if self.has_videos else "image"

    def mask(self, split: str) -> np.ndarray:
        """Return the rows of ``split`` (all rows for ``val_full``)."""
        if split == "val_full":
            return np.ones(len(self.frame), dtype=bool)
        return self.split == split


@dataclass
class RawResults:
    """What the test epoch produced: confusion matrices, skip counts and native predictions.

    Attributes:
        confusions: the training kernel's ``{split: {resolution key: confusion}}``.
        degradations: ``{kernel: {split: {resolution key: confusion}}}`` for every evaluated
            kernel (the native images' under each).
        skipped: unreadable samples left out, per split.
        excluded: per split, the samples of each class the model does not know.
        predictions: the native-resolution predictions.
        per_video: the confusion matrices of each video (image) at every point.
    """

    confusions: dict[str, dict[str, np.ndarray]]
    degradations: dict[str, dict[str, dict[str, np.ndarray]]]
    skipped: dict[str, int]
    excluded: dict[str, dict[str, int]]
    predictions: Predictions
    per_video: PerVideoStats


def load_raw_results(
    path: Path, datamodule: FERDataModule, settings: EvalSettings, match: ClassMatch
) -> RawResults:
    """Read the file saved by :class:`EvalModule` and check that every sample counted once.

    Raises:
        RuntimeError: if a sample was counted twice.
    """
    with np.load(path) as raw:
        data = {key: raw[key] for key in raw.files}
    points = evaluation_points(settings.resolutions, settings.degradations)
    degradations: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for kernel in settings.degradations:
        slots = {
            NATIVE if r is None else str(r): i
            for i, (k, r) in enumerate(points)
            if k in (None, kernel)
        }
        by_split = {
            split: {key: data["confusion"][s][i] for key, i in slots.items()}
            for s, split in enumerate(VAL_LOADERS)
        }
        by_split["val_full"] = {k: sum(by_split[s][k] for s in VAL_LOADERS) for k in slots}
        degradations[kernel] = by_split
    skipped = {split: int(data["skipped"][s]) for s, split in enumerate(VAL_LOADERS)}
    skipped["val_full"] = sum(skipped.values())
    excluded = {
        split: match.excluded_counts(datamodule.splits[split].label) for split in EVAL_SPLITS
    }
    predictions = build_predictions(data, datamodule, skipped, excluded, match)
    names = [point_name(k, NATIVE if r is None else str(r)) for k, r in points]
    per_video = per_video_stats(
        predictions.video, predictions.split, predictions.label, predictions.point_predicted,
        names, match.shared, predictions.unit,
    )  # fmt: skip
    check_per_video(per_video, degradations)
    return RawResults(
        degradations[TRAINING_KERNEL], degradations, skipped, excluded, predictions, per_video
    )


def check_per_video(
    per_video: PerVideoStats, degradations: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]
) -> None:
    """Check that the per-video matrices add up to each split's (summed-metric) matrix.

    Raises:
        RuntimeError: naming the split and point where they differ (a bug, not bad input).
    """
    for kernel, by_split in degradations.items():
        for split, by_key in by_split.items():
            rows = per_video.split_groups(split)
            for key, confusion in by_key.items():
                summed = per_video.confusions[rows, per_video.point_index(kernel, key)].sum(0)
                if not np.array_equal(summed, confusion):
                    raise RuntimeError(
                        f"{split} {point_name(kernel, key)}: the per-{per_video.unit} confusion "
                        "matrices do not add up to the split's"
                    )


def build_predictions(
    data: Mapping[str, np.ndarray],
    datamodule: FERDataModule,
    skipped: Mapping[str, int],
    excluded: Mapping[str, Mapping[str, int]],
    match: ClassMatch,
) -> Predictions:
    """Turn gathered (split, index) rows into named, sorted ``val_full`` predictions."""
    names, videos, frames, labels = [], [], [], []
    for s, split in enumerate(VAL_LOADERS):
        index = datamodule.splits[split]
        rows = data["index"][data["split"] == s]
        check_coverage(split, rows, len(index), skipped[split], sum(excluded[split].values()))
        names.append(np.full(len(rows), split))
        if index.has_videos:
            videos.append(np.asarray(index.video_names, dtype=object)[index.video_id[rows]])
            frames.append(index.frame[rows].astype(np.int64))
        else:
            names_read = [printable_name(index.image_relpath(i)) for i in rows]
            videos.append(np.array(names_read, dtype=object))
            frames.append(np.zeros(len(rows), dtype=np.int64))
        labels.append(match.label_map[index.label[rows].astype(np.int64)])
    if not sum(map(len, names)):
        raise RuntimeError(
            f"val_full: none of its {len(datamodule.splits['val_full'])} samples was evaluated "
            f"({skipped['val_full']} skipped as unreadable under data.on_bad_image=skip, the log "
            "names each file): there is nothing to score"
        )
    video = np.concatenate(videos)
    frame = np.concatenate(frames)
    order = np.lexsort((frame, np.unique(video.astype(str), return_inverse=True)[1]))
    split_rows = np.concatenate([np.flatnonzero(data["split"] == s) for s in range(2)])
    point_predicted = data["predicted"][split_rows][order].astype(np.int64)
    return Predictions(
        split=np.concatenate(names)[order],
        video=video[order],
        frame=frame[order],
        label=np.concatenate(labels)[order],
        predicted=point_predicted[:, 0],
        probs=data["probs"][split_rows][order],
        point_predicted=point_predicted,
        has_videos=datamodule.splits["val_full"].has_videos,
    )


def check_coverage(split: str, rows: np.ndarray, size: int, skipped: int, excluded: int) -> None:
    """Check that each sample of a split was evaluated at most once, and say if any was not.

    Raises:
        RuntimeError: if a sample was evaluated twice (e.g. a padding sampler).
    """
    if np.unique(rows).size != rows.size:
        raise RuntimeError(
            f"{split}: {rows.size - np.unique(rows).size} samples were evaluated twice; keep "
            "trainer.use_distributed_sampler=false"
        )
    if rows.size + skipped + excluded != size:
        log.warning(
            "%s: %d of its %d samples were evaluated (%d skipped as unreadable, %d of classes "
            "the model does not know); is trainer.limit_test_batches set?",
            split,
            rows.size,
            size,
            skipped,
            excluded,
        )


def smoothing_results(
    predictions: Predictions,
    kind: str,
    windows: Sequence[int],
    classes: Sequence[str],
    bootstrap: VideoBootstrap | None = None,
) -> dict[str, Any]:
    """Score temporal smoothing for each window; choose the window on ``val_select``.

    Window 1 (no smoothing, the argmax of the logits) is always scored, so smoothing is only
    chosen when it helps on ``val_select``. With ``bootstrap``, each score gets its interval on
    the same draws of videos as the unsmoothed scores (smoothing stays within a video, so the
    smoothed per-video confusion matrices are resampled as the others are).

    Returns:
        ``{"kind", "windows", "chosen_window", "chosen_on", "results": {split: {window: metrics}}}``
        (plus ``gaussian_sigma`` for the Gaussian); ``{"kind": "none"}`` without smoothing.
    """
    if kind == "none":
        return {"kind": "none"}
    if not predictions.has_videos:
        return {"kind": "none", "reason": "still images: the dataset has no videos to smooth"}
    names, video_ids = np.unique(predictions.video.astype(str), return_inverse=True)
    all_windows = sorted({1, *windows})
    results: dict[str, dict[str, Any]] = {split: {} for split in EVAL_SPLITS}
    for window in all_windows:
        predicted = predictions.predicted
        if window > 1:
            smoothed = smooth_probabilities(
                predictions.probs, video_ids, predictions.frame, window, kind
            )
            predicted = smoothed.argmax(axis=1)
        per_group = group_confusions(
            video_ids, predictions.label, predicted[:, None], len(names), len(classes)
        )
        for split in EVAL_SPLITS:
            rows = predictions.mask(split)
            confusion = confusion_from_labels(
                predictions.label[rows], predicted[rows], len(classes)
            )
            metrics = SplitMetrics.from_confusion(confusion, classes)
            if bootstrap is not None and (ci := bootstrap.intervals(split, per_group)):
                metrics = metrics.with_interval(ci[0], bootstrap.settings.percent)
            results[split][str(window)] = metrics.to_json()
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


def evaluated_dataset(datamodule: FERDataModule) -> str:
    """The dataset's name, and the split evaluated when it is not the validation split."""
    if datamodule.index is None:
        return ""
    name, split = datamodule.index.name, datamodule.eval_split
    return name if split == "val" else f"{name} ({split} split)"


def bootstrap_entry(per_video: PerVideoStats, settings: BootstrapSettings) -> dict[str, Any]:
    """Return ``metrics.json``'s ``bootstrap`` entry; warn about splits with few videos."""
    groups = {split: len(per_video.split_groups(split)) for split in EVAL_SPLITS}
    for split, count in groups.items():
        if count < FEW_GROUPS:
            log.warning("%s has %d %ss: its intervals say little (a bootstrap draws only "
                        "from the %ss there are)", split, count, per_video.unit,
                        per_video.unit)  # fmt: skip
    return settings.to_json(per_video.unit, groups)


def build_results(
    raw: RawResults,
    settings: EvalSettings,
    datamodule: FERDataModule,
    run_config: Path | None,
    match: ClassMatch,
) -> EvalResults:
    """Assemble the evaluation's results: per split and resolution, plus context and smoothing.

    Every score gets its bootstrap interval over videos (``eval.bootstrap``), every point of a
    split on the same draws.
    """
    classes = list(match.shared)
    bootstrap = None
    intervals: dict[str, list[dict[str, tuple[float, float]]] | None] = {}
    if settings.bootstrap.enabled:
        start = time.perf_counter()
        bootstrap = VideoBootstrap.create(raw.per_video, settings.bootstrap)
        intervals = {s: bootstrap.intervals(s, raw.per_video.confusions) for s in EVAL_SPLITS}
        log.info("bootstrap intervals (%d resamples of %d %ss) in %.2f s",
                 settings.bootstrap.samples, len(raw.per_video.groups), raw.per_video.unit,
                 time.perf_counter() - start)  # fmt: skip

    def metrics(kernel: str) -> dict[str, dict[str, SplitMetrics]]:
        out: dict[str, dict[str, SplitMetrics]] = {}
        for split in EVAL_SPLITS:
            out[split] = {}
            for key, confusion in raw.degradations[kernel][split].items():
                entry = SplitMetrics.from_confusion(confusion, classes)
                if ci := intervals.get(split):
                    point = raw.per_video.point_index(kernel, key)
                    entry = entry.with_interval(ci[point], settings.bootstrap.percent)
                out[split][key] = entry
        return out

    degradations = {kernel: metrics(kernel) for kernel in raw.degradations}
    return EvalResults(
        checkpoint=os.path.abspath(settings.ckpt_path),
        data_root=os.path.abspath(datamodule.root),
        run_config=str(run_config) if run_config else None,
        classes=classes,
        native_size=list(datamodule.native_size),
        resolutions=list(settings.resolutions),
        skipped_images=raw.skipped,
        splits=degradations[TRAINING_KERNEL],
        smoothing=smoothing_results(
            raw.predictions, settings.smoothing, settings.windows, classes, bootstrap
        ),
        dataset=evaluated_dataset(datamodule),
        model_classes=list(match.model_classes),
        excluded_classes=dict(raw.excluded["val_full"]),
        degradations=degradations,
        jpeg_quality=settings.jpeg_quality,
        bootstrap=bootstrap_entry(raw.per_video, settings.bootstrap) if bootstrap else None,
        initial_weights=initial_weights_of(settings.ckpt_path, run_config),
    )
