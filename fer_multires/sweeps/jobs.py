"""One training run as the report sees it: its overrides, status, settings and scores."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_multires.models.pretrained import describe_initial_weights, read_initial_weights
from fer_multires.results import (
    EVAL_SPLITS,
    REPORT_SPLIT,
    ResultsError,
    TrainingResults,
    load_eval_results,
)
from fer_multires.runs import (
    CONFIG_FILE,
    RUN_MARKERS,
    config_file,
    config_files,
    eval_error_message,
    hydra_file,
    last_checkpoint_path,
    read_training_results,
    run_status,
)
from fer_multires.sweeps.discovery import (
    MAX_RUN_DEPTH,
    ReportError,
    evals_of_run,
    find_runs,
    index_eval_outputs,
    natural_key,
)
from fer_multires.sweeps.files import parse_overrides, read_overrides
from fer_multires.tasks import DEFAULT_TASK, TASKS
from fer_multires.utils.io import read_yaml

#: The heatmap row and column of jobs trained without multi-resolution.
OFF = "off"
MULTIRES_KEY = "data.multires"


@dataclass
class Multires:
    """A job's ``data.multires`` settings; None where they could not be read."""

    enabled: bool | None = None
    min_res: int | None = None
    max_res: int | None = None
    p: float | None = None
    sampling: str | None = None

    def cell(self) -> tuple[str, str] | None:
        """Return the heatmap cell ``(min_res, max_res)``, ``("off", "off")``, or None."""
        if self.enabled is False:
            return (OFF, OFF)
        # Unknown `enabled` (no config, only overrides) with both bounds given: a multires job.
        if self.min_res is not None and self.max_res is not None:
            return (str(self.min_res), str(self.max_res))
        return None


@dataclass
class Job:
    """One training run, as the report sees it."""

    name: str
    run_dir: Path
    overrides: list[str]
    status: str
    multires: Multires
    scores: dict[str, float] = field(default_factory=dict)
    epochs: int | None = None
    checkpoint: str | None = None
    eval_dir: Path | None = None
    eval_count: int = 0
    eval_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    eval_error: str | None = None
    #: ``{kernel: {resolution: val_rest score}}`` for every evaluated degradation kernel.
    degradation_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``{split: {resolution: (low, high)}}``: the evaluation's interval of each score.
    eval_intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    #: The run's ``seed``, if its config records one.
    seed: int | None = None
    #: The run's config without its seed (canonical JSON): runs that share it differ only in
    #: their seed. None if the run has no readable ``config.yaml``.
    config_without_seed: str | None = None
    initial_weights: str = ""
    #: The run's task (``expr``, ``va``, ``au``, ``mtl``): which score its scores are
    #: (``results.SCORE_KEYS``).
    task: str = DEFAULT_TASK

    @property
    def status_kind(self) -> str:
        """The status without its detail, e.g. ``ok``, ``failed``, ``eval failed``."""
        return self.status.split(":", 1)[0]

    def eval_score(self, resolution: str, split: str = REPORT_SPLIT) -> float | None:
        """Return the evaluate score (the task's) of ``split`` at ``resolution``, if any."""
        return self.eval_scores.get(split, {}).get(resolution)

    def eval_interval(
        self, resolution: str, split: str = REPORT_SPLIT
    ) -> tuple[float, float] | None:
        """Return the interval of the evaluate score of ``split`` at ``resolution``, if any."""
        return self.eval_intervals.get(split, {}).get(resolution)


# --------------------------------------------------------------------------- values


def to_float(value: Any) -> float | None:
    """Return ``value`` (a number, or a CSV cell) as a finite float, or None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def integer(value: Any) -> int | None:
    """Return ``value`` if it is an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- data.multires


def multires_settings(node: Any) -> dict[str, Any]:
    """Return the settings of a ``data.multires`` value, with ``enabled`` made explicit.

    The value is null (off), a ``_target_`` node (on), or the dict of earlier releases
    (``{enabled, p, min_res, max_res, sampling}``, on unless ``enabled`` is false); anything else
    tells nothing.
    """
    if node is None:
        return {"enabled": False}
    if not isinstance(node, Mapping):
        return {}
    settings = {str(key): value for key, value in node.items()}
    settings.setdefault("enabled", True)  # a _target_ node, or a dict without `enabled`: on
    return settings


def config_multires(run_dir: Path) -> dict[str, Any]:
    """Return the ``data.multires`` settings the run's config records (``{}`` if none does).

    Read from the resolved ``config.yaml``; a job that failed before writing it falls back on
    ``.hydra/config.yaml``.
    """
    for config in config_files(run_dir):
        data = read_yaml(config)
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            node = data["data"]
            return multires_settings(node["multires"]) if "multires" in node else {}
    return {}


def override_multires(overrides: Sequence[str]) -> dict[str, Any]:
    """Return the ``data.multires`` settings the command-line overrides give, the last winning.

    ``data.multires=null`` and ``~data.multires`` turn it off, ``data.multires.<key>=VALUE`` sets
    one key (the deprecated ``data.multires.enabled=false`` included).
    """
    settings: dict[str, Any] = {}
    prefix = MULTIRES_KEY + "."
    for override in parse_overrides(overrides):
        key = override.key_or_group
        if key == MULTIRES_KEY:
            value = None if override.is_delete() else override.value()
            settings = multires_settings(value)
        elif key.startswith(prefix) and not override.is_delete():
            settings[key[len(prefix) :]] = override.value()
    return settings


def read_multires(run_dir: Path, overrides: Sequence[str]) -> Multires:
    """Return the job's ``data.multires`` settings.

    The run's config comes first; a key it does not record is taken from the overrides.
    """
    settings = override_multires(overrides) | config_multires(run_dir)
    enabled, sampling = settings.get("enabled"), settings.get("sampling")
    return Multires(
        enabled=enabled if isinstance(enabled, bool) else None,
        min_res=integer(settings.get("min_res")),
        max_res=integer(settings.get("max_res")),
        p=to_float(settings.get("p")),
        sampling=sampling if isinstance(sampling, str) else None,
    )


# --------------------------------------------------------------------------- scores


def read_csv_history(run_dir: Path) -> list[dict[str, str]]:
    """Return the rows of every ``csv/version_*/metrics.csv`` (a resumed run has several)."""
    rows: list[dict[str, str]] = []
    versions = sorted(
        (run_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: natural_key(str(p))
    )
    for path in versions:
        with path.open(newline="", encoding="utf-8") as f:
            rows.extend(csv.DictReader(f))
    return rows


def csv_scores(rows: Iterable[dict[str, str]]) -> tuple[dict[str, float], int | None]:
    """Return the scores of the best ``val_select/score`` epoch and the number of epochs trained.

    The best ``val_select/score`` is how the best checkpoint is chosen, so its row stands in for
    ``metrics.json`` when a job did not finish. Epochs trained count the epochs that logged
    ``train/loss_epoch`` (the final validation of the best checkpoint logs no training loss).
    """
    rows = list(rows)
    trained = {
        row.get("epoch") for row in rows if to_float(row.get("train/loss_epoch")) is not None
    }
    epochs = len(trained) if trained else None
    validated = [row for row in rows if to_float(row.get("val_select/score")) is not None]
    if not validated:
        return {}, epochs
    best = max(validated, key=lambda row: to_float(row["val_select/score"]) or 0.0)
    scores = {s: to_float(best.get(f"{s}/score")) for s in EVAL_SPLITS}
    return {s: v for s, v in scores.items() if v is not None}, epochs


def training_scores(results: TrainingResults) -> dict[str, float]:
    """Return ``{split: score}`` of a training run's results."""
    scores = {s: to_float(results.score(s)) for s in EVAL_SPLITS}
    return {s: v for s, v in scores.items() if v is not None}


def eval_intervals(eval_dir: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """Return ``{split: {resolution: (low, high)}}`` of an evaluate output's task scores.

    Empty for an unreadable output or one written before intervals existed.
    """
    try:
        results = load_eval_results(eval_dir)
    except ResultsError:
        return {}
    return {split: results.intervals(split) for split in results.splits}


def run_task(run_dir: Path, results: TrainingResults | None) -> str:
    """Return the run's task: its ``metrics.json``'s, else its config's ``task`` (``expr``)."""
    if results is not None:
        return results.task
    for config in config_files(run_dir):
        data = read_yaml(config)
        if isinstance(data, dict) and data.get("task") in TASKS:
            return str(data["task"])
    return DEFAULT_TASK


def seed_free_config(run_dir: Path) -> tuple[int | None, str | None]:
    """Return a run's seed and its config without it, as canonical JSON.

    Read from Hydra's copy of the composed config (``.hydra/config.yaml``, unresolved), where
    the keys that follow the seed say so (``data.seed: ${seed}``): the top-level ``seed`` and
    every ``${seed}`` are left out. Without it, from the resolved ``config.yaml``, leaving out
    every ``seed`` key holding the run's seed. The run's own directory, wherever a path holds
    it, is replaced by ``<run_dir>``. Runs of one sweep that differ only in ``seed=...`` get the
    same string.

    Returns:
        ``(seed, config)``; ``(None, None)`` without a readable config.
    """
    unresolved, resolved = hydra_file(run_dir, CONFIG_FILE), config_file(run_dir)
    source = unresolved if unresolved.is_file() else resolved
    data = read_yaml(source) if source.is_file() else None
    if not isinstance(data, dict):
        return None, None
    seed = data.get("seed")
    own = {str(v) for v in (data.get("run_dir"), run_dir) if isinstance(v, str | Path) and v}
    own |= {str(d.get("output_dir")) for d in [data.get("paths")] if isinstance(d, dict)}
    own.discard("None")

    def follows_seed(key: Any, value: Any) -> bool:
        if source == unresolved:
            return value == "${seed}"
        return key == "seed" and value == seed

    def without_seed(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {str(k): without_seed(v) for k, v in node.items() if not follows_seed(k, v)}
        if isinstance(node, list):
            return [without_seed(v) for v in node]
        if isinstance(node, str):
            for path in sorted(own, key=len, reverse=True):
                node = node.replace(path, "<run_dir>")
        return node

    top = {k: v for k, v in data.items() if k != "seed"}
    return integer(seed), json.dumps(without_seed(top), sort_keys=True, default=str)


def eval_task_scores(
    eval_dir: Path,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Return the task's scores of an evaluate output (``{}`` and ``{}`` if unreadable).

    The challenge score, ``va_score``, ``au_score`` or ``mtl_score``
    (``EvalResults.scores``).

    Returns:
        ``{split: {resolution: score}}`` of the training's degradation, and ``{kernel:
        {resolution: score}}`` of the report split for every evaluated degradation kernel.
    """
    try:
        results = load_eval_results(eval_dir)
    except ResultsError:
        return {}, {}
    scores: dict[str, dict[str, float]] = {}
    for split in results.splits:
        for resolution, value in results.scores(split).items():
            if to_float(value) is not None:
                scores.setdefault(split, {})[resolution] = value
    kernels = {
        kernel: results.scores(REPORT_SPLIT, kernel)
        for kernel in results.kernels()
        if REPORT_SPLIT in results.kernel_splits(kernel)
    }
    return scores, kernels


# --------------------------------------------------------------------------- jobs


def load_job(run_dir: Path, root: Path, external: Sequence[tuple[Path, Path]] = ()) -> Job:
    """Read everything the report shows about one training run.

    Args:
        run_dir: the run's directory.
        root: the directory the report is about (job names are relative to it).
        external: ``(evaluate output, checkpoint)`` pairs found outside the runs.
    """
    overrides = read_overrides(run_dir)
    results = read_training_results(run_dir)
    scores_from_csv, epochs = csv_scores(read_csv_history(run_dir))
    eval_error = eval_error_message(run_dir)
    last = last_checkpoint_path(run_dir)
    job = Job(
        name=run_dir.name if run_dir == root else run_dir.relative_to(root).as_posix(),
        run_dir=run_dir,
        overrides=overrides,
        status=run_status(run_dir, results, eval_error),
        multires=read_multires(run_dir, overrides),
        scores=scores_from_csv if results is None else training_scores(results),
        epochs=epochs,
        checkpoint=(str(last) if last.is_file() else None)
        if results is None
        else results.checkpoint,
        eval_error=eval_error,
        initial_weights=describe_initial_weights(read_initial_weights(run_dir)),
        task=run_task(run_dir, results),
    )
    job.seed, job.config_without_seed = seed_free_config(run_dir)
    evals = evals_of_run(run_dir, external)
    if evals:
        job.eval_dir, job.eval_count = evals[0], len(evals)
        job.eval_scores, job.degradation_scores = eval_task_scores(evals[0])
        job.eval_intervals = eval_intervals(evals[0])
    return job


def load_jobs(root: Path, eval_roots: Sequence[Path] = ()) -> list[Job]:
    """Return every training run under ``root``, with its evaluate outputs.

    Args:
        root: a run, or a directory above runs.
        eval_roots: directories holding evaluate outputs outside the runs (``--evals``).

    Raises:
        ReportError: if ``root`` is missing or holds no training run.
    """
    runs = find_runs(root)
    if not runs:
        raise ReportError(
            f"no training runs found in {root}: expected a run directory (holding "
            f"{', '.join(RUN_MARKERS)}) there or up to {MAX_RUN_DEPTH} levels below"
        )
    external = index_eval_outputs(eval_roots)
    return [load_job(run, root, external) for run in runs]
