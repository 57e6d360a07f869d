"""Uncertainty: per-video statistics, the bootstrap over videos, intervals, differences.

Frames of one video are strongly correlated (the same face, light and camera; expressions that
last seconds), so the unit of resampling is the video, not the frame: a bootstrap over frames
treats 400,000 frames as independent when there are about 70 independent videos, and gives an
interval far too narrow. Still-image datasets resample images (each image its own group).

Everything here works on per-group sufficient statistics of each head, never on frames
(:class:`GroupStats`): ``C x C`` confusion matrices (expressions), the float64 sums
``n, Σx, Σy, Σx², Σy², Σxy`` of valence and arousal, and the AU counts ``tp, fp, fn`` at the
thresholds the evaluation applied. All of them add up over groups, so a resample's statistics
are a weighted sum of its groups':

* :class:`PerVideoStats` holds them per group (video or image) at every evaluated point (native,
  and each degradation kernel at each resolution); an evaluation writes it as ``per_video.npz``
  (:data:`~fer_multires.runs.PER_VIDEO_FILE`), so intervals and paired comparisons are
  recomputed later without the model;
* :func:`draw_videos` draws ``B`` resamples of a split's groups once (seeded by the bootstrap seed
  and the split); every point of the split, every head, and both models of a comparison use the
  same draws, so curves' bands are coherent and differences are paired;
* :func:`resampled_metrics` turns the draws into counts ``[B, V]`` and every resample's
  statistics into one matrix product ``counts @ per_group[V, X]`` (float64: exact for integer
  counts below 2**53; the VA sums weighted by integer multiplicities), then scores them all at
  once (:func:`score_stats`: the metrics' own formulas);
* :func:`percentile_interval`: the percentile interval of the resampled values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fer_multires.metrics import metrics_from_confusion
from fer_multires.results import EVAL_SPLITS, NATIVE, VAL_LOADERS
from fer_multires.runs import per_video_file
from fer_multires.task_metrics import (
    VA_SUM_NAMES,
    au_f1_from_counts,
    mtl_score,
    va_metrics_from_sums,
)
from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, TASK_HEADS, VA_NAMES
from fer_multires.utils.io import save_npz_atomic

#: The expression metrics that get an interval: ``SplitMetrics`` attribute ->
#: ``metrics_from_confusion`` key.
INTERVAL_METRICS: dict[str, str] = {
    "challenge_score": "score",
    "accuracy": "acc",
    "f1_macro": "f1",
}
#: Per head, the ``SplitMetrics`` attributes that get an interval; ``mtl_score`` too when all
#: three heads are there.
HEAD_INTERVAL_METRICS: dict[str, tuple[str, ...]] = {
    "expr": tuple(INTERVAL_METRICS),
    "va": ("ccc_valence", "ccc_arousal", "va_score"),
    "au": ("au_score",),
}
#: The random stream of each split's draws (with the bootstrap seed).
SPLIT_STREAMS: dict[str, int] = {split: i for i, split in enumerate(EVAL_SPLITS)}
#: Version of the ``per_video.npz`` layout: 2 adds ``task``, ``frames`` and the valence-arousal
#: and AU statistics (version 1, expression only, is still read).
FORMAT_VERSION = 2
#: The versions :meth:`PerVideoStats.load` reads.
READABLE_VERSIONS = (1, 2)
#: Fewer groups than this in a split, and its interval says little: a bootstrap can only draw
#: from the videos there are (with 2 videos, 3 distinct resamples), so the report warns.
FEW_GROUPS = 10
#: Resamples scored per matrix product (bounds the memory of large image sets).
CHUNK = 500


@dataclass(frozen=True)
class BootstrapSettings:
    """The checked ``eval.bootstrap`` node.

    Attributes:
        samples: resamples B; 0 switches the intervals off.
        seed: the seed of the draws (with the split's stream, :data:`SPLIT_STREAMS`).
        confidence: the level of the percentile interval, e.g. 0.95.
    """

    samples: int = 2000
    seed: int = 0
    confidence: float = 0.95

    @property
    def enabled(self) -> bool:
        """Whether intervals are computed."""
        return self.samples > 0

    @property
    def percent(self) -> int:
        """The confidence level in percent (the ``95`` of ``ci95``)."""
        return round(self.confidence * 100)

    def to_json(self, unit: str, groups: Mapping[str, int]) -> dict[str, object]:
        """Return the ``bootstrap`` entry of ``metrics.json``.

        Args:
            unit: what was resampled, ``video`` or ``image``.
            groups: how many of them each split has.
        """
        return {"samples": self.samples, "seed": self.seed, "confidence": self.confidence,
                "resampled": unit, "groups": dict(groups)}  # fmt: skip


def point_name(kernel: str | None, key: str) -> str:
    """Return the name of an evaluated point: ``native`` or ``<kernel>/<resolution>``."""
    return NATIVE if key == NATIVE else f"{kernel}/{key}"


def group_confusions(
    group: np.ndarray, label: np.ndarray, predicted: np.ndarray, num_groups: int, num_classes: int
) -> np.ndarray:
    """Count one confusion matrix per group and point.

    Args:
        group: ``(N,)`` group index (video or image) of each sample, in ``0..num_groups-1``.
        label: ``(N,)`` true class of each sample; a negative label (a multi-task frame without
            an expression) is left out.
        predicted: ``(N, P)`` predicted class of each sample at each point.
        num_groups: V.
        num_classes: C.

    Returns:
        ``(V, P, C, C)`` int64 counts, rows = true class.
    """
    labelled = np.asarray(label) >= 0
    if not labelled.all():
        group, label, predicted = group[labelled], label[labelled], predicted[labelled]
    cells = num_classes * num_classes
    base = group.astype(np.int64) * cells + label.astype(np.int64) * num_classes
    counts = np.empty((num_groups, predicted.shape[1], cells), np.int64)
    for point in range(predicted.shape[1]):  # one point at a time: N-sized temporaries only
        index = base + predicted[:, point]
        counts[:, point] = np.bincount(index, minlength=num_groups * cells).reshape(-1, cells)
    return counts.reshape(num_groups, -1, num_classes, num_classes)


def group_va_sums(
    group: np.ndarray, predicted: np.ndarray, target: np.ndarray, num_groups: int
) -> np.ndarray:
    """Sum each group's valence-arousal statistics at each point.

    As :func:`~fer_multires.task_metrics.va_sums` does for a batch: a frame whose annotation is
    NaN is left out; the sums are float64 of the float32 values.

    Args:
        group: ``(N,)`` group index of each sample, in ``0..num_groups-1``.
        predicted: ``(N, P, 2)`` predicted valence and arousal at each point.
        target: ``(N, 2)`` annotated valence and arousal (NaN where missing).
        num_groups: V.

    Returns:
        ``(V, P, 2, 6)`` float64 sums in the order of
        :data:`~fer_multires.task_metrics.VA_SUM_NAMES`.
    """
    out = np.zeros((num_groups, predicted.shape[1], len(VA_NAMES), len(VA_SUM_NAMES)))
    present = ~np.isnan(np.asarray(target, dtype=np.float64)).any(axis=1)
    group = np.asarray(group)[present]
    y = np.asarray(target, dtype=np.float64)[present]

    def summed(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values, minlength=num_groups)

    for dim in range(len(VA_NAMES)):
        yd = y[:, dim]
        # the annotations' terms are the same at every point
        out[:, :, dim, 0] = np.bincount(group, minlength=num_groups)[:, None]
        out[:, :, dim, 2] = summed(yd)[:, None]
        out[:, :, dim, 4] = summed(yd * yd)[:, None]
        for point in range(predicted.shape[1]):  # one point at a time: N-sized temporaries
            x = np.asarray(predicted[present, point, dim], dtype=np.float64)
            out[:, point, dim, 1] = summed(x)
            out[:, point, dim, 3] = summed(x * x)
            out[:, point, dim, 5] = summed(x * yd)
    return out


def group_au_counts(
    group: np.ndarray, positive_predicted: np.ndarray, target: np.ndarray, num_groups: int
) -> np.ndarray:
    """Count each group's AU true positives, false positives and false negatives at each point.

    As :func:`~fer_multires.task_metrics.au_counts`: an entry labelled
    :data:`~fer_multires.tasks.AU_MISSING` is left out of its AU's counts.

    Args:
        group: ``(N,)`` group index of each sample, in ``0..num_groups-1``.
        positive_predicted: ``(N, P, 12)`` booleans: the AU predicted present at each point
            (probability at or above its threshold).
        target: ``(N, 12)`` labels: 1, 0 or missing.
        num_groups: V.

    Returns:
        ``(V, P, 3, 12)`` int64: ``tp, fp, fn`` per AU.
    """
    units = len(AU_NAMES)
    out = np.zeros((num_groups, positive_predicted.shape[1], 3, units), np.int64)
    target = np.asarray(target)
    labelled = (target == 0) | (target == 1)
    # one bin per (group, AU, predicted, label): 4 cells per (group, AU); missing entries in a
    # last bin, dropped
    cell = (np.asarray(group)[:, None] * units + np.arange(units)) * 4 + (target == 1)
    cell = np.where(labelled, cell, num_groups * units * 4).ravel()
    for point in range(positive_predicted.shape[1]):  # one point at a time: N-sized temporaries
        predicted = np.asarray(positive_predicted[:, point], dtype=bool).ravel()
        counts = np.bincount(cell + 2 * predicted, minlength=num_groups * units * 4 + 3)
        counts = counts[: num_groups * units * 4].reshape(num_groups, units, 2, 2)
        # [..., predicted, label]: tp = (1, 1), fp = (1, 0), fn = (0, 1)
        out[:, point] = np.stack([counts[..., 1, 1], counts[..., 1, 0], counts[..., 0, 1]], 1)
    return out


@dataclass
class GroupStats:
    """Per-group sufficient statistics of each head at P points (None: a head the task lacks).

    Each adds up over groups, so a split's (or a resample's) statistics are a sum of its
    groups'. Any leading shape: ``(V, P, ...)`` per group, ``(P, ...)`` summed, ``(B, P, ...)``
    resampled.

    Attributes:
        confusions: expressions: ``(..., C, C)`` int64 confusion matrices, rows = true class.
        va_sums: valence-arousal: ``(..., 2, 6)`` float64 sums
            (:data:`~fer_multires.task_metrics.VA_SUM_NAMES`).
        au_counts: action units: ``(..., 3, 12)`` int64 ``tp, fp, fn`` per AU at the thresholds
            applied.
    """

    confusions: np.ndarray | None = None
    va_sums: np.ndarray | None = None
    au_counts: np.ndarray | None = None

    #: The attribute of each head, in :data:`~fer_multires.tasks.TASK_HEADS` order.
    HEAD_ARRAYS: ClassVar[dict[str, str]] = {
        "expr": "confusions", "va": "va_sums", "au": "au_counts",
    }  # fmt: skip

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads present, in :data:`~fer_multires.tasks.TASK_HEADS` order."""
        return tuple(h for h, name in self.HEAD_ARRAYS.items() if getattr(self, name) is not None)

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the present arrays by attribute name."""
        return {
            n: getattr(self, n) for n in self.HEAD_ARRAYS.values() if getattr(self, n) is not None
        }

    def map(self, fn: Any) -> GroupStats:
        """Return the statistics with ``fn`` applied to each present array."""
        return GroupStats(**{name: fn(array) for name, array in self.arrays().items()})

    def __getitem__(self, index: Any) -> GroupStats:
        """Index the leading dimensions of every head alike (e.g. ``stats[rows]``)."""
        return self.map(lambda array: array[index])

    def sum(self, axis: int = 0) -> GroupStats:
        """Sum a leading axis (e.g. a split's groups)."""
        return self.map(lambda array: array.sum(axis=axis))

    def flat(self) -> tuple[np.ndarray, Any]:
        """Return ``(V, X)`` float64 (every head side by side) and a function back from it.

        The function turns ``(B, X)`` rows into :class:`GroupStats` of leading shape
        ``(B, ...)``, the dimensions after V as they were.
        """
        arrays = self.arrays()
        size = len(next(iter(arrays.values())))
        parts = [a.reshape(size, -1).astype(np.float64) for a in arrays.values()]
        widths = np.cumsum([0, *(p.shape[1] for p in parts)])

        def unflatten(rows: np.ndarray) -> GroupStats:
            return GroupStats(**{
                name: rows[:, widths[i]:widths[i + 1]].reshape(len(rows), *a.shape[1:])
                for i, (name, a) in enumerate(arrays.items())
            })  # fmt: skip

        return np.concatenate(parts, axis=1), unflatten


def score_stats(stats: GroupStats) -> dict[str, np.ndarray]:
    """Score summed statistics: every interval metric of the heads present (float64).

    The metrics' own formulas (:func:`~fer_multires.metrics.metrics_from_confusion`,
    :func:`~fer_multires.task_metrics.ccc_from_sums`,
    :func:`~fer_multires.task_metrics.au_f1_from_counts`, their means, and
    :func:`~fer_multires.task_metrics.mtl_score` with all three heads), on any leading shape.

    Returns:
        ``{metric: values}`` for each of :data:`HEAD_INTERVAL_METRICS` of the heads present.
    """
    out: dict[str, np.ndarray] = {}
    if stats.confusions is not None:
        m = metrics_from_confusion(stats.confusions)
        out |= {name: m[key].numpy() for name, key in INTERVAL_METRICS.items()}
    if stats.va_sums is not None:
        va = va_metrics_from_sums(stats.va_sums)
        out |= {name: va[name].numpy() for name in HEAD_INTERVAL_METRICS["va"]}
    if stats.au_counts is not None:
        counts = np.asarray(stats.au_counts)
        f1 = au_f1_from_counts(counts[..., 0, :], counts[..., 1, :], counts[..., 2, :])
        out["au_score"] = f1.mean(axis=-1)
    if len(stats.heads) == len(TASK_HEADS["mtl"]):
        out["mtl_score"] = mtl_score(out["ccc_valence"], out["ccc_arousal"], out["f1_macro"],
                                     out["au_score"])  # fmt: skip
    return out


def draw_videos(num_groups: int, samples: int, seed: int, stream: int) -> np.ndarray:
    """Draw ``samples`` resamples of ``num_groups`` groups with replacement.

    The one source of the bootstrap's randomness, exposed so that a test can recompute an
    interval from frames with the very same draws.

    Returns:
        ``(samples, num_groups)`` indices of the groups drawn in each resample.
    """
    rng = np.random.default_rng([seed, stream])
    return rng.integers(0, num_groups, size=(samples, num_groups))


def draw_counts(num_groups: int, samples: int, seed: int, stream: int) -> np.ndarray:
    """Return ``(samples, num_groups)`` multiplicities of each group in each resample."""
    drawn = draw_videos(num_groups, samples, seed, stream)
    offsets = np.arange(samples)[:, None] * num_groups
    counts = np.bincount((drawn + offsets).ravel(), minlength=samples * num_groups)
    return counts.reshape(samples, num_groups)


def resampled_metrics(
    counts: np.ndarray, per_group: np.ndarray | GroupStats
) -> dict[str, np.ndarray]:
    """Score every resample at every point.

    Args:
        counts: ``(B, V)`` multiplicities (:func:`draw_counts`).
        per_group: :class:`GroupStats` of leading shape ``(V, ...)``, or ``(V, ..., C, C)``
            confusion matrices alone.

    Returns:
        ``{metric: (B, ...) values}`` for each metric of :func:`score_stats`.
    """
    stats = as_group_stats(per_group)
    flat, unflatten = stats.flat()
    parts: dict[str, list[np.ndarray]] = {}
    with single_torch_thread():
        for start in range(0, len(counts), CHUNK):
            block = counts[start : start + CHUNK].astype(np.float64)
            for name, values in score_stats(unflatten(block @ flat)).items():
                parts.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}


def as_group_stats(per_group: np.ndarray | GroupStats) -> GroupStats:
    """Return ``per_group`` as :class:`GroupStats` (an array: expression confusions)."""
    return per_group if isinstance(per_group, GroupStats) else GroupStats(confusions=per_group)


@contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch's CPU operations on one thread inside the block, then restore the count.

    The bootstrap's reductions over many small 7 x 7 matrices take 0.1 s on one thread and 1 to
    2 s on two threads of a loaded 2-core machine (``benchmarks/bootstrap.py``).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def percentile_interval(values: np.ndarray, confidence: float) -> np.ndarray:
    """Return the ``(2, ...)`` percentile interval of resampled ``(B, ...)`` values."""
    tail = (1.0 - confidence) / 2.0
    return np.quantile(values, [tail, 1.0 - tail], axis=0)


def interval_table(
    counts: np.ndarray, per_group: np.ndarray | GroupStats, confidence: float
) -> dict[str, np.ndarray]:
    """Return ``{metric: (2, ...) interval}`` of per-group statistics under draws."""
    values = resampled_metrics(counts, per_group)
    return {name: percentile_interval(v, confidence) for name, v in values.items()}


@dataclass
class PerVideoStats:
    """Per-group statistics of one evaluation's heads: the contents of ``per_video.npz``.

    Attributes:
        classes: expression class names in label order (empty without an expression head).
        groups: ``(V,)`` group names, sorted: videos, or images for still-image datasets.
        group_split: ``(V,)`` index into :data:`VAL_LOADERS` of each group's split.
        unit: ``video`` or ``image``.
        points: the evaluated points (:func:`point_name`), native first.
        confusions: ``(V, P, C, C)`` counts, rows = true class; None without an expression head.
        task: the evaluated model's task (:mod:`fer_multires.tasks`).
        va_sums: ``(V, P, 2, 6)`` float64 valence-arousal sums; None without a VA head.
        au_counts: ``(V, P, 3, 12)`` AU ``tp, fp, fn`` at ``au_thresholds``; None without an AU
            head.
        au_thresholds: ``(12,)`` the AU thresholds applied (chosen on ``val_select``).
        frames: ``(V,)`` frames evaluated per group (read from the confusions in a file of
            format 1).
    """

    classes: list[str]
    groups: np.ndarray
    group_split: np.ndarray
    unit: str
    points: list[str]
    confusions: np.ndarray | None
    task: str = DEFAULT_TASK
    va_sums: np.ndarray | None = None
    au_counts: np.ndarray | None = None
    au_thresholds: np.ndarray | None = None
    frames: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.frames is None and self.confusions is not None:
            self.frames = self.confusions[:, 0].sum(axis=(1, 2))

    @property
    def stats(self) -> GroupStats:
        """Every head's per-group statistics, ``(V, P, ...)``."""
        return GroupStats(self.confusions, self.va_sums, self.au_counts)

    def split_groups(self, split: str) -> np.ndarray:
        """Return the indices of the groups of ``split`` (every group for ``val_full``)."""
        if split == "val_full":
            return np.arange(len(self.groups))
        return np.flatnonzero(self.group_split == VAL_LOADERS.index(split))

    def draws(self, split: str, settings: BootstrapSettings) -> np.ndarray:
        """Return the ``(B, V_split)`` counts of ``split``'s resamples (:func:`draw_counts`)."""
        size = len(self.split_groups(split))
        return draw_counts(size, settings.samples, settings.seed, SPLIT_STREAMS[split])

    def point_index(self, kernel: str | None, key: str) -> int:
        """Return the index of a point (KeyError if it was not evaluated)."""
        name = point_name(kernel, key)
        if name not in self.points:
            raise KeyError(f"{name} was not evaluated")
        return self.points.index(name)

    def save(self, eval_dir: str | Path) -> Path:
        """Write ``per_video.npz`` into an evaluation's folder (compressed, smallest integers).

        Format 2: ``format_version``, ``task``, ``classes``, ``groups``, ``group_split``,
        ``unit``, ``points``, ``frames``; ``counts`` (the confusions, ``(V, P, C*C)``) with an
        expression head; ``va_sums`` (``(V, P, 2, 6)`` float64) with a VA head; ``au_counts``
        (``(V, P, 3, 12)``) and ``au_thresholds`` with an AU head.
        """
        arrays: dict[str, np.ndarray] = {}
        if self.confusions is not None:
            arrays["counts"] = smallest_integers(
                self.confusions.reshape(len(self.groups), len(self.points), -1)
            )
        if self.va_sums is not None:
            arrays["va_sums"] = self.va_sums.astype(np.float64)
        if self.au_counts is not None:
            arrays["au_counts"] = smallest_integers(self.au_counts)
            arrays["au_thresholds"] = np.asarray(self.au_thresholds, dtype=np.float64)
        path = per_video_file(eval_dir)
        save_npz_atomic(
            path,
            compressed=True,
            format_version=np.array(FORMAT_VERSION),
            task=np.array(self.task),
            classes=np.array(self.classes, dtype=str),
            groups=np.asarray(self.groups, dtype=str),
            group_split=self.group_split.astype(np.int8),
            unit=np.array(self.unit),
            points=np.array(self.points, dtype=str),
            frames=smallest_integers(np.asarray(self.frames)),
            **arrays,
        )
        return path

    @classmethod
    def load(cls, eval_dir: str | Path) -> PerVideoStats:
        """Read ``per_video.npz`` from an evaluation's folder (or beside its ``metrics.json``).

        Raises:
            FileNotFoundError: if there is none (an evaluation written before it existed).
            ValueError: naming the file, if it is of another layout.
        """
        path = per_video_file(eval_dir)
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        if int(arrays.get("format_version", -1)) not in READABLE_VERSIONS:
            raise ValueError(f"{path}: not a per_video.npz of format "
                             f"{' or '.join(map(str, READABLE_VERSIONS))}")  # fmt: skip
        classes = [str(c) for c in arrays["classes"]]
        points = [str(p) for p in arrays["points"]]
        groups = arrays["groups"].astype(str)
        confusions = None
        if "counts" in arrays:
            shape = (len(groups), len(points), len(classes), len(classes))
            confusions = arrays["counts"].astype(np.int64).reshape(shape)
        au_counts = arrays.get("au_counts")
        return cls(
            classes=classes,
            groups=groups,
            group_split=arrays["group_split"].astype(np.int8),
            unit=str(arrays["unit"]),
            points=points,
            confusions=confusions,
            task=str(arrays.get("task", DEFAULT_TASK)),
            va_sums=arrays.get("va_sums"),
            au_counts=None if au_counts is None else au_counts.astype(np.int64),
            au_thresholds=arrays.get("au_thresholds"),
            frames=arrays["frames"].astype(np.int64) if "frames" in arrays else None,
        )


def smallest_integers(counts: np.ndarray) -> np.ndarray:
    """Return non-negative counts as ``uint16`` where they fit (a smaller file), else int64."""
    return counts.astype(np.uint16 if counts.max(initial=0) <= np.iinfo(np.uint16).max
                         else np.int64)  # fmt: skip


@dataclass
class VideoBootstrap:
    """One evaluation's bootstrap: per split, its resamples of videos, drawn once.

    Attributes:
        per_video: the per-video statistics whose groups are resampled.
        settings: samples, seed and confidence.
        draws: ``{split: (B, V_split) counts}`` (splits without a group are left out).
    """

    per_video: PerVideoStats
    settings: BootstrapSettings
    draws: dict[str, np.ndarray]

    @classmethod
    def create(cls, per_video: PerVideoStats, settings: BootstrapSettings) -> VideoBootstrap:
        """Draw every split's resamples (:func:`draw_counts`)."""
        draws = {
            split: per_video.draws(split, settings)
            for split in EVAL_SPLITS
            if len(per_video.split_groups(split))
        }
        return cls(per_video, settings, draws)

    def intervals(
        self, split: str, per_group: np.ndarray | GroupStats
    ) -> list[dict[str, tuple[float, float]]] | None:
        """Return each point's ``{metric: (low, high)}`` for ``split``, on its draws.

        Args:
            split: the split.
            per_group: :class:`GroupStats` ``(V, P, ...)`` of every group (all splits' groups,
                in :attr:`PerVideoStats.groups` order) at P points, or their ``(V, P, C, C)``
                confusion matrices alone.

        Returns:
            P intervals, or None if the split has no group.
        """
        if split not in self.draws:
            return None
        stats = as_group_stats(per_group)
        rows = self.per_video.split_groups(split)
        table = interval_table(self.draws[split], stats[rows], self.settings.confidence)
        points = next(iter(stats.arrays().values())).shape[1]
        return [
            {name: (float(b[0, p]), float(b[1, p])) for name, b in table.items()}
            for p in range(points)
        ]


def per_video_stats(
    groups: np.ndarray,
    splits: np.ndarray,
    label: np.ndarray | None,
    predicted: np.ndarray | None,
    points: Sequence[str],
    classes: Sequence[str],
    unit: str,
    *,
    task: str = DEFAULT_TASK,
    va_predicted: np.ndarray | None = None,
    va_target: np.ndarray | None = None,
    au_positive: np.ndarray | None = None,
    au_target: np.ndarray | None = None,
    au_thresholds: np.ndarray | None = None,
) -> PerVideoStats:
    """Build :class:`PerVideoStats` from per-sample rows, for the heads of ``task``.

    Args:
        groups: ``(N,)`` each sample's video (or image) name.
        splits: ``(N,)`` each sample's split, ``val_select`` or ``val_rest``.
        label: ``(N,)`` true classes (-1: none); None without an expression head.
        predicted: ``(N, P)`` predicted classes at each point; None without one.
        points: the names of the P points.
        classes: class names in label order.
        unit: ``video`` or ``image``.
        task: the task (its heads' arguments are required).
        va_predicted: ``(N, P, 2)`` predicted valence and arousal at each point.
        va_target: ``(N, 2)`` annotations (NaN: missing).
        au_positive: ``(N, P, 12)`` booleans: each AU predicted present at each point, at
            ``au_thresholds``.
        au_target: ``(N, 12)`` AU labels (1, 0, or missing).
        au_thresholds: ``(12,)`` the thresholds ``au_positive`` applied.

    Raises:
        ValueError: if a group has samples in both splits.
    """
    names, group = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    split_ids = np.array([VAL_LOADERS.index(str(s)) for s in splits], dtype=np.int8)
    group_split = np.zeros(len(names), np.int8)
    group_split[group] = split_ids
    if np.any(group_split[group] != split_ids):
        mixed = names[np.unique(group[group_split[group] != split_ids])]
        raise ValueError(f"{unit}s in both val_select and val_rest: {', '.join(mixed[:5])}")
    heads = TASK_HEADS[task]
    confusions = va = au = None
    if "expr" in heads:
        confusions = group_confusions(group, label, predicted, len(names), len(classes))
    if "va" in heads:
        va = group_va_sums(group, va_predicted, va_target, len(names))
    if "au" in heads:
        au = group_au_counts(group, au_positive, au_target, len(names))
    return PerVideoStats(
        list(classes), names, group_split, unit, list(points), confusions, task, va, au,
        None if au is None else np.asarray(au_thresholds, dtype=np.float64),
        np.bincount(group, minlength=len(names)).astype(np.int64),
    )  # fmt: skip


def paired_differences(
    a: PerVideoStats,
    b: PerVideoStats,
    split: str,
    point_pairs: Mapping[str, tuple[int, int]],
    settings: BootstrapSettings,
    metric: str = "challenge_score",
) -> dict[str, np.ndarray]:
    """Resample the same groups for two models; return each point's ``(B,)`` score differences.

    Args:
        a: the first model's statistics.
        b: the second's, of the same groups and task (checked by the caller).
        split: the split resampled.
        point_pairs: ``{name: (index in a.points, index in b.points)}``.
        settings: the bootstrap settings.
        metric: the score compared: the task's (``results.SCORE_KEYS``), e.g. ``va_score``.
            Each model's AU F1s are at its own thresholds.

    Returns:
        ``{name: (B,) metric of A minus B in each resample}``.
    """
    rows = a.split_groups(split)
    counts = a.draws(split, settings)
    names = list(point_pairs)
    a_points = a.stats[rows].map(lambda x: x[:, [point_pairs[n][0] for n in names]])
    b_points = b.stats[rows].map(lambda x: x[:, [point_pairs[n][1] for n in names]])
    scores_a = resampled_metrics(counts, a_points)[metric]
    scores_b = resampled_metrics(counts, b_points)[metric]
    return {name: scores_a[:, i] - scores_b[:, i] for i, name in enumerate(names)}
