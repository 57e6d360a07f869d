"""Results: the split names, ``native``, and the one schema of ``metrics.json`` with its loader.

Two entry points write a ``metrics.json``, and everything that reads one (the report, compare,
the notebook, the tests) goes through this module:

* ``train`` writes :class:`TrainingResults`: the task, the best checkpoint, the class names and
  the flat metrics Lightning logged for it (``val_select/score``, ``val_full/f1_<Class>``, ...);
* ``evaluate`` writes :class:`EvalResults`: the task, per validation split, per resolution
  (``"8"``, ..., ``"native"``) a :class:`SplitMetrics`, plus the context of the evaluation and
  its smoothing.

Both carry a top-level ``task`` (:mod:`fer_multires.tasks`; a file without one, written before
tasks existed, is ``expr``). An entry holds the metrics of the task's heads (see
:class:`SplitMetrics`), and the task's one score is read from it by :func:`task_score`, through
:data:`SCORE_KEYS`: ``challenge_score`` (``expr``), ``va_score`` (``va``), ``au_score``
(``au``), ``mtl_score`` (``mtl``). The report, compare and the sweeps read it there and nowhere
else.
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
from fer_multires.task_metrics import au_f1_from_counts, mtl_score, va_metrics_from_sums
from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, TASK_HEADS, check_task

#: The loaders of one validation epoch, in ``dataloader_idx`` order.
VAL_LOADERS: tuple[str, ...] = ("val_select", "val_rest")
#: Every evaluation split, in report order; ``val_full`` is ``val_select`` + ``val_rest``.
EVAL_SPLITS: tuple[str, ...] = ("val_select", "val_rest", "val_full")
#: The honest estimate: validation videos not used for any choice.
REPORT_SPLIT = "val_rest"
#: Key of the undegraded input among the resolutions.
NATIVE = "native"


#: Each task's one score: the key of a :class:`SplitMetrics` entry it is read from
#: (:func:`task_score`). The best checkpoint is chosen on it (``<split>/score`` in training).
SCORE_KEYS: dict[str, str] = {
    "expr": "challenge_score",
    "va": "va_score",
    "au": "au_score",
    "mtl": "mtl_score",
}
#: Each task's score in words, for tables, plots and messages.
SCORE_NAMES: dict[str, str] = {
    "expr": "challenge score",
    "va": "va_score (mean CCC)",
    "au": "au_score (mean AU F1)",
    "mtl": "mtl_score",
}


def score_key(task: str) -> str:
    """Return the ``metrics.json`` key of ``task``'s score (:data:`SCORE_KEYS`)."""
    return SCORE_KEYS[check_task(task)]


def task_score(entry: SplitMetrics | Mapping[str, Any], task: str) -> float:
    """Return the task's score of one entry: a :class:`SplitMetrics` or its JSON.

    The one place the report, compare, the sweeps and the smoothing choice read "the score".
    """
    key = score_key(task)
    value = getattr(entry, key) if isinstance(entry, SplitMetrics) else entry[key]
    if value is None:
        raise KeyError(f"a {task} entry without {key}")
    return float(value)


def file_task(data: Mapping[str, Any]) -> str:
    """Return the ``task`` of parsed ``metrics.json`` contents (``expr`` where absent).

    Raises:
        ValueError: naming the task, if it is not one of :data:`~fer_multires.tasks.TASKS`.
    """
    return check_task(str(data.get("task") or DEFAULT_TASK), "metrics.json task")


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
    """The metrics of one split at one resolution: those of the task's heads.

    An entry holds what its heads give (the others are None):

    * expression: ``accuracy``, ``f1_macro``, ``f1_per_class``, ``challenge_score``;
    * valence-arousal: ``ccc_valence``, ``ccc_arousal``, ``va_score`` (their mean);
    * action units: ``f1_per_au`` (at the evaluation's thresholds), ``au_score`` (their mean);
    * all three (``mtl``): also ``mtl_score`` = ``va_score`` + ``f1_macro`` + ``au_score``
      (:func:`~fer_multires.task_metrics.mtl_score`).

    Attributes:
        accuracy: micro accuracy.
        f1_macro: F1 averaged over every class (zero division counts 0).
        f1_per_class: F1 of each class, by name, in label order.
        challenge_score: 0.33 accuracy + 0.67 macro F1.
        n: frames the score is computed on: for one head, the frames that head counts (an
            expression, a valence-arousal annotation, at least one AU label: in a ``va``,
            ``au`` or ``expr`` index every frame); for ``mtl``, every frame evaluated.
        ci: ``{metric: (low, high)}``, the bootstrap interval over videos of the heads'
            summary scores (``challenge_score``, ``accuracy``, ``f1_macro``; ``ccc_valence``,
            ``ccc_arousal``, ``va_score``; ``au_score``; ``mtl_score``), None: not computed, or
            an evaluation written before intervals existed.
        ci_percent: the interval's confidence level in percent (``ci95`` in ``metrics.json``).
        ccc_valence: the concordance correlation coefficient of valence.
        ccc_arousal: that of arousal.
        va_score: their mean.
        f1_per_au: F1 of each action unit, by name (:data:`~fer_multires.tasks.AU_NAMES`).
        au_score: their mean.
        mtl_score: the multi-task score.
        n_expr: ``mtl`` only: the frames with an expression label.
        n_va: ``mtl`` only: the frames with a valence-arousal annotation.
        n_au: ``mtl`` only: the frames with at least one AU label.
    """

    accuracy: float | None = None
    f1_macro: float | None = None
    f1_per_class: dict[str, float] | None = None
    challenge_score: float | None = None
    n: int = 0
    ci: dict[str, tuple[float, float]] | None = None
    ci_percent: int = 95
    ccc_valence: float | None = None
    ccc_arousal: float | None = None
    va_score: float | None = None
    f1_per_au: dict[str, float] | None = None
    au_score: float | None = None
    mtl_score: float | None = None
    n_expr: int | None = None
    n_va: int | None = None
    n_au: int | None = None

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads this entry has metrics of, in :data:`~fer_multires.tasks.TASK_HEADS` order."""
        present = {"expr": self.challenge_score, "va": self.va_score, "au": self.au_score}
        return tuple(head for head, value in present.items() if value is not None)

    @property
    def task(self) -> str:
        """The task whose metrics these are (from the heads present)."""
        heads = self.heads
        return next((t for t, h in TASK_HEADS.items() if h == heads), DEFAULT_TASK)

    @property
    def score(self) -> float:
        """The task's score (:func:`task_score`)."""
        return task_score(self, self.task)

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, classes: Sequence[str]) -> SplitMetrics:
        """Compute the metrics of a ``C x C`` confusion matrix (rows = true class)."""
        m = metrics_from_confusion(confusion)
        per_class = dict(zip(classes, (float(f) for f in m["f1_per_class"]), strict=True))
        return cls(float(m["acc"]), float(m["f1"]), per_class, float(m["score"]), int(m["n"]))

    @classmethod
    def from_heads(
        cls,
        *,
        frames: int,
        confusion: np.ndarray | None = None,
        classes: Sequence[str] = (),
        va_sums: np.ndarray | None = None,
        au_counts: np.ndarray | None = None,
        au_frames: int | None = None,
    ) -> SplitMetrics:
        """Compute the metrics of whichever heads are given, from their summed states.

        Args:
            frames: the frames evaluated (``n`` of a multi-task entry).
            confusion: the expression head's ``C x C`` confusion matrix.
            classes: its class names.
            va_sums: the valence-arousal sums ``(2, 6)``
                (:func:`~fer_multires.task_metrics.va_sums`).
            au_counts: the AU head's ``(3, 12)`` counts ``tp, fp, fn`` of each AU at the
                thresholds applied (:func:`~fer_multires.uncertainty.au_counts_at`).
            au_frames: the frames with at least one AU label (``n`` of an AU entry).
        """
        fields: dict[str, Any] = {}
        heads = []
        if confusion is not None:
            heads.append("expr")
            expr = cls.from_confusion(confusion, classes)
            fields |= {"accuracy": expr.accuracy, "f1_macro": expr.f1_macro,
                       "f1_per_class": expr.f1_per_class,
                       "challenge_score": expr.challenge_score, "n_expr": expr.n}  # fmt: skip
        if va_sums is not None:
            heads.append("va")
            va = va_metrics_from_sums(va_sums)
            fields |= {name: float(va[name]) for name in ("ccc_valence", "ccc_arousal", "va_score")}
            fields["n_va"] = int(va["n"])
        if au_counts is not None:
            heads.append("au")
            f1 = au_f1_from_counts(*np.asarray(au_counts, dtype=np.int64))
            fields |= {"f1_per_au": dict(zip(AU_NAMES, map(float, f1), strict=True)),
                       "au_score": float(np.mean(f1)), "n_au": au_frames}  # fmt: skip
        if len(heads) == 3:
            parts = (fields[k] for k in ("ccc_valence", "ccc_arousal", "f1_macro", "au_score"))
            return cls(n=int(frames), mtl_score=float(mtl_score(*parts)), **fields)
        if len(heads) != 1:
            raise ValueError(f"metrics of the heads {', '.join(heads) or 'none'}: not a task's")
        n = fields.pop(f"n_{heads[0]}")
        return cls(n=int(frames if n is None else n), **fields)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitMetrics:
        """Read one entry of an evaluation's ``metrics.json`` (with or without an interval)."""
        key = next((k for k in data if INTERVAL_KEY.fullmatch(k)), None)

        def number(name: str, kind: type = float) -> Any:
            return None if data.get(name) is None else kind(data[name])

        def named(name: str) -> dict[str, float] | None:
            values = data.get(name)
            return None if values is None else {str(c): float(f) for c, f in values.items()}

        return cls(
            accuracy=number("accuracy"),
            f1_macro=number("f1_macro"),
            f1_per_class=named("f1_per_class"),
            challenge_score=number("challenge_score"),
            n=int(data["n"]),
            ci=None if key is None else {
                str(m): (float(lo), float(hi)) for m, (lo, hi) in data[key].items()
            },
            ci_percent=95 if key is None else int(key[2:]),
            ccc_valence=number("ccc_valence"),
            ccc_arousal=number("ccc_arousal"),
            va_score=number("va_score"),
            f1_per_au=named("f1_per_au"),
            au_score=number("au_score"),
            mtl_score=number("mtl_score"),
            n_expr=number("n_expr", int),
            n_va=number("n_va", int),
            n_au=number("n_au", int),
        )  # fmt: skip

    def with_interval(self, ci: Mapping[str, tuple[float, float]], percent: int) -> SplitMetrics:
        """Return these metrics with an interval."""
        return replace(self, ci=dict(ci), ci_percent=percent)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON entry: the heads' metrics, ``n``, and the interval.

        The heads' metrics in the order of the attributes' list, ``n`` (for ``mtl`` then
        ``n_expr``, ``n_va``, ``n_au``), and the interval, if any, as
        ``ci<percent>: {metric: [lo, hi]}``.

        An expression entry is what it was before tasks existed: ``accuracy``, ``f1_macro``,
        ``f1_per_class``, ``challenge_score``, ``n``.
        """
        data: dict[str, Any] = {}
        if self.challenge_score is not None:
            data |= {"accuracy": self.accuracy, "f1_macro": self.f1_macro,
                     "f1_per_class": dict(self.f1_per_class or {}),
                     "challenge_score": self.challenge_score}  # fmt: skip
        if self.va_score is not None:
            data |= {"ccc_valence": self.ccc_valence, "ccc_arousal": self.ccc_arousal,
                     "va_score": self.va_score}  # fmt: skip
        if self.au_score is not None:
            data |= {"f1_per_au": dict(self.f1_per_au or {}), "au_score": self.au_score}
        if self.mtl_score is not None:
            data["mtl_score"] = self.mtl_score
        data["n"] = self.n
        for name in ("n_expr", "n_va", "n_au"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
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
        task: the evaluated model's task (:mod:`fer_multires.tasks`): which heads each entry
            has, and which score is the task's (:data:`SCORE_KEYS`).
        au_thresholds: tasks with an AU head: each AU's threshold, chosen on ``val_select``
            (native resolution) and applied to every split, resolution and degradation; None
            for the others.
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
    task: str = DEFAULT_TASK
    au_thresholds: dict[str, float] | None = None

    @property
    def score_key(self) -> str:
        """The key of the task's score in each entry (:data:`SCORE_KEYS`)."""
        return score_key(self.task)

    @property
    def score_name(self) -> str:
        """The task's score in words (:data:`SCORE_NAMES`)."""
        return SCORE_NAMES[self.task]

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
        """Return ``{resolution key: the task's score}`` of one split and degradation kernel."""
        by_key = self.kernel_splits(kernel)[split]
        return {key: task_score(m, self.task) for key, m in by_key.items()}

    def intervals(
        self, split: str = REPORT_SPLIT, kernel: str = "bilinear"
    ) -> dict[str, tuple[float, float]]:
        """Return ``{resolution key: interval of the task's score}`` where there is one."""
        by_key = self.kernel_splits(kernel).get(split, {})
        return {
            k: m.ci[self.score_key] for k, m in by_key.items() if m.ci and self.score_key in m.ci
        }

    def to_json(self) -> dict[str, Any]:
        """Return the ``metrics.json`` contents: the context keys, then one key per split.

        ``task`` comes first; ``au_thresholds`` (``{AU: threshold}``) follows
        ``skipped_images`` for the tasks with an AU head.
        """
        data: dict[str, Any] = {
            "task": self.task,
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
        if self.au_thresholds is not None:
            data["au_thresholds"] = dict(self.au_thresholds)
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
        thresholds = data.get("au_thresholds")
        recorded = data.get("resolutions")
        if recorded is None:  # written before "resolutions" was recorded: read the keys
            recorded = [k for by_key in splits.values() for k in by_key if k.isdigit()]
        return cls(
            checkpoint=str(data.get("checkpoint") or ""),
            data_root=str(data.get("data_root") or ""),
            run_config=data.get("run_config"),
            classes=list(data.get("classes") or first.f1_per_class or []),
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
            task=file_task(data),
            au_thresholds=None if thresholds is None else {
                str(k): float(v) for k, v in thresholds.items()
            },
        )  # fmt: skip


@dataclass
class TrainingResults:
    """A training run's ``metrics.json``: the best checkpoint's validation metrics.

    Attributes:
        checkpoint: the best checkpoint on ``val_select/score``, or None if none was saved.
        classes: class names in label order.
        metrics: the logged metrics, by name (``val_select/score``, ``val_full/f1_Anger``, ...).
        task: the run's task (``expr`` for a file written before tasks existed).
        au_thresholds: tasks with an AU head: the thresholds of the logged AU F1s
            (``{AU: 0.5}``: training's validation does not choose them); None for the others.
    """

    checkpoint: str | None
    classes: list[str]
    metrics: dict[str, float]
    task: str = DEFAULT_TASK
    au_thresholds: dict[str, float] | None = None

    def score(self, split: str) -> float | None:
        """Return the task's score ``<split>/score``, if logged (:data:`SCORE_KEYS`)."""
        value = self.metrics.get(f"{split}/score")
        return None if value is None else float(value)

    def split_metrics(self, split: str) -> dict[str, float]:
        """Return one split's logged metrics without the split prefix (``acc``, ``f1_Anger``)."""
        prefix = f"{split}/"
        return {k[len(prefix) :]: float(v) for k, v in self.metrics.items() if k.startswith(prefix)}

    def to_json(self) -> dict[str, Any]:
        """Return the ``metrics.json`` contents.

        ``task``, ``checkpoint``, ``classes``, ``au_thresholds`` (tasks with an AU head),
        ``metrics``.
        """
        data: dict[str, Any] = {"task": self.task, "checkpoint": self.checkpoint,
                                "classes": list(self.classes)}  # fmt: skip
        if self.au_thresholds is not None:
            data["au_thresholds"] = dict(self.au_thresholds)
        return data | {"metrics": dict(self.metrics)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingResults:
        """Read parsed ``metrics.json`` contents (see :func:`is_training_results`)."""
        metrics = {str(k): float(v) for k, v in data["metrics"].items() if _is_number(v)}
        thresholds = data.get("au_thresholds")
        return cls(data.get("checkpoint"), list(data.get("classes") or []), metrics,
                   file_task(data),
                   None if thresholds is None else {str(k): float(v)
                                                    for k, v in thresholds.items()})  # fmt: skip


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
            isinstance(entry, Mapping) and any(key in entry for key in SCORE_KEYS.values())
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
