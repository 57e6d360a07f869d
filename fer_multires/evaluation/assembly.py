"""Assembling an evaluation's results: from the gathered raw arrays to :class:`EvalResults`.

Per (split, point), each head's metrics come from the metric states summed across processes;
the per-video statistics are computed from the gathered rows and checked against them. With an
AU head, each AU's threshold is chosen on ``val_select`` at native resolution
(:func:`~fer_multires.task_metrics.choose_thresholds`) and applied unchanged to every split,
resolution, degradation and smoothing window.

Also scores temporal smoothing of the native-resolution outputs within each video, with the
window chosen on ``val_select`` by the task's score (and reported on ``val_rest``): the
expression probabilities, the valence and arousal values and the AU probabilities are averaged
over the same window (one window for every head; the AU thresholds stay those chosen on the
unsmoothed ``val_select``). Still-image datasets have no videos, so smoothing is skipped for
them, and the report says so.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.data.batch_transforms import TRAINING_KERNEL
from fer_multires.data.datamodule import FERDataModule
from fer_multires.evaluation.classes import ClassMatch
from fer_multires.evaluation.config import EvalSettings
from fer_multires.evaluation.module import evaluation_points
from fer_multires.models.hub import initial_weights_of
from fer_multires.results import (
    EVAL_SPLITS,
    NATIVE,
    VAL_LOADERS,
    EvalResults,
    SplitMetrics,
    task_score,
)
from fer_multires.smoothing import GAUSSIAN_WINDOW_SIGMAS, choose_window, smooth_probabilities
from fer_multires.task_metrics import (
    AU_THRESHOLD_STEPS,
    AuCounts,
    choose_thresholds,
    per_au_thresholds,
    threshold_indices,
)
from fer_multires.tasks import AU_MISSING, AU_NAMES, DEFAULT_TASK, EXPR_MISSING, TASK_HEADS
from fer_multires.uncertainty import (
    FEW_GROUPS,
    BootstrapSettings,
    GroupStats,
    PerVideoStats,
    VideoBootstrap,
    group_au_counts,
    group_confusions,
    group_va_sums,
    per_video_stats,
    point_name,
)
from fer_multires.utils.io import printable_name

log = logging.getLogger(__name__)

#: Relative tolerance of the check that the per-video valence-arousal sums add up to the summed
#: metric's: float64 sums of the same float32 values in another order agree to about 1e-15.
VA_SUMS_RTOL = 1e-9


@dataclass
class Predictions:
    """Native-resolution predictions of ``val_full``, sorted by (video, frame).

    The expression fields are None without an expression head, the others without theirs.

    Attributes:
        split: per row, ``val_select`` or ``val_rest``.
        video: per row, the video name (for still images: the image's name).
        frame: per row, the frame number (0 for still images).
        label: per row, the true class index (into the evaluation's classes); -1 where a
            multi-task frame has no expression.
        predicted: per row, the predicted class index (argmax of the logits).
        probs: ``(N, C)`` class probabilities (softmax of the logits).
        point_predicted: ``(N, P)`` the predicted class at every evaluated point
            (:func:`~fer_multires.evaluation.module.evaluation_points`; native first).
        has_videos: whether the rows are video frames (else still images).
        va_target: ``(N, 2)`` annotated valence and arousal (float32, NaN where missing).
        va_predicted: ``(N, P, 2)`` predicted valence and arousal at every point (float32).
        au_target: ``(N, 12)`` AU labels: 1, 0 or -1 (missing).
        au_probs: ``(N, 12)`` native AU probabilities (float32, as the metric saw them).
        au_steps: ``(N, P, 12)`` each probability's step on the threshold grid at every point,
            ``floor(32 p)``: ``p >= k / 32`` exactly when the step is ``>= k``.
    """

    split: np.ndarray
    video: np.ndarray
    frame: np.ndarray
    label: np.ndarray | None
    predicted: np.ndarray | None
    probs: np.ndarray | None
    point_predicted: np.ndarray | None
    has_videos: bool = True
    va_target: np.ndarray | None = None
    va_predicted: np.ndarray | None = None
    au_target: np.ndarray | None = None
    au_probs: np.ndarray | None = None
    au_steps: np.ndarray | None = None

    @property
    def unit(self) -> str:
        """What a group of rows is: ``video``, or ``image`` for still images."""
        return "video" if self.has_videos else "image"

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads predicted, in :data:`~fer_multires.tasks.TASK_HEADS` order."""
        present = {"expr": self.label, "va": self.va_target, "au": self.au_target}
        return tuple(head for head, values in present.items() if values is not None)

    @property
    def task(self) -> str:
        """The task whose heads these are."""
        return next(t for t, heads in TASK_HEADS.items() if heads == self.heads)

    def mask(self, split: str) -> np.ndarray:
        """Return the rows of ``split`` (all rows for ``val_full``)."""
        if split == "val_full":
            return np.ones(len(self.frame), dtype=bool)
        return self.split == split

    def frames(self, split: str) -> int:
        """The frames of ``split`` evaluated."""
        return int(self.mask(split).sum())

    def au_frames(self, split: str) -> int | None:
        """The frames of ``split`` with at least one AU label (None without an AU head)."""
        if self.au_target is None:
            return None
        return int((self.au_target[self.mask(split)] != AU_MISSING).any(axis=1).sum())


@dataclass
class PointState:
    """One (split, point)'s summed metric states, per head (None: a head the task lacks).

    Attributes:
        confusion: the expression ``C x C`` confusion matrix.
        va_sums: the valence-arousal ``(2, 6)`` float64 sums.
        au_counts: the AU counts ``(T, 12)`` at every grid threshold.
    """

    confusion: np.ndarray | None = None
    va_sums: np.ndarray | None = None
    au_counts: AuCounts | None = None

    def __add__(self, other: PointState) -> PointState:
        """The states of both sets of frames (``val_full`` = ``val_select`` + ``val_rest``)."""

        def added(a: Any, b: Any) -> Any:
            return None if a is None else a + b

        return PointState(added(self.confusion, other.confusion),
                          added(self.va_sums, other.va_sums),
                          added(self.au_counts, other.au_counts))  # fmt: skip


def au_counts_at(counts: AuCounts, thresholds: np.ndarray) -> np.ndarray:
    """Return ``(3, 12)`` ``tp, fp, fn`` of grid counts ``(T, 12)`` at each AU's threshold."""
    index, columns = threshold_indices(thresholds), np.arange(len(AU_NAMES))
    return np.stack([np.asarray(c)[index, columns] for c in (counts.tp, counts.fp, counts.fn)])


def au_positive(steps: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Return booleans: each AU predicted present, from grid steps ``(..., 12)`` at thresholds.

    ``p >= k / 32`` exactly when ``floor(32 p) >= k``.
    """
    grid_steps = np.round(np.asarray(thresholds) * AU_THRESHOLD_STEPS).astype(np.int64)
    return steps.astype(np.int64) >= grid_steps


@dataclass
class RawResults:
    """What the test epoch produced: metric states, skip counts and the rows' predictions.

    Attributes:
        states: the training kernel's ``{split: {resolution key: state}}``.
        degradations: ``{kernel: {split: {resolution key: state}}}`` for every evaluated
            kernel (the native images' under each).
        skipped: unreadable samples left out, per split.
        excluded: per split, the samples of each class the model does not know.
        predictions: the native-resolution predictions.
        per_video: the heads' statistics of each video (image) at every point.
        task: the evaluated model's task.
        au_thresholds: ``(12,)`` the AU thresholds chosen on ``val_select`` (native); None
            without an AU head.
    """

    states: dict[str, dict[str, PointState]]
    degradations: dict[str, dict[str, dict[str, PointState]]]
    skipped: dict[str, int]
    excluded: dict[str, dict[str, int]]
    predictions: Predictions
    per_video: PerVideoStats
    task: str = DEFAULT_TASK
    au_thresholds: np.ndarray | None = field(default=None)


def point_states(data: Mapping[str, np.ndarray], loader: int, point: int) -> PointState:
    """Return one (loader, point)'s states from the hand-over file's summed arrays."""
    au = None
    if "au_tp" in data:
        au = AuCounts(*(data[f"au_{name}"][loader, point] for name in ("tp", "fp", "fn")))
    return PointState(
        data["confusion"][loader, point] if "confusion" in data else None,
        data["va_sums"][loader, point] if "va_sums" in data else None,
        au,
    )


def load_raw_results(
    path: Path,
    datamodule: FERDataModule,
    settings: EvalSettings,
    match: ClassMatch | None,
    task: str = DEFAULT_TASK,
) -> RawResults:
    """Read the file saved by :class:`EvalModule`; choose the AU thresholds on ``val_select``.

    Checks that every sample counted once and that the per-video statistics add up.

    Raises:
        RuntimeError: if a sample was counted twice.
    """
    with np.load(path) as raw:
        data = {key: raw[key] for key in raw.files}
    points = evaluation_points(settings.resolutions, settings.degradations)
    degradations: dict[str, dict[str, dict[str, PointState]]] = {}
    for kernel in settings.degradations:
        slots = {
            NATIVE if r is None else str(r): i
            for i, (k, r) in enumerate(points)
            if k in (None, kernel)
        }
        by_split = {
            split: {key: point_states(data, s, i) for key, i in slots.items()}
            for s, split in enumerate(VAL_LOADERS)
        }
        by_split["val_full"] = {k: by_split["val_select"][k] + by_split["val_rest"][k]
                                for k in slots}  # fmt: skip
        degradations[kernel] = by_split
    skipped = {split: int(data["skipped"][s]) for s, split in enumerate(VAL_LOADERS)}
    skipped["val_full"] = sum(skipped.values())
    excluded = {
        split: match.excluded_counts(datamodule.splits[split].label) if match else {}
        for split in EVAL_SPLITS
    }
    predictions = build_predictions(data, datamodule, skipped, excluded, match, task)
    thresholds = None
    if "au" in TASK_HEADS[task]:
        thresholds = choose_thresholds(
            degradations[TRAINING_KERNEL]["val_select"][NATIVE].au_counts
        )
        log.info(
            "AU thresholds chosen on val_select (native): %s",
            ", ".join(f"{a} {t:g}" for a, t in zip(AU_NAMES, thresholds, strict=True)),
        )
    names = [point_name(k, NATIVE if r is None else str(r)) for k, r in points]
    per_video = per_video_stats(
        predictions.video, predictions.split, predictions.label, predictions.point_predicted,
        names, match.shared if match else (), predictions.unit, task=task,
        va_predicted=predictions.va_predicted, va_target=predictions.va_target,
        au_positive=None if thresholds is None else au_positive(predictions.au_steps, thresholds),
        au_target=predictions.au_target, au_thresholds=thresholds,
    )  # fmt: skip
    check_per_video(per_video, degradations, thresholds)
    return RawResults(degradations[TRAINING_KERNEL], degradations, skipped, excluded,
                      predictions, per_video, task, thresholds)  # fmt: skip


def check_per_video(
    per_video: PerVideoStats,
    degradations: Mapping[str, Mapping[str, Mapping[str, PointState]]],
    au_thresholds: np.ndarray | None = None,
) -> None:
    """Check that the per-video statistics add up to each split's (summed-metric) states.

    Raises:
        RuntimeError: naming the split, point and head where they differ (a bug, not bad
            input).
    """
    for kernel, by_split in degradations.items():
        for split, by_key in by_split.items():
            rows = per_video.split_groups(split)
            for key, state in by_key.items():
                point = per_video.point_index(kernel, key)
                summed = per_video.stats[rows].map(lambda a, p=point: a[:, p]).sum()
                if what := differing_head(summed, state, au_thresholds):
                    raise RuntimeError(
                        f"{split} {point_name(kernel, key)}: the per-{per_video.unit} {what} do "
                        "not add up to the split's"
                    )


def differing_head(
    summed: GroupStats, state: PointState, au_thresholds: np.ndarray | None
) -> str | None:
    """Name the head whose summed per-video statistics differ from the metric's state, if any.

    Confusion matrices and AU counts must be equal; the valence-arousal sums equal to
    :data:`VA_SUMS_RTOL` (float64 sums of the same values in another order).
    """
    if state.confusion is not None and not np.array_equal(summed.confusions, state.confusion):
        return "confusion matrices"
    if state.va_sums is not None:
        tolerance = VA_SUMS_RTOL * np.abs(state.va_sums).max(initial=1.0)
        if not np.allclose(summed.va_sums, state.va_sums, rtol=VA_SUMS_RTOL, atol=tolerance):
            return "valence-arousal sums"
    if state.au_counts is not None:
        expected = au_counts_at(state.au_counts, au_thresholds)
        if not np.array_equal(summed.au_counts, expected):
            return "AU counts"
    return None


def build_predictions(
    data: Mapping[str, np.ndarray],
    datamodule: FERDataModule,
    skipped: Mapping[str, int],
    excluded: Mapping[str, Mapping[str, int]],
    match: ClassMatch | None,
    task: str = DEFAULT_TASK,
) -> Predictions:
    """Turn gathered (split, index) rows into named, sorted ``val_full`` predictions."""
    heads = TASK_HEADS[task]
    names, videos, frames = [], [], []
    targets: dict[str, list[np.ndarray]] = {head: [] for head in heads}
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
        if "expr" in heads:
            label = index.label[rows].astype(np.int64)
            mapped = match.label_map[np.maximum(label, 0)]
            targets["expr"].append(np.where(label == EXPR_MISSING, EXPR_MISSING, mapped))
        if "va" in heads:
            targets["va"].append(index.va[rows])
        if "au" in heads:
            targets["au"].append(index.au[rows])
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

    def rows_of(key: str) -> np.ndarray | None:
        return data[key][split_rows][order] if key in data else None

    def targets_of(head: str) -> np.ndarray | None:
        return np.concatenate(targets[head])[order] if head in targets else None

    point_predicted = rows_of("predicted")
    if point_predicted is not None:
        point_predicted = point_predicted.astype(np.int64)
    return Predictions(
        split=np.concatenate(names)[order],
        video=video[order],
        frame=frame[order],
        label=targets_of("expr"),
        predicted=None if point_predicted is None else point_predicted[:, 0],
        probs=rows_of("probs"),
        point_predicted=point_predicted,
        has_videos=datamodule.splits["val_full"].has_videos,
        va_target=targets_of("va"),
        va_predicted=rows_of("va_predicted"),
        au_target=targets_of("au"),
        au_probs=rows_of("au_probs"),
        au_steps=rows_of("au_steps"),
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


def split_metrics(
    stats: GroupStats,
    predictions: Predictions,
    split: str,
    classes: Sequence[str],
) -> SplitMetrics:
    """Return one split's metrics from its summed statistics (at one point: no leading axis)."""
    return SplitMetrics.from_heads(
        frames=predictions.frames(split), confusion=stats.confusions, classes=classes,
        va_sums=stats.va_sums, au_counts=stats.au_counts, au_frames=predictions.au_frames(split),
    )  # fmt: skip


def state_metrics(
    state: PointState,
    predictions: Predictions,
    split: str,
    classes: Sequence[str],
    au_thresholds: np.ndarray | None,
) -> SplitMetrics:
    """Return one (split, point)'s metrics from its summed metric states."""
    au = None if state.au_counts is None else au_counts_at(state.au_counts, au_thresholds)
    return split_metrics(GroupStats(state.confusion, state.va_sums, au), predictions, split,
                         classes)  # fmt: skip


def smoothed_stats(
    predictions: Predictions,
    video_ids: np.ndarray,
    num_videos: int,
    window: int,
    kind: str,
    au_thresholds: np.ndarray | None,
) -> GroupStats:
    """Return the per-video statistics ``(V, 1, ...)`` of every head smoothed over ``window``."""

    def smoothed(values: np.ndarray) -> np.ndarray:
        return smooth_probabilities(values, video_ids, predictions.frame, window, kind)

    stats = GroupStats()
    if predictions.label is not None:
        # window 1: the argmax of the logits, as at every point
        predicted = predictions.predicted if window == 1 else smoothed(predictions.probs).argmax(1)
        stats.confusions = group_confusions(video_ids, predictions.label, predicted[:, None],
                                            num_videos, predictions.probs.shape[1])  # fmt: skip
    if predictions.va_target is not None:
        values = smoothed(predictions.va_predicted[:, 0])
        stats.va_sums = group_va_sums(video_ids, values[:, None], predictions.va_target,
                                      num_videos)  # fmt: skip
    if predictions.au_target is not None:
        positive = smoothed(predictions.au_probs) >= per_au_thresholds(au_thresholds)
        stats.au_counts = group_au_counts(video_ids, positive[:, None], predictions.au_target,
                                          num_videos)  # fmt: skip
    return stats


def smoothing_results(
    predictions: Predictions,
    kind: str,
    windows: Sequence[int],
    classes: Sequence[str],
    bootstrap: VideoBootstrap | None = None,
    au_thresholds: np.ndarray | None = None,
    unsmoothed: Mapping[str, SplitMetrics] | None = None,
) -> dict[str, Any]:
    """Score temporal smoothing for each window; choose the window on ``val_select``.

    Every head's native outputs are smoothed over the same window (expression probabilities,
    then their argmax; valence and arousal; AU probabilities, at ``au_thresholds``). Window 1
    (no smoothing) is always scored (``unsmoothed``: its metrics, the native ones), so smoothing
    is only chosen when it helps the task's score on ``val_select``. With ``bootstrap``, each
    score gets its interval on the same draws of videos as the unsmoothed scores (smoothing
    stays within a video, so the smoothed per-video statistics are resampled as the others
    are).

    Returns:
        ``{"kind", "windows", "chosen_window", "chosen_on", "results": {split: {window: metrics}}}``
        (plus ``gaussian_sigma`` for the Gaussian); ``{"kind": "none"}`` without smoothing.
    """
    if kind == "none":
        return {"kind": "none"}
    if not predictions.has_videos:
        return {"kind": "none", "reason": "still images: the dataset has no videos to smooth"}
    names, video_ids = np.unique(predictions.video.astype(str), return_inverse=True)
    video_split = np.zeros(len(names), np.int8)
    video_split[video_ids] = predictions.split == VAL_LOADERS[1]
    split_videos = {split: np.arange(len(names)) if split == "val_full"
                    else np.flatnonzero(video_split == VAL_LOADERS.index(split))
                    for split in EVAL_SPLITS}  # fmt: skip
    all_windows = sorted({1, *windows})
    thresholds = None if au_thresholds is None else per_au_thresholds(au_thresholds)
    results: dict[str, dict[str, Any]] = {split: {} for split in EVAL_SPLITS}
    for window in all_windows:
        if window == 1 and unsmoothed is not None:
            for split in EVAL_SPLITS:
                results[split]["1"] = unsmoothed[split].to_json()
            continue
        per_group = smoothed_stats(predictions, video_ids, len(names), window, kind, thresholds)
        for split in EVAL_SPLITS:
            summed = per_group[split_videos[split]].sum()[0]
            metrics = split_metrics(summed, predictions, split, classes)
            if bootstrap is not None and (ci := bootstrap.intervals(split, per_group)):
                metrics = metrics.with_interval(ci[0], bootstrap.settings.percent)
            results[split][str(window)] = metrics.to_json()
    task = predictions.task
    chosen = choose_window(
        {w: task_score(results["val_select"][str(w)], task) for w in all_windows}
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
    match: ClassMatch | None,
) -> EvalResults:
    """Assemble the evaluation's results: per split and resolution, plus context and smoothing.

    Every score gets its bootstrap interval over videos (``eval.bootstrap``), every point of a
    split and every head on the same draws.
    """
    classes = list(match.shared) if match else []
    bootstrap = None
    intervals: dict[str, list[dict[str, tuple[float, float]]] | None] = {}
    if settings.bootstrap.enabled:
        start = time.perf_counter()
        bootstrap = VideoBootstrap.create(raw.per_video, settings.bootstrap)
        intervals = {s: bootstrap.intervals(s, raw.per_video.stats) for s in EVAL_SPLITS}
        log.info("bootstrap intervals (%d resamples of %d %ss) in %.2f s",
                 settings.bootstrap.samples, len(raw.per_video.groups), raw.per_video.unit,
                 time.perf_counter() - start)  # fmt: skip

    def metrics(kernel: str) -> dict[str, dict[str, SplitMetrics]]:
        out: dict[str, dict[str, SplitMetrics]] = {}
        for split in EVAL_SPLITS:
            out[split] = {}
            for key, state in raw.degradations[kernel][split].items():
                entry = state_metrics(state, raw.predictions, split, classes, raw.au_thresholds)
                if ci := intervals.get(split):
                    point = raw.per_video.point_index(kernel, key)
                    entry = entry.with_interval(ci[point], settings.bootstrap.percent)
                out[split][key] = entry
        return out

    degradations = {kernel: metrics(kernel) for kernel in raw.degradations}
    native = {split: degradations[TRAINING_KERNEL][split][NATIVE] for split in EVAL_SPLITS}
    thresholds = raw.au_thresholds
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
            raw.predictions,
            settings.smoothing,
            settings.windows,
            classes,
            bootstrap,
            thresholds,
            native,
        ),
        dataset=evaluated_dataset(datamodule),
        model_classes=list(match.model_classes) if match else [],
        excluded_classes=dict(raw.excluded["val_full"]),
        degradations=degradations,
        jpeg_quality=settings.jpeg_quality,
        bootstrap=bootstrap_entry(raw.per_video, settings.bootstrap) if bootstrap else None,
        initial_weights=initial_weights_of(settings.ckpt_path, run_config),
        task=raw.task,
        au_thresholds=None
        if thresholds is None
        else {name: float(t) for name, t in zip(AU_NAMES, thresholds, strict=True)},
    )
