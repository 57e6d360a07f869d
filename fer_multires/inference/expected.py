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
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_multires.results import (
    NATIVE,
    REPORT_SPLIT,
    EvalResults,
    ResultsError,
    load_eval_results,
)
from fer_multires.runs import find_evaluation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpectedScore:
    """The evaluated ``(resolution, score)`` points of one split, ascending.

    Attributes:
        resolutions: the evaluated resolutions in pixels (the native one last).
        scores: the challenge score at each.
        split: the split the scores are of (``val_rest``).
        origin: the ``metrics.json`` they were read from.
    """

    resolutions: tuple[int, ...]
    scores: tuple[float, ...]
    split: str = REPORT_SPLIT
    origin: str = ""

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
        return {"split": self.split, "origin": self.origin, "points": points}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExpectedScore:
        """Read :meth:`to_json`'s dict."""
        points = sorted((int(r), float(s)) for r, s in data["points"])
        return cls(tuple(r for r, _ in points), tuple(s for _, s in points),
                   str(data.get("split", REPORT_SPLIT)), str(data.get("origin", "")))  # fmt: skip

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
        points = {int(k): v for k, v in scores.items() if k.isdigit()}
        if NATIVE in scores and results.native_size:
            points[min(int(s) for s in results.native_size)] = scores[NATIVE]
        if not points:
            raise ResultsError(f"{origin}: no evaluated resolution")
        ordered = sorted(points.items())
        return cls(tuple(r for r, _ in ordered), tuple(s for _, s in ordered), REPORT_SPLIT,
                   origin)  # fmt: skip


def load_expected_score(
    metrics: str | Path | None, run_dir: Path | None, key: str = "predict.metrics"
) -> ExpectedScore | None:
    """Return the expected scores of an evaluation: ``metrics`` if given, else the run's.

    Raises:
        ResultsError: naming the file, if ``metrics`` is given but is not an evaluation, or if a
            ``metrics.json`` of the run cannot be read or parsed.
    """
    if metrics is not None:
        path = Path(metrics)
        try:
            return ExpectedScore.from_results(load_eval_results(path), str(path))
        except ResultsError as err:
            raise ResultsError(f"{key}: {err}") from None
    found = find_evaluation(run_dir) if run_dir is not None else None
    if found is None:
        log.info("no evaluation in %s: no expected_score (evaluate the run into <run>/eval, or "
                 "set predict.metrics=<an evaluation's metrics.json>)", run_dir)  # fmt: skip
        return None
    try:
        return ExpectedScore.from_results(load_eval_results(found), str(found))
    except ResultsError as err:
        log.warning("%s: not used for expected_score: %s", found, err)
        return None
