"""The sweep report: every training run below a folder, its status, scores and evaluations.

* :mod:`~fer_multires.sweeps.files`: reading what a run directory records (YAML, overrides);
* :mod:`~fer_multires.sweeps.discovery`: finding the runs and the evaluate outputs of each;
* :mod:`~fer_multires.sweeps.jobs`: one job: settings, status, training and evaluation scores;
* :mod:`~fer_multires.sweeps.summary`: the heatmap metrics, ``jobs.csv`` and ``report.md``.

:func:`write_report` writes ``report.md``, ``jobs.csv``, ``score_heatmap.png`` and
``resolution_curves.png``, each through a temporary file and an atomic rename.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fer_multires.plots import (
    placeholder_figure,
    plot_resolution_curves,
    plot_score_grids,
    save_figure_atomic,
)
from fer_multires.results import REPORT_SPLIT
from fer_multires.sweeps.discovery import ReportError
from fer_multires.sweeps.jobs import Job, load_jobs
from fer_multires.sweeps.summary import (
    DEFAULT_LOW_RES,
    check_low_res,
    common_overrides,
    curve_bands,
    curves,
    heatmap_metrics,
    jobs_csv,
    render_markdown,
    score_grid,
    score_name,
)
from fer_multires.utils.io import write_text_atomic

OUTPUT_FILES = ("report.md", "jobs.csv", "score_heatmap.png", "resolution_curves.png")

__all__ = ["OUTPUT_FILES", "ReportError", "write_report"]


def write_report(
    root: Path,
    out: Path | None = None,
    low_res: str = DEFAULT_LOW_RES,
    eval_roots: Sequence[Path] = (),
) -> list[Job]:
    """Collect the runs under ``root`` and write the report files into ``out`` (default ``root``).

    Args:
        root: a multirun directory, a run, or a directory above runs.
        out: the folder to write ``report.md``, ``jobs.csv`` and the figures into.
        low_res: the low resolutions the heatmap shows beside native: ``16`` (one resolution),
            ``8-32`` (the mean over the evaluated 8 to 32 px) or ``native``.
        eval_roots: directories of evaluate outputs outside the runs, matched by checkpoint.

    Returns:
        The jobs, in report order.

    Raises:
        ReportError: if ``root`` is missing or holds no training run, or for a bad resolution.
    """
    low_res = check_low_res(low_res)
    root = Path(root).resolve()
    out = root if out is None else Path(out).resolve()
    jobs = load_jobs(root, [Path(p).resolve() for p in eval_roots])
    common = common_overrides(jobs)
    metrics = heatmap_metrics(jobs, low_res)
    grids = [grid for grid in (score_grid(jobs, m) for m in metrics) if grid is not None]
    heatmap = (
        plot_score_grids(grids)
        if grids
        else placeholder_figure("no job with readable data.multires settings")
    )
    lines = curves(jobs, common)
    figure = (
        plot_resolution_curves(
            lines, f"{REPORT_SPLIT} {score_name(jobs)}", curve_bands(jobs, common)
        )
        if lines
        else placeholder_figure(
            "no evaluate outputs found in the runs: no resolution curves.\n"
            "train with eval_after_fit=true, or python -m fer_multires.evaluate "
            "ckpt_path=<run dir> run_dir=<run dir>/eval"
        )
    )
    save_figure_atomic(heatmap, out / "score_heatmap.png")
    save_figure_atomic(figure, out / "resolution_curves.png")
    write_text_atomic(out / "jobs.csv", jobs_csv(jobs))
    write_text_atomic(out / "report.md", render_markdown(jobs, root, metrics, common, low_res))
    return jobs
