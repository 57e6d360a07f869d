"""Sweep report: ``python -m fer_multires.report DIR [--out OUT] [--resolution R] [--evals E]``.

Collects the training runs under ``DIR`` (a multirun directory, a directory of runs such as
``logs/demo/runs``, a single run directory, or any directory above them) and the evaluate outputs
found inside each run, and writes into ``OUT`` (default ``DIR``):

* ``jobs.csv`` and ``report.md``: one row per job with its overrides, its status (``ok``,
  ``failed: <error>``, ``incomplete: ...`` or ``no checkpoint``), its training scores on
  ``val_select``, ``val_rest`` and ``val_full``, and its ``val_rest`` challenge score at 8, 16,
  32 px and native resolution when an evaluate output exists. Jobs that failed are listed, never
  dropped.
* ``score_heatmap.png``: a score over ``(data.multires.min_res, data.multires.max_res)``; jobs
  trained without multi-resolution sit in the row and column ``off``.
* ``resolution_curves.png``: ``val_rest`` challenge score against input resolution, one line per
  evaluated job.

Every file is written through a temporary file and an atomic rename.

Discovery rules:

* A *training run* is a directory holding ``.hydra/``, ``config.yaml``, ``metrics.json``,
  ``checkpoints/`` or ``error.txt``, that is not an evaluate (or stats) output. ``DIR`` itself is
  used if it is one; otherwise runs are searched up to five levels below it, not below a run.
* An *evaluate output* of a run is any directory inside the run (up to three levels deep, outside
  ``.hydra``, ``checkpoints`` and ``csv``) holding a ``metrics.json`` of the evaluate shape
  ``{split: {resolution: {"challenge_score", ...}}}``, e.g. the one written by
  ``python -m fer_multires.evaluate ckpt_path=<run>/checkpoints/best_epochNNN.ckpt
  run_dir=<run>/eval``.
* ``--evals EVAL_ROOT`` (repeatable) also attaches the evaluate outputs found up to five levels
  below ``EVAL_ROOT`` (e.g. ``logs/eval``, where ``evaluate`` writes by default) to the run whose
  directory holds the checkpoint they evaluated (``ckpt_path`` in the output's ``metrics.json``,
  ``config.yaml``, ``.hydra/config.yaml`` or ``.hydra/overrides.yaml``; a relative path is taken
  from the directory evaluate ran in, Hydra's ``runtime.cwd``).
* When a run has several evaluate outputs, the one with the newest ``metrics.json`` is used.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from fer_multires.plots import new_figure, save_figure_atomic
from fer_multires.utils.io import write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SPLITS = ("val_select", "val_rest", "val_full")
#: The split whose evaluate scores the table, heatmap and curves show: the honest estimate.
REPORT_SPLIT = "val_rest"
#: Resolutions of the table's low-resolution columns (evaluate's resolution keys).
LOW_RES_KEYS = ("8", "16", "32", "native")
RUN_MARKERS = (".hydra", "config.yaml", "metrics.json", "checkpoints", "error.txt")
#: Hydra job names of entry points whose output directories are not training runs.
NON_TRAINING_JOBS = frozenset({"evaluate", "stats"})
MAX_RUN_DEPTH = 5
MAX_EVAL_DEPTH = 3
EVAL_SKIP_DIRS = frozenset({".hydra", "checkpoints", "csv"})
OUTPUT_FILES = ("report.md", "jobs.csv", "score_heatmap.png", "resolution_curves.png")
OFF = "off"


class ReportError(Exception):
    """A user-facing error: a missing directory, no runs, an invalid option."""


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

    @property
    def status_kind(self) -> str:
        """The status without its detail: ``ok``, ``failed``, ``incomplete``, ``no checkpoint``."""
        return self.status.split(":", 1)[0]

    def eval_score(self, resolution: str, split: str = REPORT_SPLIT) -> float | None:
        """Return the evaluate challenge score of ``split`` at ``resolution``, if any."""
        return self.eval_scores.get(split, {}).get(resolution)


# --------------------------------------------------------------------------- reading files


def read_yaml(path: Path) -> Any:
    """Return the parsed YAML file, or None when it is missing or unreadable."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def read_json(path: Path) -> Any:
    """Return the parsed JSON file, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_eval_metrics(data: Any) -> bool:
    """Tell whether parsed JSON has the evaluate shape ``{split: {resolution: {...}}}``."""
    if not isinstance(data, dict):
        return False
    per_split = [data[s] for s in SPLITS if isinstance(data.get(s), dict)]
    return bool(per_split) and all(
        isinstance(entry, dict) and "challenge_score" in entry
        for split in per_split
        for entry in split.values()
    )


def hydra_setting(run_dir: Path, *keys: str) -> str | None:
    """Return a setting of the directory's ``.hydra/hydra.yaml`` (e.g. ``job``, ``name``)."""
    data = read_yaml(run_dir / ".hydra" / "hydra.yaml")
    try:
        for key in ("hydra", *keys):
            data = data[key]
    except (TypeError, KeyError):
        return None
    return None if data is None else str(data)


def hydra_job_name(run_dir: Path) -> str | None:
    """Return ``hydra.job.name`` from the directory's ``.hydra/hydra.yaml``, if present."""
    return hydra_setting(run_dir, "job", "name")


# --------------------------------------------------------------------------- discovery


def is_training_run(path: Path) -> bool:
    """Tell whether ``path`` is a training run directory (see the module docstring)."""
    if not path.is_dir() or not any((path / marker).exists() for marker in RUN_MARKERS):
        return False
    if hydra_job_name(path) in NON_TRAINING_JOBS:
        return False
    return not is_eval_metrics(read_json(path / "metrics.json"))


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``2_x`` before ``10_x``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def subdirectories(path: Path) -> list[Path]:
    """Return the non-hidden subdirectories of ``path`` in natural order."""
    children = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(children, key=lambda p: natural_key(p.name))


def find_runs(root: Path, max_depth: int = MAX_RUN_DEPTH) -> list[Path]:
    """Return ``root`` if it is a training run, else the runs up to ``max_depth`` levels below.

    Raises:
        ReportError: if ``root`` is not a directory.
    """
    if not root.is_dir():
        raise ReportError(f"no such directory: {root}")
    if is_training_run(root):
        return [root]
    runs: list[Path] = []
    if max_depth > 0:
        for child in subdirectories(root):
            if is_training_run(child):
                runs.append(child)
            else:
                runs.extend(find_runs(child, max_depth - 1))
    return runs


def find_eval_outputs(path: Path, max_depth: int = MAX_EVAL_DEPTH) -> list[Path]:
    """Return the evaluate output directories at or below ``path``, newest first.

    ``path`` itself counts when its ``metrics.json`` has the evaluate shape; below it, the
    ``.hydra``, ``checkpoints`` and ``csv`` folders and hidden folders are skipped.
    """
    found = [path] if is_eval_metrics(read_json(path / "metrics.json")) else []
    if max_depth > 0 and path.is_dir():
        for child in subdirectories(path):
            if child.name not in EVAL_SKIP_DIRS:
                found.extend(find_eval_outputs(child, max_depth - 1))
    return sorted(found, key=lambda p: (p / "metrics.json").stat().st_mtime, reverse=True)


def eval_checkpoint(eval_dir: Path) -> Path | None:
    """Return the checkpoint an evaluate output evaluated (absolute), if it records one."""
    metrics = read_json(eval_dir / "metrics.json") or {}
    candidates = [metrics.get("checkpoint"), metrics.get("ckpt_path")]
    for config in (eval_dir / "config.yaml", eval_dir / ".hydra" / "config.yaml"):
        data = read_yaml(config)
        candidates.append(data.get("ckpt_path") if isinstance(data, dict) else None)
    overrides = read_yaml(eval_dir / ".hydra" / "overrides.yaml")
    for override in overrides if isinstance(overrides, list) else []:
        key, _, value = str(override).lstrip("+").partition("=")
        candidates.append(value if key == "ckpt_path" else None)
    found = next((c for c in candidates if isinstance(c, str) and c and "${" not in c), None)
    if found is None:
        return None
    path = Path(found).expanduser()
    if not path.is_absolute():
        path = Path(hydra_setting(eval_dir, "runtime", "cwd") or Path.cwd()) / path
    return path.resolve()


def index_eval_outputs(roots: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Return ``(evaluate output, its checkpoint)`` for the outputs below ``roots``.

    Raises:
        ReportError: if a root is not a directory.
    """
    index = []
    for root in roots:
        if not root.is_dir():
            raise ReportError(f"--evals: no such directory: {root}")
        for eval_dir in find_eval_outputs(root, max_depth=MAX_RUN_DEPTH):
            checkpoint = eval_checkpoint(eval_dir)
            if checkpoint is not None:
                index.append((eval_dir.resolve(), checkpoint))
    return index


def evals_of_run(run_dir: Path, external: Sequence[tuple[Path, Path]]) -> list[Path]:
    """Return the run's evaluate outputs, inside it or in ``external``, newest first."""
    run = run_dir.resolve()
    inside = [p.resolve() for p in find_eval_outputs(run_dir)]
    matched = [d for d, ckpt in external if ckpt.is_relative_to(run) and d not in inside]
    found = inside + matched
    return sorted(found, key=lambda p: (p / "metrics.json").stat().st_mtime, reverse=True)


# --------------------------------------------------------------------------- one job


def read_overrides(run_dir: Path) -> list[str]:
    """Return the job's command-line overrides (``.hydra/overrides.yaml``, else ``error.txt``)."""
    data = read_yaml(run_dir / ".hydra" / "overrides.yaml")
    if isinstance(data, list):
        return [str(item) for item in data]
    lines = read_lines(run_dir / "error.txt")
    return lines[0].split() if lines else []


def read_lines(path: Path) -> list[str]:
    """Return the file's lines, or ``[]`` when it is missing."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def error_message(run_dir: Path) -> str:
    """Return the first line of the error in ``error.txt`` (its first line is the overrides)."""
    lines = read_lines(run_dir / "error.txt")
    message = next((line.strip() for line in lines[1:] if line.strip()), "")
    message = message or (lines[0].strip() if lines else "") or "error.txt is empty"
    return message if len(message) <= 200 else message[:197] + "..."


def as_int(value: Any) -> int | None:
    """Return ``value`` as an int when it is one (not a bool, not an interpolation string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def as_float(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_bool(value: Any) -> bool | None:
    """Return ``value`` as a bool (YAML ``true``/``false`` or their strings), or None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def read_multires(run_dir: Path, overrides: Sequence[str]) -> Multires:
    """Return the job's ``data.multires`` settings.

    Read from the resolved ``config.yaml``; a job that failed before writing it falls back on
    ``.hydra/config.yaml``, and a key missing from both on the command-line overrides.
    """
    settings: dict[str, Any] = {}
    for config in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        data = read_yaml(config)
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            settings = dict(data["data"].get("multires") or {})
            break
    prefix = "data.multires."
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.startswith(prefix) and key[len(prefix) :] not in settings:
            settings[key[len(prefix) :]] = value  # a string; as_int/as_bool/as_float parse it
    return Multires(
        enabled=as_bool(settings.get("enabled")),
        min_res=as_int(settings.get("min_res")),
        max_res=as_int(settings.get("max_res")),
        p=as_float(settings.get("p")),
        sampling=settings.get("sampling") if isinstance(settings.get("sampling"), str) else None,
    )


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
        row.get("epoch") for row in rows if as_float(row.get("train/loss_epoch")) is not None
    }
    epochs = len(trained) if trained else None
    validated = [row for row in rows if as_float(row.get("val_select/score")) is not None]
    if not validated:
        return {}, epochs
    best = max(validated, key=lambda row: as_float(row["val_select/score"]) or 0.0)
    scores = {s: as_float(best.get(f"{s}/score")) for s in SPLITS}
    return {s: v for s, v in scores.items() if v is not None}, epochs


def training_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """Return ``{split: score}`` from a training ``metrics.json``."""
    values = metrics.get("metrics") if isinstance(metrics.get("metrics"), dict) else {}
    scores = {s: as_float(values.get(f"{s}/score")) for s in SPLITS}
    return {s: v for s, v in scores.items() if v is not None}


def checkpoint_files(run_dir: Path) -> list[Path]:
    """Return the job's checkpoint files."""
    return sorted((run_dir / "checkpoints").glob("*.ckpt"))


def job_status(run_dir: Path, metrics: Any) -> str:
    """Return ``failed: <error>``, ``ok``, ``incomplete: ...`` or ``no checkpoint``."""
    if (run_dir / "error.txt").is_file():
        return f"failed: {error_message(run_dir)}"
    if isinstance(metrics, dict) and "metrics" in metrics:
        return "ok" if checkpoint_files(run_dir) else "ok (no checkpoint saved)"
    if checkpoint_files(run_dir):
        return "incomplete: checkpoints but no metrics.json (still running, or killed)"
    return "no checkpoint"


def eval_challenge_scores(eval_dir: Path) -> dict[str, dict[str, float]]:
    """Return ``{split: {resolution: challenge score}}`` from an evaluate output."""
    data = read_json(eval_dir / "metrics.json") or {}
    scores: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        for resolution, entry in (data.get(split) or {}).items():
            value = as_float(entry.get("challenge_score"))
            if value is not None:
                scores.setdefault(split, {})[str(resolution)] = value
    return scores


def load_job(run_dir: Path, root: Path, external: Sequence[tuple[Path, Path]] = ()) -> Job:
    """Read everything the report shows about one training run.

    Args:
        run_dir: the run's directory.
        root: the directory the report is about (job names are relative to it).
        external: ``(evaluate output, checkpoint)`` pairs found outside the runs.
    """
    overrides = read_overrides(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    history = read_csv_history(run_dir)
    scores_from_csv, epochs = csv_scores(history)
    finished = isinstance(metrics, dict) and "metrics" in metrics
    last = run_dir / "checkpoints" / "last.ckpt"
    job = Job(
        name=run_dir.name if run_dir == root else run_dir.relative_to(root).as_posix(),
        run_dir=run_dir,
        overrides=overrides,
        status=job_status(run_dir, metrics),
        multires=read_multires(run_dir, overrides),
        scores=training_scores(metrics) if finished else scores_from_csv,
        epochs=epochs,
        checkpoint=metrics.get("checkpoint")
        if finished
        else (str(last) if last.is_file() else None),
    )
    evals = evals_of_run(run_dir, external)
    if evals:
        job.eval_dir, job.eval_count = evals[0], len(evals)
        job.eval_scores = eval_challenge_scores(evals[0])
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


# --------------------------------------------------------------------------- tables


def common_overrides(jobs: Sequence[Job]) -> list[str]:
    """Return the overrides every job shares (none when there is a single job)."""
    lists = [job.overrides for job in jobs if job.overrides]
    if len(jobs) < 2 or len(lists) < len(jobs):
        return []
    shared = set.intersection(*(set(overrides) for overrides in lists))
    return [o for o in lists[0] if o in shared]


def varying_overrides(job: Job, common: Sequence[str]) -> list[str]:
    """Return the job's overrides that not every job shares."""
    return [o for o in job.overrides if o not in common]


def short_label(job: Job, common: Sequence[str]) -> str:
    """Return a legend label: the job number and its varying overrides with short keys."""
    number = re.match(r"(\d+)_", job.run_dir.name)
    parts = [re.sub(r"^[+~]?(?:[\w-]+\.)*", "", o) for o in varying_overrides(job, common)]
    label = " ".join(parts) if parts else job.name
    label = f"#{number.group(1)} {label}" if number and parts else label
    return label if len(label) <= 60 else label[:57] + "..."


def fmt(value: float | None, digits: int = 4) -> str:
    """Format a score, or return an empty string for a missing one."""
    return "" if value is None else f"{value:.{digits}f}"


def low_res_column(resolution: str) -> str:
    """Return the table column name of ``val_rest`` at ``resolution``."""
    return f"{REPORT_SPLIT}_score_{resolution}"


def job_row(job: Job) -> dict[str, str]:
    """Return the job's ``jobs.csv`` row."""
    m = job.multires
    row = {
        "job": job.name,
        "status": job.status,
        "overrides": " ".join(job.overrides),
        "multires": "" if m.enabled is None else ("on" if m.enabled else OFF),
        "min_res": "" if m.min_res is None else str(m.min_res),
        "max_res": "" if m.max_res is None else str(m.max_res),
        "p": "" if m.p is None else f"{m.p:g}",
        "sampling": m.sampling or "",
        "epochs": "" if job.epochs is None else str(job.epochs),
    }
    row.update({f"{s}_score": fmt(job.scores.get(s)) for s in SPLITS})
    row.update({low_res_column(r): fmt(job.eval_score(r)) for r in LOW_RES_KEYS})
    row["checkpoint"] = job.checkpoint or ""
    row["eval_dir"] = str(job.eval_dir or "")
    row["run_dir"] = str(job.run_dir)
    return row


def jobs_csv(jobs: Sequence[Job]) -> str:
    """Render ``jobs.csv``."""
    rows = [job_row(job) for job in jobs]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# --------------------------------------------------------------------------- figures


def placeholder_figure(message: str) -> Figure:
    """Return a small figure that says why there is nothing to plot."""
    figure = new_figure(6, 2)
    figure.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return figure


@dataclass
class HeatmapMetric:
    """What the heatmap shows: its resolution key (None: training score) and a description."""

    resolution: str | None
    description: str

    def value(self, job: Job) -> float | None:
        """Return the job's value of this metric."""
        if self.resolution is None:
            return job.scores.get(REPORT_SPLIT)
        return job.eval_score(self.resolution)


def choose_heatmap_metric(jobs: Sequence[Job], resolution: str) -> HeatmapMetric:
    """Use evaluate's score at ``resolution`` if every scored job has it, else training's.

    Mixing the two on one heatmap would compare different numbers, so one job without an
    evaluate output at ``resolution`` makes every cell show the training ``val_rest/score``.
    """
    scored = [job for job in jobs if job.scores]
    missing = [job.name for job in scored if job.eval_score(resolution) is None]
    label = "native resolution" if resolution == "native" else f"{resolution} px"
    if scored and not missing:
        return HeatmapMetric(
            resolution, f"{REPORT_SPLIT} challenge score at {label} (evaluate outputs)"
        )
    reason = (
        f"{len(missing)} of {len(scored)} scored jobs have no evaluate score at {label}"
        if scored
        else "no job has scores"
    )
    return HeatmapMetric(
        None, f"{REPORT_SPLIT}/score of the best checkpoint from training ({reason})"
    )


def axis_order(values: Iterable[str]) -> list[str]:
    """Order heatmap labels: ``off`` first, then resolutions ascending."""
    return sorted(set(values), key=lambda v: (v != OFF, int(v) if v.isdigit() else 0, v))


def heatmap_cells(jobs: Sequence[Job]) -> dict[tuple[str, str], list[Job]]:
    """Group the jobs whose multi-resolution settings are known by heatmap cell."""
    cells: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        cell = job.multires.cell()
        if cell is not None:
            cells.setdefault(cell, []).append(job)
    return cells


def cell_text(cell_jobs: Sequence[Job], metric: HeatmapMetric) -> tuple[float, str]:
    """Return a cell's value (mean of its jobs' scores, NaN if none) and its annotation."""
    values = [v for v in (metric.value(job) for job in cell_jobs) if v is not None]
    unscored = len(cell_jobs) - len(values)
    if not values:
        kinds = sorted({job.status_kind for job in cell_jobs})
        return math.nan, "\n".join(kinds)
    mean = float(np.mean(values))
    lines = [f"{mean:.3f}"]
    if len(values) > 1:
        lines.append(f"mean of {len(values)}")
    if unscored:
        lines.append(f"+{unscored} without score")
    return mean, "\n".join(lines)


def plot_heatmap(jobs: Sequence[Job], metric: HeatmapMetric) -> Figure:
    """Draw the metric over ``(min_res, max_res)``; cells without a score are grey."""
    import matplotlib

    cells = heatmap_cells(jobs)
    if not cells:
        return placeholder_figure("no job with readable data.multires settings")
    rows = axis_order(r for r, _ in cells)
    cols = axis_order(c for _, c in cells)
    grid = np.full((len(rows), len(cols)), np.nan)
    texts: dict[tuple[int, int], str] = {}
    for (row, col), cell_jobs in cells.items():
        i, j = rows.index(row), cols.index(col)
        grid[i, j], texts[(i, j)] = cell_text(cell_jobs, metric)
    width = 1.2 * len(cols) + 2.8
    figure = new_figure(width, 0.75 * len(rows) + 1.8)
    ax = figure.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.88")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    for (i, j), text in texts.items():
        dark = np.isfinite(grid[i, j]) and image.norm(grid[i, j]) < 0.6
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if dark else "k")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("data.multires.max_res")
    ax.set_ylabel("data.multires.min_res")
    ax.set_title(textwrap.fill(metric.description, width=int(11 * width)), fontsize=9)
    if np.isfinite(grid).any():
        figure.colorbar(image, ax=ax, label="challenge score")
    return figure


def resolution_points(scores: dict[str, float]) -> tuple[list[int], list[float], float | None]:
    """Split ``{resolution: score}`` into sorted pixel resolutions, their scores, and native."""
    numeric = sorted((int(r), v) for r, v in scores.items() if r.isdigit())
    return [r for r, _ in numeric], [v for _, v in numeric], scores.get("native")


def plot_resolution_curves(jobs: Sequence[Job], common: Sequence[str]) -> Figure:
    """Draw ``val_rest`` challenge score against resolution, one line per evaluated job."""
    evaluated = [job for job in jobs if job.eval_scores.get(REPORT_SPLIT)]
    if not evaluated:
        return placeholder_figure(
            "no evaluate outputs found in the runs: no resolution curves.\n"
            "python -m fer_multires.evaluate ckpt_path=<ckpt> run_dir=<run dir>/eval"
        )
    all_res = [int(r) for job in evaluated for r in job.eval_scores[REPORT_SPLIT] if r.isdigit()]
    native_x = 2.0 * max(all_res, default=1)
    figure = new_figure(8.5 if len(evaluated) > 6 else 7, 4.5)
    ax = figure.add_subplot()
    for job in evaluated:
        xs, ys, native = resolution_points(job.eval_scores[REPORT_SPLIT])
        (line,) = ax.plot(xs, ys, marker="o", label=short_label(job, common))
        if native is not None:
            ax.plot([native_x], [native], marker="s", color=line.get_color(), linestyle="none")
    ticks = sorted(set(all_res))
    ax.set_xscale("log", base=2)
    ax.set_xticks([*ticks, native_x], [*map(str, ticks), "native"])
    ax.minorticks_off()
    if ticks:
        ax.axvline(math.sqrt(ticks[-1] * native_x), color="0.7", linestyle=":")
    ax.set_xlabel("input resolution (px; degraded and scaled back)")
    ax.set_ylabel(f"{REPORT_SPLIT} challenge score")
    ax.grid(alpha=0.3)
    outside = len(evaluated) > 6
    ax.legend(
        fontsize=7,
        loc="upper left" if outside else "lower right",
        bbox_to_anchor=(1.01, 1.0) if outside else None,
    )
    return figure


# --------------------------------------------------------------------------- markdown


def md_cell(text: str) -> str:
    """Escape text for a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ") or "-"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Render a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines


def status_summary(jobs: Sequence[Job]) -> str:
    """Return e.g. ``5 jobs: 3 ok, 1 failed, 1 no checkpoint``."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status_kind] = counts.get(job.status_kind, 0) + 1
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}: {parts}"


def selection_line(jobs: Sequence[Job]) -> str:
    """Name the job with the best ``val_select`` score and its honest ``val_rest`` score."""
    candidates = [job for job in jobs if job.scores.get("val_select") is not None]
    if not candidates:
        return "No job has a val_select score, so none is selected."
    best = max(candidates, key=lambda job: job.scores["val_select"])
    select, rest = fmt(best.scores.get("val_select")), fmt(best.scores.get("val_rest")) or "n/a"
    return (
        f"Selected on val_select/score: **{best.name}** (val_select {select}); "
        f"its val_rest score, the honest estimate: **{rest}**."
    )


def jobs_section(jobs: Sequence[Job], common: Sequence[str]) -> list[str]:
    """Render the jobs table and its legend."""
    header = ["job", "overrides", "status", "epochs", *SPLITS]
    header += [f"{REPORT_SPLIT} @{r}" + (" px" if r.isdigit() else "") for r in LOW_RES_KEYS]
    rows = [
        [
            job.name,
            " ".join(varying_overrides(job, common) if len(jobs) > 1 else job.overrides),
            job.status,
            "" if job.epochs is None else str(job.epochs),
            *(fmt(job.scores.get(s)) for s in SPLITS),
            *(fmt(job.eval_score(r)) for r in LOW_RES_KEYS),
        ]
        for job in jobs
    ]
    lines = ["## Jobs", ""]
    if common:
        lines += ["Overrides common to all jobs: " + " ".join(f"`{o}`" for o in common), ""]
    lines += md_table(header, rows)
    lines += [
        "",
        "Scores are challenge scores (0.33 accuracy + 0.67 macro F1). val_select, val_rest and "
        "val_full: the best checkpoint's, from training (`metrics.json`; for an incomplete job, "
        "the best val_select epoch in `metrics.csv`). "
        f"{REPORT_SPLIT} @R: from the job's evaluate output, images degraded to R px and scaled "
        "back. Full paths and settings: `jobs.csv`.",
    ]
    return lines


def heatmap_section(jobs: Sequence[Job], metric: HeatmapMetric) -> list[str]:
    """Describe the heatmap and the jobs it leaves out."""
    lines = ["## Score over (min_res, max_res)", "", "![score heatmap](score_heatmap.png)", ""]
    lines.append(
        f"Cells: {metric.description}. Rows: data.multires.min_res; columns: max_res; `off`: "
        "trained without multi-resolution. A cell holding several jobs (differing in other "
        "settings) shows their mean."
    )
    left_out = [job.name for job in jobs if job.multires.cell() is None]
    if left_out:
        lines += ["", "Not on the heatmap (data.multires unreadable): " + ", ".join(left_out)]
    return lines


def curves_section(jobs: Sequence[Job], root: Path) -> list[str]:
    """Describe the resolution curves and which evaluate output each job used."""
    lines = ["## Resolution curves", "", "![resolution curves](resolution_curves.png)", ""]
    evaluated = [job for job in jobs if job.eval_dir is not None]
    lines.append(
        f"{REPORT_SPLIT} challenge score against input resolution, one line per evaluated job; "
        "the square at the right is the native resolution."
    )
    if evaluated:
        lines += ["", "Evaluate outputs used:"]
    for job in evaluated:
        where = relative_to(job.eval_dir, root)
        extra = f" (newest of {job.eval_count})" if job.eval_count > 1 else ""
        lines.append(f"- {job.name}: `{where}`{extra}")
    without = [job.name for job in jobs if job.eval_dir is None and job.checkpoint]
    if without:
        lines += [
            "",
            "Not evaluated yet: " + ", ".join(without) + ". Evaluate one with "
            "`python -m fer_multires.evaluate ckpt_path=<run dir>/checkpoints/best_epochNNN.ckpt "
            "run_dir=<run dir>/eval`.",
        ]
    return lines


def relative_to(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` when it lies below it, else as it is."""
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def render_markdown(
    jobs: Sequence[Job], root: Path, metric: HeatmapMetric, common: Sequence[str]
) -> str:
    """Render ``report.md``."""
    lines = [f"# Report: {root}", "", status_summary(jobs) + ".", "", selection_line(jobs), ""]
    lines += [*jobs_section(jobs, common), ""]
    lines += [*heatmap_section(jobs, metric), ""]
    lines += curves_section(jobs, root)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- entry point


def check_resolution(resolution: str) -> str:
    """Validate a resolution key: ``native`` or a positive number of pixels.

    Raises:
        ReportError: for anything else.
    """
    if resolution == "native" or (resolution.isdigit() and int(resolution) > 0):
        return resolution
    raise ReportError(f"--resolution={resolution!r}: use native or a number of pixels, e.g. 16")


def require_matplotlib() -> None:
    """Check that matplotlib, an optional dependency, is installed.

    Raises:
        ReportError: naming the extra that installs it.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ReportError("the report's figures need matplotlib: pip install matplotlib") from err


def write_report(
    root: Path,
    out: Path | None = None,
    resolution: str = "native",
    eval_roots: Sequence[Path] = (),
) -> list[Job]:
    """Collect the runs under ``root`` and write the report files into ``out`` (default ``root``).

    Args:
        root: a multirun directory, a run, or a directory above runs.
        out: the folder to write ``report.md``, ``jobs.csv`` and the figures into.
        resolution: the evaluate resolution key the heatmap shows (``native``, ``16``, ...).
        eval_roots: directories of evaluate outputs outside the runs, matched by checkpoint.

    Returns:
        The jobs, in report order.

    Raises:
        ReportError: if ``root`` is missing or holds no training run, or for a bad resolution.
    """
    resolution = check_resolution(resolution)
    root = Path(root).resolve()
    out = root if out is None else Path(out).resolve()
    jobs = load_jobs(root, [Path(p).resolve() for p in eval_roots])
    require_matplotlib()
    common = common_overrides(jobs)
    metric = choose_heatmap_metric(jobs, resolution)
    heatmap = plot_heatmap(jobs, metric)
    curves = plot_resolution_curves(jobs, common)
    save_figure_atomic(heatmap, out / "score_heatmap.png")
    save_figure_atomic(curves, out / "resolution_curves.png")
    write_text_atomic(out / "jobs.csv", jobs_csv(jobs))
    write_text_atomic(out / "report.md", render_markdown(jobs, root, metric, common))
    return jobs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m fer_multires.report",
        description="Summarise a sweep (or runs) into report.md, jobs.csv and two figures.",
    )
    parser.add_argument("dir", type=Path, help="a multirun directory, a run, or a folder of runs")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: DIR)")
    parser.add_argument(
        "--resolution",
        default="native",
        help="evaluate resolution the heatmap shows when every job is evaluated (default: native)",
    )
    parser.add_argument(
        "--evals",
        type=Path,
        action="append",
        default=[],
        metavar="EVAL_ROOT",
        help="also use the evaluate outputs below EVAL_ROOT (e.g. logs/eval), matched to runs "
        "by their checkpoint path; repeatable",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        jobs = write_report(args.dir, args.out, args.resolution, args.evals)
    except ReportError as err:
        print(f"report: error: {err}", file=sys.stderr)
        return 1
    out = (args.out or args.dir).resolve()
    print(f"{status_summary(jobs)}\nwrote {', '.join(OUTPUT_FILES)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
