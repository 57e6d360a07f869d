"""The resolution-aware confidence of ``predict``: the evaluation's score at a face's size.

When the checkpoint's run holds an evaluation (``<run>/eval/metrics.json``, written by
``eval_after_fit`` or by ``evaluate run_dir=<run>/eval``; or any evaluation's ``metrics.json``
named by ``predict.metrics``), each face gets ``expected_score``: the ``val_rest`` challenge score
the evaluation measured at that face's resolution, interpolated linearly in log2(resolution)
between the evaluated resolutions (the native one included, at the frames' shorter side).

The resolution compared is the crop's side in the original pixels, ``crop_px`` (the aligned
crop's side, the template's 112 px measured in the source, for an aligned face;
``face_px * (1 + 2 * predict.margin)`` for a square crop; the image's shorter side with
``detector=none``), not ``face_px`` itself: an evaluated resolution ``r`` is the shorter side of a
whole training frame degraded to ``r`` pixels (:meth:`BatchTransform.degrade
<fer_multires.data.batch_transforms.BatchTransform.degrade>`), and a training frame frames the
face with the margin a crop has (see :mod:`fer_multires.inference.detect`). In a frame evaluated
at ``r`` the face box spans ``r / (1 + 2 * margin)`` pixels, so a face of ``face_px`` pixels
carries the detail of a frame evaluated at ``face_px * (1 + 2 * margin)`` = ``crop_px``; reading
the score at ``face_px`` would rate every face as if it were 1.4 times smaller than it is. A
face whose crop is smaller than the smallest evaluated resolution gets no ``expected_score``
(the evaluation says nothing about it; the score only falls further) and is flagged; one larger
than the native size gets the native score.

Every task (:mod:`fer_multires.tasks`) has its score: the challenge score (``expr``), the mean
CCC of valence and arousal (``va``), the mean F1 over the twelve AUs (``au``), the multi-task
score (``mtl``). For ``expr`` it is read through :func:`~fer_multires.results.load_eval_results`;
for the other tasks from the evaluation's JSON, each resolution's entry of ``val_rest`` giving
its :data:`~fer_multires.results.SCORE_KEYS` (``va_score``, ``au_score``, ``mtl_score``). An
evaluation without that score leaves ``expected_score`` empty (logged), as no evaluation does.

The same evaluation gives a model with an AU head its decision thresholds: ``au_thresholds`` in
its ``metrics.json`` (``{AU name: threshold}`` for the twelve AUs, or a list of twelve in
:data:`~fer_multires.tasks.AU_NAMES` order), chosen on ``val_select``
(:func:`~fer_multires.task_metrics.choose_thresholds`); without one, every AU is active at
:data:`~fer_multires.task_metrics.DEFAULT_AU_THRESHOLD` (:class:`AuThresholds`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.results import (
    EVAL_SPLITS,
    NATIVE,
    REPORT_SPLIT,
    SCORE_KEYS,
    EvalResults,
    ResultsError,
    is_training_results,
    load_eval_results,
)
from fer_multires.runs import METRICS_FILE, eval_dir, find_evaluation, metrics_file
from fer_multires.task_metrics import DEFAULT_AU_THRESHOLD
from fer_multires.tasks import AU_NAMES, DEFAULT_TASK, check_task

log = logging.getLogger(__name__)

#: The key of the AU thresholds in an evaluation's ``metrics.json``.
AU_THRESHOLDS_KEY = "au_thresholds"


@dataclass(frozen=True)
class ExpectedScore:
    """The evaluated ``(resolution, score)`` points of one split, ascending.

    Attributes:
        resolutions: the evaluated resolutions in pixels (the native one last).
        scores: the task's score at each.
        split: the split the scores are of (``val_rest``).
        origin: the ``metrics.json`` they were read from.
        task: the task whose score they are (:data:`~fer_multires.results.SCORE_NAMES`).
    """

    resolutions: tuple[int, ...]
    scores: tuple[float, ...]
    split: str = REPORT_SPLIT
    origin: str = ""
    task: str = DEFAULT_TASK

    @property
    def smallest(self) -> int:
        """The smallest evaluated resolution."""
        return self.resolutions[0]

    def at(self, crop_px: float) -> float | None:
        """Return the interpolated score at ``crop_px``, or None below the smallest resolution."""
        if crop_px < self.smallest:
            return None
        if len(self.resolutions) == 1:
            return self.scores[0]
        x = np.log2(np.asarray(self.resolutions, dtype=np.float64))
        return float(np.interp(math.log2(crop_px), x, np.asarray(self.scores)))

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form (stored in an exported ONNX file's metadata)."""
        points = [[r, s] for r, s in zip(self.resolutions, self.scores, strict=True)]
        return {"split": self.split, "origin": self.origin, "points": points, "task": self.task}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExpectedScore:
        """Read :meth:`to_json`'s dict (without ``task``: an expression model's)."""
        points = sorted((int(r), float(s)) for r, s in data["points"])
        return cls(tuple(r for r, _ in points), tuple(s for _, s in points),
                   str(data.get("split", REPORT_SPLIT)), str(data.get("origin", "")),
                   str(data.get("task", DEFAULT_TASK)))  # fmt: skip

    @classmethod
    def from_results(cls, results: EvalResults, origin: str = "") -> ExpectedScore:
        """Take the ``val_rest`` scores of an evaluation, native at the frames' shorter side.

        Raises:
            ResultsError: if the evaluation has no ``val_rest`` scores.
        """
        try:
            scores = results.scores(REPORT_SPLIT)
        except KeyError as err:
            raise ResultsError(f"{origin}: no {REPORT_SPLIT} results") from err
        return cls.from_points(scores, results.native_size, origin, DEFAULT_TASK)

    @classmethod
    def from_points(cls, scores: Mapping[str, float], native_size: list[int], origin: str,
                    task: str) -> ExpectedScore:  # fmt: skip
        """Take ``{resolution key: score}`` (``native`` at the frames' shorter side).

        Raises:
            ResultsError: if no resolution was evaluated.
        """
        points = {int(k): v for k, v in scores.items() if k.isdigit()}
        if NATIVE in scores and native_size:
            points[min(int(s) for s in native_size)] = scores[NATIVE]
        if not points:
            raise ResultsError(f"{origin}: no evaluated resolution")
        ordered = sorted(points.items())
        return cls(tuple(r for r, _ in ordered), tuple(s for _, s in ordered), REPORT_SPLIT,
                   origin, task)  # fmt: skip

    @classmethod
    def from_task_json(
        cls, data: Mapping[str, Any], task: str, origin: str
    ) -> ExpectedScore | None:
        """Take a task's ``val_rest`` scores from an evaluation's parsed ``metrics.json``.

        Returns:
            None if no resolution's entry has the task's score
            (:data:`~fer_multires.results.SCORE_KEYS`).
        """
        entries = data.get(REPORT_SPLIT)
        if not isinstance(entries, Mapping):
            return None
        scores = {}
        for resolution, entry in entries.items():
            if not isinstance(entry, Mapping):
                continue
            if is_number(entry.get(SCORE_KEYS[task])):
                scores[str(resolution)] = float(entry[SCORE_KEYS[task]])
        if not scores:
            return None
        return cls.from_points(scores, list(data.get("native_size") or []), origin, task)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class AuThresholds:
    """Each AU's decision threshold: an AU is active when its probability is at or above it.

    Attributes:
        values: one threshold per AU, in :data:`~fer_multires.tasks.AU_NAMES` order.
        origin: the ``metrics.json`` they were read from; empty for the default.
    """

    values: tuple[float, ...] = (DEFAULT_AU_THRESHOLD,) * len(AU_NAMES)
    origin: str = ""

    @property
    def array(self) -> np.ndarray:
        """The thresholds as a ``(12,)`` float64 array."""
        return np.asarray(self.values, dtype=np.float64)

    def describe(self) -> str:
        """Say where the thresholds come from (the log, the summary)."""
        if not self.origin:
            return f"{DEFAULT_AU_THRESHOLD:g} for every AU (no evaluation with {AU_THRESHOLDS_KEY})"
        return f"per AU, chosen on val_select, from {self.origin}"

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form (an ONNX file's metadata, a Hub folder's ``config.json``)."""
        values = dict(zip(AU_NAMES, self.values, strict=True))
        return {"values": values, "origin": self.origin}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], origin: str = "") -> AuThresholds:
        """Read :meth:`to_json`'s dict.

        Raises:
            ValueError: naming ``origin``, if the thresholds are not twelve in (0, 1).
        """
        return cls(parse_au_thresholds(data["values"], origin), str(data.get("origin", "")))


def parse_au_thresholds(value: Any, origin: str) -> tuple[float, ...]:
    """Read AU thresholds: ``{AU name: threshold}`` for the twelve AUs, or twelve in order.

    Raises:
        ValueError: naming ``origin``, if they are not that, or a threshold is not in (0, 1).
    """
    if isinstance(value, Mapping):
        if set(value) != set(AU_NAMES):
            raise ValueError(
                f"{origin}: {AU_THRESHOLDS_KEY} names {', '.join(map(str, value))}; expected the "
                f"AUs {', '.join(AU_NAMES)}"
            )
        value = [value[name] for name in AU_NAMES]
    if not isinstance(value, list | tuple) or len(value) != len(AU_NAMES):
        raise ValueError(
            f"{origin}: {AU_THRESHOLDS_KEY} must be {{AU name: threshold}} or a list of "
            f"{len(AU_NAMES)} thresholds ({', '.join(AU_NAMES)}), not {value!r}"
        )
    for name, threshold in zip(AU_NAMES, value, strict=True):
        if not is_number(threshold) or not 0 < threshold < 1:
            raise ValueError(
                f"{origin}: {AU_THRESHOLDS_KEY}: {name}={threshold!r} is not in (0, 1)"
            )
    return tuple(float(t) for t in value)


def read_evaluation_json(path: str | Path) -> tuple[Path, Any]:
    """Read a ``metrics.json`` (or the one in a directory).

    Raises:
        ResultsError: naming the file, if it is missing or not JSON.
    """
    file = metrics_file(path)
    if not file.is_file():
        raise ResultsError(f"{path}: no {METRICS_FILE} (not an evaluation's or a run's directory)")
    try:
        return file, json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ResultsError(f"{file}: cannot read results: {err}") from err


def is_evaluation_json(data: Any) -> bool:
    """Whether parsed JSON is an evaluation's: some split maps resolutions, not a run's metrics."""
    return (
        isinstance(data, Mapping)
        and not is_training_results(data)
        and any(isinstance(data.get(split), Mapping) for split in EVAL_SPLITS)
    )


def evaluation_of(metrics: str | Path | None, run_dir: Path | None, task: str,
                  key: str = "predict.metrics") -> tuple[Path, Any] | None:  # fmt: skip
    """Return the evaluation to read (its file and parsed JSON): ``metrics``, else the run's.

    The run's is ``<run>/eval/metrics.json`` or the run directory's own evaluation
    (:func:`~fer_multires.runs.find_evaluation` for ``expr``; for the other tasks, any evaluation
    JSON there, whatever its entries hold).

    Raises:
        ResultsError: naming the file, if ``metrics`` is given but is not an evaluation, or if a
            ``metrics.json`` cannot be read or parsed.
    """
    if metrics is not None:
        try:
            file, data = read_evaluation_json(metrics)
        except ResultsError as err:
            raise ResultsError(f"{key}: {err}") from None
        if task != DEFAULT_TASK and not is_evaluation_json(data):  # expr: load_eval_results says
            raise ResultsError(f"{key}: {file} is not an evaluation's metrics.json")
        return file, data
    if run_dir is None:
        return None
    if check_task(task) == DEFAULT_TASK:
        found = find_evaluation(run_dir)
        return None if found is None else read_evaluation_json(found)
    for candidate in (metrics_file(eval_dir(run_dir)), Path(run_dir) / METRICS_FILE):
        if candidate.exists():
            file, data = read_evaluation_json(candidate)
            if is_evaluation_json(data):
                return file, data
    return None


def load_expected_score(
    metrics: str | Path | None,
    run_dir: Path | None,
    key: str = "predict.metrics",
    task: str = DEFAULT_TASK,
) -> ExpectedScore | None:
    """Return the expected scores of an evaluation: ``metrics`` if given, else the run's.

    Args:
        metrics: ``predict.metrics``: an evaluation's ``metrics.json`` or its folder, or None.
        run_dir: the model's training run, or None.
        key: the config key, for the messages.
        task: the model's task: whose score is read (:data:`~fer_multires.results.SCORE_KEYS`).

    Raises:
        ResultsError: naming the file, if ``metrics`` is given but is not an evaluation, or if a
            ``metrics.json`` of the run cannot be read or parsed.
    """
    found = evaluation_of(metrics, run_dir, task, key)
    if found is None:
        log.info("no evaluation in %s: no expected_score (evaluate the run into <run>/eval, or "
                 "set predict.metrics=<an evaluation's metrics.json>)", run_dir)  # fmt: skip
        return None
    file, data = found
    if task != DEFAULT_TASK:
        expected = ExpectedScore.from_task_json(data, task, str(file))
        if expected is None:
            log.warning("%s: no %s %s at any resolution: no expected_score", file,
                        REPORT_SPLIT, SCORE_KEYS[task])  # fmt: skip
        return expected
    try:
        return ExpectedScore.from_results(load_eval_results(file), str(file))
    except ResultsError as err:
        if metrics is not None:
            raise ResultsError(f"{key}: {err}") from None
        log.warning("%s: not used for expected_score: %s", file, err)
        return None


def load_au_thresholds(
    metrics: str | Path | None, run_dir: Path | None, key: str = "predict.metrics"
) -> AuThresholds:
    """Return the AU thresholds of an evaluation (``metrics``, else the run's), or the default.

    Raises:
        ResultsError: naming the file, if ``metrics`` is not an evaluation, if a
            ``metrics.json`` cannot be read, or if its ``au_thresholds`` are malformed.
    """
    found = evaluation_of(metrics, run_dir, "au", key)
    if found is None or found[1].get(AU_THRESHOLDS_KEY) is None:
        return AuThresholds()
    file, data = found
    try:
        return AuThresholds(parse_au_thresholds(data[AU_THRESHOLDS_KEY], str(file)), str(file))
    except ValueError as err:
        raise ResultsError(str(err)) from None
