"""Sweep report: ``python -m fer_multires.report DIR [--out OUT] [--low-res R] [--evals E]``.

Collects the training runs under ``DIR`` (a multirun directory, a directory of runs such as
``logs/demo/runs``, a single run directory, or any directory above them) and the evaluations
found inside each run (``<run>/eval``, written by training with ``eval_after_fit=true``), and
writes into ``OUT`` (default ``DIR``):

* ``jobs.csv`` and ``report.md``: one row per job with its overrides, its status (``ok``,
  ``failed: <error>``, ``eval failed: <error>``, ``incomplete: ...`` or ``no checkpoint``), its
  training scores on ``val_select``, ``val_rest`` and ``val_full``, and its ``val_rest`` challenge
  score at 8, 16, 32 px and native resolution; the job chosen on ``val_select``, reported on
  ``val_rest``. Jobs that failed are listed, never dropped.
* ``score_heatmap.png``: the ``val_rest`` score over ``(data.multires.min_res, max_res)`` at the
  low resolutions that matter (``--low-res``: ``8-32``, the mean over 8-32 px, by default; or one
  resolution such as ``16``) beside the native one; jobs trained without multi-resolution sit in
  the row and column ``off``.
* ``resolution_curves.png``: ``val_rest`` challenge score against input resolution, one line per
  evaluated job.

The discovery rules are in :mod:`fer_multires.sweeps.discovery`; ``--evals EVAL_ROOT``
(repeatable) also attaches evaluate outputs found below ``EVAL_ROOT`` (e.g. ``logs/eval``) to the
run whose directory holds the checkpoint they evaluated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fer_multires.sweeps import OUTPUT_FILES, ReportError, write_report
from fer_multires.sweeps.summary import DEFAULT_LOW_RES, status_summary

__all__ = ["ReportError", "main", "write_report"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m fer_multires.report",
        description="Summarise a sweep (or runs) into report.md, jobs.csv and two figures.",
    )
    parser.add_argument("dir", type=Path, help="a multirun directory, a run, or a folder of runs")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: DIR)")
    parser.add_argument(
        "--low-res",
        "--resolution",
        dest="low_res",
        default=DEFAULT_LOW_RES,
        help="the low resolutions the heatmap shows beside native: a range such as 8-32 (the "
        "mean over the evaluated resolutions in it), one resolution such as 16, or native "
        f"(default: {DEFAULT_LOW_RES})",
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
        jobs = write_report(args.dir, args.out, args.low_res, args.evals)
    except ReportError as err:
        print(f"report: error: {err}", file=sys.stderr)
        return 1
    out = (args.out or args.dir).resolve()
    print(f"{status_summary(jobs)}\nwrote {', '.join(OUTPUT_FILES)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
