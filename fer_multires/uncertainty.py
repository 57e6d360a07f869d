"""Uncertainty: per-video confusion matrices, the bootstrap over videos, intervals, differences.

Frames of one video are strongly correlated (the same face, light and camera; expressions that
last seconds), so the unit of resampling is the video, not the frame: a bootstrap over frames
treats 400,000 frames as independent when there are about 70 independent videos, and gives an
interval far too narrow. Still-image datasets resample images (each image its own group).

Everything here works on per-group confusion matrices, never on frames:

* :class:`PerVideoStats` holds one ``C x C`` confusion matrix per group (video or image) at every
  evaluated point (native, and each degradation kernel at each resolution); an evaluation writes
  it as ``per_video.npz`` (:data:`~fer_multires.runs.PER_VIDEO_FILE`), so intervals and paired
  comparisons are recomputed later without the model;
* :func:`draw_videos` draws ``B`` resamples of a split's groups once (seeded by the bootstrap seed
  and the split); every point of the split, and both models of a comparison, use the same draws,
  so curves' bands are coherent and differences are paired;
* :func:`resampled_metrics` turns the draws into counts ``[B, V]`` and every resample's confusion
  matrices into one matrix product ``counts @ per_video[V, P * C * C]`` (float64, exact for
  integer counts below 2**53), then scores them all at once
  (:func:`~fer_multires.metrics.metrics_from_confusion`);
* :func:`percentile_interval`: the percentile interval of the resampled values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_multires.metrics import metrics_from_confusion
from fer_multires.results import EVAL_SPLITS, NATIVE, VAL_LOADERS
from fer_multires.runs import per_video_file
from fer_multires.utils.io import save_npz_atomic

#: The metrics that get an interval: ``SplitMetrics`` attribute -> ``metrics_from_confusion`` key.
INTERVAL_METRICS: dict[str, str] = {
    "challenge_score": "score",
    "accuracy": "acc",
    "f1_macro": "f1",
}
#: The random stream of each split's draws (with the bootstrap seed).
SPLIT_STREAMS: dict[str, int] = {split: i for i, split in enumerate(EVAL_SPLITS)}
#: Version of the ``per_video.npz`` layout.
FORMAT_VERSION = 1
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
        label: ``(N,)`` true class of each sample.
        predicted: ``(N, P)`` predicted class of each sample at each point.
        num_groups: V.
        num_classes: C.

    Returns:
        ``(V, P, C, C)`` int64 counts, rows = true class.
    """
    cells = num_classes * num_classes
    base = group.astype(np.int64) * cells + label.astype(np.int64) * num_classes
    counts = np.empty((num_groups, predicted.shape[1], cells), np.int64)
    for point in range(predicted.shape[1]):  # one point at a time: N-sized temporaries only
        index = base + predicted[:, point]
        counts[:, point] = np.bincount(index, minlength=num_groups * cells).reshape(-1, cells)
    return counts.reshape(num_groups, -1, num_classes, num_classes)


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


def resampled_metrics(counts: np.ndarray, per_group: np.ndarray) -> dict[str, np.ndarray]:
    """Score every resample at every point.

    Args:
        counts: ``(B, V)`` multiplicities (:func:`draw_counts`).
        per_group: ``(V, ..., C, C)`` confusion matrices per group (and point).

    Returns:
        ``{metric: (B, ...) values}`` for each of :data:`INTERVAL_METRICS`.
    """
    num_groups = per_group.shape[0]
    shape = per_group.shape[1:]
    flat = per_group.reshape(num_groups, -1).astype(np.float64)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in INTERVAL_METRICS}
    with single_torch_thread():
        for start in range(0, len(counts), CHUNK):
            block = counts[start : start + CHUNK].astype(np.float64)
            confusions = (block @ flat).reshape(len(block), *shape)
            metrics = metrics_from_confusion(confusions)
            for name, key in INTERVAL_METRICS.items():
                parts[name].append(metrics[key].numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


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
    counts: np.ndarray, per_group: np.ndarray, confidence: float
) -> dict[str, np.ndarray]:
    """Return ``{metric: (2, ...) interval}`` of per-group confusion matrices under draws."""
    values = resampled_metrics(counts, per_group)
    return {name: percentile_interval(v, confidence) for name, v in values.items()}


@dataclass
class PerVideoStats:
    """Per-group confusion matrices of one evaluation: the contents of ``per_video.npz``.

    Attributes:
        classes: class names in label order.
        groups: ``(V,)`` group names, sorted: videos, or images for still-image datasets.
        group_split: ``(V,)`` index into :data:`VAL_LOADERS` of each group's split.
        unit: ``video`` or ``image``.
        points: the evaluated points (:func:`point_name`), native first.
        confusions: ``(V, P, C, C)`` counts, rows = true class.
    """

    classes: list[str]
    groups: np.ndarray
    group_split: np.ndarray
    unit: str
    points: list[str]
    confusions: np.ndarray

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
        """Write ``per_video.npz`` into an evaluation's folder (compressed, smallest integers)."""
        counts = self.confusions.reshape(len(self.groups), len(self.points), -1)
        dtype = np.uint16 if counts.max(initial=0) <= np.iinfo(np.uint16).max else np.int64
        path = per_video_file(eval_dir)
        save_npz_atomic(
            path,
            compressed=True,
            format_version=np.array(FORMAT_VERSION),
            classes=np.array(self.classes, dtype=str),
            groups=np.asarray(self.groups, dtype=str),
            group_split=self.group_split.astype(np.int8),
            unit=np.array(self.unit),
            points=np.array(self.points, dtype=str),
            counts=counts.astype(dtype),
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
        if int(arrays.get("format_version", -1)) != FORMAT_VERSION:
            raise ValueError(f"{path}: not a per_video.npz of format {FORMAT_VERSION}")
        classes = [str(c) for c in arrays["classes"]]
        points = [str(p) for p in arrays["points"]]
        shape = (len(arrays["groups"]), len(points), len(classes), len(classes))
        return cls(
            classes=classes,
            groups=arrays["groups"].astype(str),
            group_split=arrays["group_split"].astype(np.int8),
            unit=str(arrays["unit"]),
            points=points,
            confusions=arrays["counts"].astype(np.int64).reshape(shape),
        )


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
        self, split: str, per_group: np.ndarray
    ) -> list[dict[str, tuple[float, float]]] | None:
        """Return each point's ``{metric: (low, high)}`` for ``split``, on its draws.

        Args:
            split: the split.
            per_group: ``(V, P, C, C)`` confusion matrices of every group (all splits' groups,
                in :attr:`PerVideoStats.groups` order) at P points.

        Returns:
            P intervals, or None if the split has no group.
        """
        if split not in self.draws:
            return None
        rows = self.per_video.split_groups(split)
        table = interval_table(self.draws[split], per_group[rows], self.settings.confidence)
        return [
            {name: (float(b[0, p]), float(b[1, p])) for name, b in table.items()}
            for p in range(per_group.shape[1])
        ]


def per_video_stats(
    groups: np.ndarray,
    splits: np.ndarray,
    label: np.ndarray,
    predicted: np.ndarray,
    points: Sequence[str],
    classes: Sequence[str],
    unit: str,
) -> PerVideoStats:
    """Build :class:`PerVideoStats` from per-sample rows.

    Args:
        groups: ``(N,)`` each sample's video (or image) name.
        splits: ``(N,)`` each sample's split, ``val_select`` or ``val_rest``.
        label: ``(N,)`` true classes.
        predicted: ``(N, P)`` predicted classes at each point.
        points: the names of the P points.
        classes: class names in label order.
        unit: ``video`` or ``image``.

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
    confusions = group_confusions(group, label, predicted, len(names), len(classes))
    return PerVideoStats(list(classes), names, group_split, unit, list(points), confusions)


def paired_differences(
    a: PerVideoStats,
    b: PerVideoStats,
    split: str,
    point_pairs: Mapping[str, tuple[int, int]],
    settings: BootstrapSettings,
) -> dict[str, np.ndarray]:
    """Resample the same groups for two models; return each point's ``(B,)`` score differences.

    Args:
        a: the first model's statistics.
        b: the second's, of the same groups (checked by the caller).
        split: the split resampled.
        point_pairs: ``{name: (index in a.points, index in b.points)}``.
        settings: the bootstrap settings.

    Returns:
        ``{name: (B,) challenge score of A minus B in each resample}``.
    """
    rows = a.split_groups(split)
    counts = a.draws(split, settings)
    names = list(point_pairs)
    a_points = a.confusions[rows][:, [point_pairs[n][0] for n in names]]
    b_points = b.confusions[rows][:, [point_pairs[n][1] for n in names]]
    scores_a = resampled_metrics(counts, a_points)["challenge_score"]
    scores_b = resampled_metrics(counts, b_points)["challenge_score"]
    return {name: scores_a[:, i] - scores_b[:, i] for i, name in enumerate(names)}
