"""What the sweep report says about its jobs: the heatmap metrics, jobs.csv and report.md."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_multires.plots import ScoreGrid
from fer_multires.results import EVAL_SPLITS, NATIVE, REPORT_SPLIT, SCORE_KEYS, SCORE_NAMES
from fer_multires.sweeps.discovery import ReportError
from fer_multires.sweeps.jobs import OFF, Job
from fer_multires.utils.tables import markdown_table, with_interval

#: Resolutions of the table's low-resolution columns (evaluate's resolution keys).
LOW_RES_KEYS = ("8", "16", "32", NATIVE)
#: The default low-resolution summary of the heatmap and the selection: the mean over 8-32 px.
DEFAULT_LOW_RES = "8-32"


#: What each task's score is, for the report's notes.
SCORE_DEFINITIONS: dict[str, str] = {
    "expr": "challenge scores (0.33 accuracy + 0.67 macro F1)",
    "va": "va_score, the mean of the CCCs of valence and arousal",
    "au": "au_score, the mean F1 over the 12 AUs (training: at 0.5; evaluations: at thresholds "
    "chosen on val_select)",
    "mtl": "mtl_score, the mean CCC + expression macro F1 + mean AU F1",
}


def job_tasks(jobs: Sequence[Job]) -> list[str]:
    """The tasks of the jobs, in :data:`~fer_multires.results.SCORE_KEYS` order."""
    present = {job.task for job in jobs}
    return [task for task in SCORE_KEYS if task in present]


def score_name(jobs: Sequence[Job]) -> str:
    """Name the jobs' score: their task's, or each job's own where tasks are mixed."""
    tasks = job_tasks(jobs)
    if len(tasks) == 1:
        return SCORE_NAMES[tasks[0]]
    return f"score of each job's task ({', '.join(tasks)}: not comparable across tasks)"


@dataclass(frozen=True)
class HeatmapMetric:
    """What a heatmap panel shows.

    Attributes:
        resolution: ``native``, ``R`` (one resolution) or ``A-B`` (the mean over the evaluated
            resolutions from A to B px); None for the training ``val_rest/score``.
        description: what the cells hold, in words.
    """

    resolution: str | None
    description: str

    def value(self, job: Job) -> float | None:
        """Return the job's value of this metric."""
        if self.resolution is None:
            return job.scores.get(REPORT_SPLIT)
        return low_res_score(job, self.resolution)


def check_low_res(spec: str) -> str:
    """Validate a resolution choice: ``native``, a number of pixels, or a range ``A-B``.

    Raises:
        ReportError: for anything else.
    """
    bounds = spec.split("-")
    if spec == NATIVE or (
        len(bounds) in (1, 2) and all(b.isdigit() and int(b) > 0 for b in bounds)
        and int(bounds[0]) <= int(bounds[-1])
    ):  # fmt: skip
        return spec
    raise ReportError(f"--low-res={spec!r}: use native, a number of pixels (16) or a range (8-32)")


def low_res_score(job: Job, spec: str) -> float | None:
    """Return the job's ``val_rest`` evaluate score at ``spec`` (a range: the mean), if any."""
    return score_at(job.eval_scores.get(REPORT_SPLIT, {}), spec)


def score_at(scores: dict[str, float], spec: str) -> float | None:
    """Return the score at ``spec`` of ``{resolution: score}`` (a range: the mean), if any."""
    if spec == NATIVE or "-" not in spec:
        return scores.get(spec)
    low, high = (int(b) for b in spec.split("-"))
    inside = [v for r, v in scores.items() if r.isdigit() and low <= int(r) <= high]
    return float(np.mean(inside)) if inside else None


def describe(spec: str) -> str:
    """Say in words which resolutions ``spec`` stands for."""
    if spec == NATIVE:
        return "native resolution"
    if "-" in spec:
        return f"the mean over the evaluated {spec} px"
    return f"{spec} px"


def choose_heatmap_metric(jobs: Sequence[Job], resolution: str) -> HeatmapMetric:
    """Use evaluate's score at ``resolution`` if every scored job has it, else training's.

    Mixing the two on one heatmap would compare different numbers, so one job without an
    evaluate output at ``resolution`` makes every cell show the training ``val_rest/score``.
    """
    scored = [job for job in jobs if job.scores]
    missing = [job.name for job in scored if low_res_score(job, resolution) is None]
    label = describe(resolution)
    if scored and not missing:
        return HeatmapMetric(
            resolution, f"{REPORT_SPLIT} {score_name(jobs)}, {label} (evaluations)"
        )
    reason = (
        f"{len(missing)} of {len(scored)} scored jobs have no evaluate score at {label}"
        if scored
        else "no job has scores"
    )
    return HeatmapMetric(
        None, f"{REPORT_SPLIT}/score of the best checkpoint from training ({reason})"
    )


def heatmap_metrics(jobs: Sequence[Job], low_res: str) -> list[HeatmapMetric]:
    """Return the panels of the heatmap: the low resolutions that matter, then native."""
    specs = [low_res, NATIVE] if low_res != NATIVE else [NATIVE]
    return [choose_heatmap_metric(jobs, spec) for spec in specs]


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


def score_grid(jobs: Sequence[Job], metric: HeatmapMetric) -> ScoreGrid | None:
    """Lay the metric out over ``(min_res, max_res)``; None if no job's settings are known."""
    cells = heatmap_cells(jobs)
    if not cells:
        return None
    rows = axis_order(r for r, _ in cells)
    cols = axis_order(c for _, c in cells)
    values = np.full((len(rows), len(cols)), np.nan)
    texts: dict[tuple[int, int], str] = {}
    for (row, col), cell_jobs in cells.items():
        i, j = rows.index(row), cols.index(col)
        values[i, j], texts[(i, j)] = cell_text(cell_jobs, metric)
    return ScoreGrid(rows, cols, values, texts, metric.description,
                     "data.multires.max_res", "data.multires.min_res")  # fmt: skip


# --------------------------------------------------------------------------- labels


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


def curves(jobs: Sequence[Job], common: Sequence[str]) -> dict[str, dict[str, float]]:
    """Return ``{legend label: {resolution: val_rest score}}``, one line per evaluated job.

    Two jobs with the same short label (e.g. from two sweeps below one folder) keep two lines:
    the second is labelled with its full job name.
    """
    return {label: job.eval_scores[REPORT_SPLIT] for label, job in curve_jobs(jobs, common).items()}


def curve_bands(
    jobs: Sequence[Job], common: Sequence[str]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Return ``{legend label: {resolution: interval}}`` of the lines of :func:`curves`."""
    return {label: job.eval_intervals.get(REPORT_SPLIT, {})
            for label, job in curve_jobs(jobs, common).items()}  # fmt: skip


def curve_jobs(jobs: Sequence[Job], common: Sequence[str]) -> dict[str, Job]:
    """Return the evaluated jobs by legend label (a repeated label: the full job name)."""
    labelled: dict[str, Job] = {}
    for job in jobs:
        if job.eval_scores.get(REPORT_SPLIT):
            label = short_label(job, common)
            labelled[job.name if label in labelled else label] = job
    return labelled


# --------------------------------------------------------------------------- jobs.csv


def fmt(value: float | None, digits: int = 4) -> str:
    """Format a score, or return an empty string for a missing one."""
    return "" if value is None else f"{value:.{digits}f}"


def low_res_column(resolution: str) -> str:
    """Return the table column name of ``val_rest`` at ``resolution``."""
    return f"{REPORT_SPLIT}_score_{resolution}"


def job_row(job: Job, group: int | None = None) -> dict[str, str]:
    """Return the job's ``jobs.csv`` row (``group``: its seed group's number, if any)."""
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
        "task": job.task,
        "seed": "" if job.seed is None else str(job.seed),
        "seed_group": "" if group is None else str(group),
    }
    row.update({f"{s}_score": fmt(job.scores.get(s)) for s in EVAL_SPLITS})
    row.update({low_res_column(r): fmt(job.eval_score(r)) for r in LOW_RES_KEYS})
    row["initial_weights"] = job.initial_weights
    row["checkpoint"] = job.checkpoint or ""
    row["eval_dir"] = str(job.eval_dir or "")
    row["run_dir"] = str(job.run_dir)
    return row


def jobs_csv(jobs: Sequence[Job]) -> str:
    """Render ``jobs.csv``."""
    groups = {id(job): i for i, group in enumerate(seed_groups(jobs), 1) for job in group}
    rows = [job_row(job, groups.get(id(job))) for job in jobs]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# --------------------------------------------------------------------------- report.md


def status_summary(jobs: Sequence[Job]) -> str:
    """Return e.g. ``5 jobs: 3 ok, 1 failed, 1 no checkpoint``."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status_kind] = counts.get(job.status_kind, 0) + 1
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}: {parts}"


def selection_lines(jobs: Sequence[Job], low_res: str) -> list[str]:
    """Name the best job on ``val_select``: one line per task (scores of two tasks differ)."""
    tasks = job_tasks(jobs)
    if len(tasks) < 2:
        return [selection_line(jobs, low_res)]
    return [f"task={task}: {selection_line([j for j in jobs if j.task == task], low_res)}"
            for task in tasks]  # fmt: skip


def selection_line(jobs: Sequence[Job], low_res: str) -> str:
    """Name the job with the best ``val_select`` score and its honest ``val_rest`` scores."""
    candidates = [job for job in jobs if job.scores.get("val_select") is not None]
    if not candidates:
        return "No job has a val_select score, so none is selected."
    best = max(candidates, key=lambda job: job.scores["val_select"])
    select, rest = fmt(best.scores.get("val_select")), fmt(best.scores.get("val_rest")) or "n/a"
    line = (
        f"Selected on val_select/score: **{best.name}** (val_select {select}); "
        f"its val_rest score, the honest estimate: **{rest}**"
    )
    native, low = best.eval_score(NATIVE), low_res_score(best, low_res)
    if native is not None and low is not None and low_res != NATIVE:
        line += f" (evaluated: {fmt(native)} at native, {fmt(low)} {describe(low_res)})"
    return line + "."


def initial_weights_lines(jobs: Sequence[Job]) -> list[str]:
    """Say where the jobs' training started from (``initial_weights.json``): once if all agree."""
    kinds = {job.initial_weights for job in jobs}
    if len(kinds) == 1:
        return [f"Initial weights (model.pretrained), all jobs: {kinds.pop()}"]
    return ["Initial weights (model.pretrained):", "",
            *(f"- {job.name}: {job.initial_weights}" for job in jobs)]  # fmt: skip


def jobs_section(jobs: Sequence[Job], common: Sequence[str]) -> list[str]:
    """Render the jobs table and its legend (a ``task`` column where tasks are mixed)."""
    mixed = len(job_tasks(jobs)) > 1
    header = ["job", "overrides", "status", *(["task"] if mixed else []), "epochs", *EVAL_SPLITS]
    header += [f"{REPORT_SPLIT} @{r}" + (" px" if r.isdigit() else "") for r in LOW_RES_KEYS]
    rows = [
        [
            job.name,
            " ".join(varying_overrides(job, common) if len(jobs) > 1 else job.overrides),
            job.status,
            *([job.task] if mixed else []),
            "" if job.epochs is None else str(job.epochs),
            *(fmt(job.scores.get(s)) for s in EVAL_SPLITS),
            *(eval_cell(job, r) for r in LOW_RES_KEYS),
        ]
        for job in jobs
    ]
    definitions = "; ".join(f"{t}: {SCORE_DEFINITIONS[t]}" for t in job_tasks(jobs))
    lines = ["## Jobs", ""]
    if common:
        lines += ["Overrides common to all jobs: " + " ".join(f"`{o}`" for o in common), ""]
    lines += markdown_table(header, rows)
    lines += ["", *initial_weights_lines(jobs)]
    lines += [
        "",
        f"Scores are {definitions if mixed else SCORE_DEFINITIONS[job_tasks(jobs)[0]]}. "
        "val_select, val_rest and "
        "val_full: the best checkpoint's, from training (`metrics.json`; for an incomplete job, "
        "the best val_select epoch in `metrics.csv`). "
        f"{REPORT_SPLIT} @R: from the job's evaluate output, images degraded to R px and scaled "
        "back; in brackets its 95% bootstrap interval over videos. Full paths and settings: "
        "`jobs.csv`.",
    ]
    return lines


def eval_cell(job: Job, resolution: str) -> str:
    """Render a job's evaluate score at ``resolution`` with its interval, if it has one."""
    score, interval = job.eval_score(resolution), job.eval_interval(resolution)
    if score is None or interval is None:
        return fmt(score)
    return with_interval(score, interval)


# --------------------------------------------------------------------------- seeds


def seed_groups(jobs: Sequence[Job]) -> list[list[Job]]:
    """Group the runs whose configs differ only in ``seed`` (groups of two seeds or more)."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        if job.config_without_seed is not None and job.seed is not None:
            groups.setdefault(job.config_without_seed, []).append(job)
    return [group for group in groups.values() if len({job.seed for job in group}) > 1]


def mean_sd(values: Sequence[float | None]) -> str:
    """Render ``mean ± standard deviation (n)`` of the values present (sample SD, n - 1)."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    if len(present) == 1:
        return f"{present[0]:.3f} (n=1)"
    return f"{np.mean(present):.3f} ± {np.std(present, ddof=1):.3f} (n={len(present)})"


def group_label(group: Sequence[Job], common: Sequence[str]) -> str:
    """Name a seed group by its overrides other than ``seed``.

    Those not every job shares; all of them where the whole report is one group.
    """

    def not_seed(overrides: Sequence[str]) -> list[str]:
        return [o for o in overrides if re.sub(r"^[+~]+", "", o).split("=", 1)[0] != "seed"]

    label = not_seed(varying_overrides(group[0], common)) or not_seed(group[0].overrides)
    return " ".join(label) or ", ".join(job.name for job in group)


def seeds_section(jobs: Sequence[Job], common: Sequence[str], low_res: str) -> list[str]:
    """Tabulate each group of runs that differ only in their seed: mean, SD and count."""
    groups = seed_groups(jobs)
    if not groups:
        return []
    low = f"{REPORT_SPLIT} @{low_res}" + (" px" if low_res != NATIVE else "")
    header = ["runs (overrides but seed)", "seeds", f"{REPORT_SPLIT} (training)",
              f"{REPORT_SPLIT} @native", low,
              f"per run: {REPORT_SPLIT} native [95% interval]"]  # fmt: skip
    rows = []
    for group in groups:
        ordered = sorted(group, key=lambda job: job.seed)
        per_run = "; ".join(f"seed {job.seed}: {eval_cell(job, NATIVE) or '-'}" for job in ordered)
        rows.append([
            group_label(ordered, common),
            ", ".join(str(job.seed) for job in ordered),
            mean_sd([job.scores.get(REPORT_SPLIT) for job in ordered]),
            mean_sd([job.eval_score(NATIVE) for job in ordered]),
            mean_sd([low_res_score(job, low_res) for job in ordered]),
            per_run,
        ])  # fmt: skip
    return [
        "## Seeds",
        "",
        "Runs whose configs differ only in `seed`, aggregated: mean ± standard deviation over "
        f"the seeds (n: the runs with that score; @{low_res}: {describe(low_res)}). The SD is "
        "the spread from training randomness; each run's own interval (last column) is the "
        "spread from the choice of validation videos. `seed_group` in `jobs.csv` names each "
        "run's group.",
        "",
        *markdown_table(header, rows),
        "",
    ]


def heatmap_section(jobs: Sequence[Job], metrics: Sequence[HeatmapMetric]) -> list[str]:
    """Describe the heatmap panels and the jobs they leave out."""
    lines = ["## Score over (min_res, max_res)", "", "![score heatmap](score_heatmap.png)", ""]
    panels = "; ".join(f"panel {i + 1}: {m.description}" for i, m in enumerate(metrics))
    lines.append(
        f"Cells ({panels}). Rows: data.multires.min_res; columns: max_res; `off`: "
        "trained without multi-resolution. A cell holding several jobs (differing in other "
        "settings) shows their mean."
    )
    left_out = [job.name for job in jobs if job.multires.cell() is None]
    if left_out:
        lines += ["", "Not on the heatmap (data.multires unreadable): " + ", ".join(left_out)]
    return lines


def degradations_section(jobs: Sequence[Job], low_res: str) -> list[str]:
    """Tabulate each job's score under every evaluated degradation (when any has several)."""
    kernels: list[str] = []
    for job in jobs:
        kernels += [k for k in job.degradation_scores if k not in kernels]
    if len(kernels) < 2:
        return []
    rows = [
        [job.name, *(fmt(score_at(job.degradation_scores.get(k, {}), low_res)) for k in kernels)]
        for job in jobs
        if job.degradation_scores
    ]
    return [
        f"## Degradations ({REPORT_SPLIT} {score_name(jobs)}, {describe(low_res)})",
        "",
        *markdown_table(["job", *kernels], rows),
        "",
        "Each column makes the low-resolution images another way (`eval.degradations`); "
        "bilinear is the training's. -: that job's evaluation did not include it.",
        "",
    ]


def relative_to(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` when it lies below it, else as it is."""
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def curves_section(jobs: Sequence[Job], root: Path) -> list[str]:
    """Describe the resolution curves, which evaluation each job used, and what is missing."""
    lines = ["## Resolution curves", "", "![resolution curves](resolution_curves.png)", ""]
    lines.append(
        f"{REPORT_SPLIT} {score_name(jobs)} against input resolution, one line per evaluated job; "
        "the square at the right is the native resolution."
    )
    evaluated = [job for job in jobs if job.eval_dir is not None]
    if evaluated:
        lines += ["", "Evaluate outputs used:"]
    for job in evaluated:
        extra = f" (newest of {job.eval_count})" if job.eval_count > 1 else ""
        lines.append(f"- {job.name}: `{relative_to(job.eval_dir, root)}`{extra}")
    failed = [job for job in jobs if job.eval_error is not None]
    if failed:
        lines += ["", "Evaluation failed (the checkpoint is kept):"]
        lines += [f"- {job.name}: {job.eval_error}" for job in failed]
    without = [
        job.name
        for job in jobs
        if job.eval_dir is None and job.eval_error is None and job.checkpoint
    ]
    if without:
        lines += [
            "",
            "Not evaluated yet: " + ", ".join(without) + ". Evaluate one with "
            "`python -m fer_multires.evaluate ckpt_path=<run dir> run_dir=<run dir>/eval` "
            "(training does it itself with eval_after_fit=true).",
        ]
    return lines


def render_markdown(
    jobs: Sequence[Job],
    root: Path,
    metrics: Sequence[HeatmapMetric],
    common: Sequence[str],
    low_res: str,
) -> str:
    """Render ``report.md``."""
    lines = [f"# Report: {root}", "", status_summary(jobs) + ".", ""]
    lines += [*selection_lines(jobs, low_res), ""]
    lines += [*jobs_section(jobs, common), ""]
    lines += seeds_section(jobs, common, low_res)
    lines += [*heatmap_section(jobs, metrics), ""]
    lines += degradations_section(jobs, low_res)
    lines += curves_section(jobs, root)
    return "\n".join(lines) + "\n"
