"""Results: the split names, ``native``, and the one schema of ``metrics.json`` with its loader.

Two entry points write a ``metrics.json``, and everything that reads one (the report, compare,
the notebook, the tests) goes through this module:

* ``train`` writes :class:`TrainingResults`: the best checkpoint, the class names and the flat
  metrics Lightning logged for it (``val_select/score``, ``val_full/f1_<Class>``, ...);
* ``evaluate`` writes :class:`EvalResults`: per validation split, per resolution (``"8"``, ...,
  ``"native"``) a :class:`SplitMetrics`, plus the context of the evaluation and its smoothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.metrics import metrics_from_confusion
from fer_multires.runs import METRICS_FILE, metrics_file

#: The loaders of one validation epoch, in ``dataloader_idx`` order.
VAL_LOADERS: tuple[str, ...] = ("val_select", "val_rest")
#: Every evaluation split, in report order; ``val_full`` is ``val_select`` + ``val_rest``.
EVAL_SPLITS: tuple[str, ...] = ("val_select", "val_rest", "val_full")
#: The honest estimate: validation videos not used for any choice.
REPORT_SPLIT = "val_rest"
#: Key of the undegraded input among the resolutions.
NATIVE = "native"


#: The key of an interval beside a score in ``metrics.json``: ``ci95`` for a 95% interval.
INTERVAL_KEY = re.compile(r"ci(\d{2})")


def interval_key(percent: int) -> str:
    """Return the ``metrics.json`` key of a ``percent`` % interval (``ci95``)."""
    return f"ci{percent}"


def json_interval(entry: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    """Return the interval of ``metric`` stored in one ``metrics.json`` entry, or None."""
    for key, value in entry.items():
        if INTERVAL_KEY.fullmatch(key) and metric in value:
            low, high = value[metric]
            return float(low), float(high)
    return None


class ResultsError(ValueError):
    """A ``metrics.json`` that is missing, unreadable or not of the expected shape."""


@dataclass(frozen=True)
class SplitMetrics:
    """The challenge metrics of one split at one resolution.

    Attributes:
        accuracy: micro accuracy.
        f1_macro: F1 averaged over every class (zero division counts 0).
        f1_per_class: F1 of each class, by name, in label order.
        challenge_score: 0.33 accuracy + 0.67 macro F1.
        n: frames counted.
        ci: ``{metric: (low, high)}``, the bootstrap interval over videos of
            ``challenge_score``, ``accuracy`` and ``f1_macro`` (None: not computed, or an
            evaluation written before intervals existed).
        ci_percent: the interval's confidence level in percent (``ci95`` in ``metrics.json``).
    """

    accuracy: float
    f1_macro: float
    f1_per_class: dict[str, float]
    challenge_score: float
    n: int
    ci: dict[str, tuple[float, float]] | None = None
    ci_percent: int = 95

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, classes: Sequence[str]) -> SplitMetrics:
        """Compute the metrics of a ``C x C`` confusion matrix (rows = true class)."""
        m = metrics_from_confusion(confusion)
        per_class = dict(zip(classes, (float(f) for f in m["f1_per_class"]), strict=True))
        return cls(float(m["acc"]), float(m["f1"]), per_class, float(m["score"]), int(m["n"]))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitMetrics:
        """Read one entry of an evaluation's ``metrics.json`` (with or without an interval)."""
        key = next((k for k in data if INTERVAL_KEY.fullmatch(k)), None)
        return cls(
            accuracy=float(data["accuracy"]),
            f1_macro=float(data["f1_macro"]),
            f1_per_class={str(c): float(f) for c, f in data["f1_per_class"].items()},
            challenge_score=float(data["challenge_score"]),
            n=int(data["n"]),
            ci=None if key is None else {
                str(m): (float(lo), float(hi)) for m, (lo, hi) in data[key].items()
            },
            ci_percent=95 if key is None else int(key[2:]),
        )  # fmt: skip

    def with_interval(self, ci: Mapping[str, tuple[float, float]], percent: int) -> SplitMetrics:
        """Return these metrics with an interval."""
        return replace(self, ci=dict(ci), ci_percent=percent)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON entry (the interval, if any, as ``ci<percent>: {metric: [lo, hi]}``)."""
        data: dict[str, Any] = {
            "accuracy": self.accuracy,
            "f1_macro": self.f1_macro,
            "f1_per_class": dict(self.f1_per_class),
            "challenge_score": self.challenge_score,
            "n": self.n,
        }
        if self.ci is not None:
            data[interval_key(self.ci_percent)] = {m: list(b) for m, b in self.ci.items()}
        return data


@dataclass
class EvalResults:
    """An evaluation's ``metrics.json``.

    Attributes:
        checkpoint: the evaluated checkpoint (absolute path).
        data_root: the dataset root evaluated on.
        run_config: the training run's ``config.yaml`` the data config came from, or None.
        classes: class names in label order.
        native_size: ``(height, width)`` of the frames.
        resolutions: the degraded resolutions, ascending.
        skipped_images: unreadable frames skipped, per split.
        splits: ``{split: {resolution key: metrics}}`` for each of :data:`EVAL_SPLITS`.
        smoothing: the temporal-smoothing results (``{"kind": "none"}`` without smoothing).
        dataset: the dataset evaluated on (``affwild2``, ``rafdb``, ...).
        model_classes: the model's classes; ``classes`` are those it shares with the data.
        excluded_classes: per data class the model does not know, its ``val_full`` samples,
            left out of every metric (cross-dataset evaluation).
        degradations: ``{kernel: {split: {resolution key: metrics}}}`` for every evaluated way
            of making the low resolutions; ``splits`` holds the training kernel's (bilinear).
        jpeg_quality: the JPEG quality of the ``jpeg`` degradation.
        bootstrap: how the intervals were computed (``samples``, ``seed``, ``confidence``,
            ``resampled``: ``video`` or ``image``); None without intervals.
        initial_weights: where the training started from (the run's ``initial_weights.json``,
            see ``models/pretrained.py``), or None when not recorded.
    """

    checkpoint: str
    data_root: str
    run_config: str | None
    classes: list[str]
    native_size: list[int]
    resolutions: list[int]
    skipped_images: dict[str, int]
    splits: dict[str, dict[str, SplitMetrics]]
    smoothing: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    dataset: str = ""
    model_classes: list[str] = field(default_factory=list)
    excluded_classes: dict[str, int] = field(default_factory=dict)
    degradations: dict[str, dict[str, dict[str, SplitMetrics]]] = field(default_factory=dict)
    jpeg_quality: int | None = None
    bootstrap: dict[str, Any] | None = None
    initial_weights: dict[str, Any] | None = None

    def kernels(self) -> list[str]:
        """Return the evaluated degradation kernels (the training's alone for older files)."""
        return list(self.degradations) or ["bilinear"]

    def kernel_splits(self, kernel: str) -> dict[str, dict[str, SplitMetrics]]:
        """Return ``{split: {resolution key: metrics}}`` of one degradation kernel."""
        if kernel == "bilinear":  # the training's: the per-split results
            return self.splits
        if kernel in self.degradations:
            return self.degradations[kernel]
        raise KeyError(f"{self.checkpoint}: degradation {kernel!r} was not evaluated")

    def resolution_keys(self) -> list[str]:
        """Return the result keys of the degraded resolutions, ascending, then ``native``."""
        return [*(str(r) for r in sorted(self.resolutions)), NATIVE]

    def scores(self, split: str = REPORT_SPLIT, kernel: str = "bilinear") -> dict[str, float]:
        """Return ``{resolution key: challenge score}`` of one split and degradation kernel."""
        return {key: m.challenge_score for key, m in self.kernel_splits(kernel)[split].items()}

    def to_json(self) -> dict[str, Any]:
        """Return the ``metrics.json`` contents: the context keys, then one key per split."""
        data: dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "data_root": self.data_root,
            "run_config": self.run_config,
            "classes": list(self.classes),
            "model_classes": list(self.model_classes),
            "excluded_classes": dict(self.excluded_classes),
            "native_size": list(self.native_size),
            "resolutions": list(self.resolutions),
            "skipped_images": dict(self.skipped_images),
        }
        for split, by_key in self.splits.items():
            data[split] = {key: m.to_json() for key, m in by_key.items()}
        data["smoothing"] = self.smoothing
        data["degradations"] = {
            kernel: {
                split: {key: m.to_json() for key, m in by_key.items()}
                for split, by_key in by_split.items()
            }
            for kernel, by_split in self.degradations.items()
        }
        data["jpeg_quality"] = self.jpeg_quality
        data["bootstrap"] = self.bootstrap
        data["initial_weights"] = self.initial_weights
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvalResults:
        """Read parsed ``metrics.json`` contents (see :func:`is_eval_results`)."""
        splits = {
            split: {str(key): SplitMetrics.from_json(m) for key, m in data[split].items()}
            for split in EVAL_SPLITS
            if isinstance(data.get(split), Mapping)
        }
        first = next(iter(next(iter(splits.values())).values()))
        recorded = data.get("resolutions")
        if recorded is None:  # written before "resolutions" was recorded: read the keys
            recorded = [k for by_key in splits.values() for k in by_key if k.isdigit()]
        return cls(
            checkpoint=str(data.get("checkpoint") or ""),
            data_root=str(data.get("data_root") or ""),
            run_config=data.get("run_config"),
            classes=list(data.get("classes") or first.f1_per_class),
            native_size=list(data.get("native_size") or []),
            resolutions=sorted({int(r) for r in recorded}),
            skipped_images=dict(data.get("skipped_images") or {}),
            splits=splits,
            smoothing=dict(data.get("smoothing") or {"kind": "none"}),
            dataset=str(data.get("dataset") or ""),
            model_classes=list(data.get("model_classes") or []),
            excluded_classes={
                str(k): int(v) for k, v in (data.get("excluded_classes") or {}).items()
            },
            degradations={
                str(kernel): {
                    split: {str(key): SplitMetrics.from_json(m) for key, m in by_key.items()}
                    for split, by_key in by_split.items()
                }
                for kernel, by_split in (data.get("degradations") or {}).items()
            },
            jpeg_quality=data.get("jpeg_quality"),
            bootstrap=data.get("bootstrap"),
            initial_weights=data.get("initial_weights"),
        )


@dataclass
class TrainingResults:
    """A training run's ``metrics.json``: the best checkpoint's validation metrics.

    Attributes:
        checkpoint: the best checkpoint on ``val_select/score``, or None if none was saved.
        classes: class names in label order.
        metrics: the logged metrics, by name (``val_select/score``, ``val_full/f1_Anger``, ...).
    """

    checkpoint: str | None
    classes: list[str]
    metrics: dict[str, float]

    def score(self, split: str) -> float | None:
        """Return the challenge score ``<split>/score``, if logged."""
        value = self.metrics.get(f"{split}/score")
        return None if value is None else float(value)

    def split_metrics(self, split: str) -> dict[str, float]:
        """Return one split's logged metrics without the split prefix (``acc``, ``f1_Anger``)."""
        prefix = f"{split}/"
        return {k[len(prefix) :]: float(v) for k, v in self.metrics.items() if k.startswith(prefix)}

    def to_json(self) -> dict[str, Any]:
        """Return the ``metrics.json`` contents."""
        return {"checkpoint": self.checkpoint, "classes": list(self.classes),
                "metrics": dict(self.metrics)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingResults:
        """Read parsed ``metrics.json`` contents (see :func:`is_training_results`)."""
        metrics = {str(k): float(v) for k, v in data["metrics"].items() if _is_number(v)}
        return cls(data.get("checkpoint"), list(data.get("classes") or []), metrics)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_eval_results(data: Any) -> bool:
    """Tell whether parsed JSON has the evaluation shape ``{split: {resolution: {...}}}``."""
    if not isinstance(data, Mapping):
        return False
    per_split = [data[s] for s in EVAL_SPLITS if isinstance(data.get(s), Mapping)]
    return (
        bool(per_split)
        and all(
            isinstance(entry, Mapping) and "challenge_score" in entry
            for split in per_split
            for entry in split.values()
        )
        and all(per_split)
    )


def is_training_results(data: Any) -> bool:
    """Tell whether parsed JSON has the training shape ``{"checkpoint", "metrics": {...}}``."""
    return isinstance(data, Mapping) and isinstance(data.get("metrics"), Mapping)


def load_results(path: str | Path) -> EvalResults | TrainingResults:
    """Load a ``metrics.json`` (or the one in a directory) of either kind.

    Raises:
        ResultsError: naming the file, if it is missing, not JSON, or of neither shape.
    """
    file = metrics_file(path)
    if not file.is_file():
        raise ResultsError(f"{path}: no {METRICS_FILE} (not an evaluation's or a run's directory)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ResultsError(f"{file}: cannot read results: {err}") from err
    try:
        if is_eval_results(data):
            return EvalResults.from_json(data)
        if is_training_results(data):
            return TrainingResults.from_json(data)
    except (KeyError, TypeError, ValueError, StopIteration) as err:
        raise ResultsError(f"{file}: malformed results: {err!r}") from err
    raise ResultsError(
        f"{file}: neither an evaluation's metrics.json ({{split: {{resolution: metrics}}}}) "
        "nor a training run's ({checkpoint, classes, metrics})"
    )


def load_eval_results(path: str | Path) -> EvalResults:
    """Load an evaluation's ``metrics.json`` (or the one in a directory).

    Raises:
        ResultsError: naming the file, if it is missing or not an evaluation's results.
    """
    results = load_results(path)
    if not isinstance(results, EvalResults):
        raise ResultsError(
            f"{metrics_file(path)} is a training run's metrics.json, not an evaluation's: "
            "evaluate it with python -m fer_multires.evaluate ckpt_path=<run dir>"
        )
    return results


def load_training_results(path: str | Path) -> TrainingResults:
    """Load a training run's ``metrics.json`` (or the one in a run directory).

    Raises:
        ResultsError: naming the file, if it is missing or not a training run's results.
    """
    results = load_results(path)
    if not isinstance(results, TrainingResults):
        raise ResultsError(f"{metrics_file(path)} is an evaluation's metrics.json, not a run's")
    return results
