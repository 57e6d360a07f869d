"""The outcome of a training sweep: a multirun in which every job failed does not exit 0.

A failing sweep job is recorded in its directory (``error.txt``) and the sweep goes on with the
next job (:func:`fer_multires.train.run_sweep_job`), so that one bad point does not cost the
others. When the multirun ends, :class:`SweepOutcome` (a Hydra callback, ``conf/train.yaml``)
reads every job's status (:func:`fer_multires.runs.run_status`): if every job failed, it logs the
count and where the errors are and exits with :data:`EXIT_SWEEP_FAILED` (Hydra turns an
exception in a callback into a warning, so the callback exits itself); if some failed, it logs
which.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fer_multires.runs import error_file, read_training_results, run_status
from fer_multires.sweeps.discovery import find_runs

log = logging.getLogger(__name__)


#: The exit status of a multirun in which every job failed.
EXIT_SWEEP_FAILED = 1


def failed_jobs(sweep_dir: Path) -> tuple[list[Path], int]:
    """Return the failed jobs of a sweep directory, and how many jobs it holds."""
    jobs = find_runs(sweep_dir) if sweep_dir.is_dir() else []
    statuses = {job: run_status(job, read_training_results(job), None) for job in jobs}
    failed = [job for job, status in statuses.items() if status.startswith("failed")]
    return failed, len(jobs)


class SweepOutcome(Callback):
    """Check, when a multirun ends, that not every job failed (see the module's docstring)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Exit non-zero if every job of the sweep failed, saying where their errors are.

        Raises:
            SystemExit: with :data:`EXIT_SWEEP_FAILED`, if every job failed.
        """
        sweep_dir = Path(str(config.hydra.sweep.dir))
        failed, total = failed_jobs(sweep_dir)
        if total and len(failed) == total:
            log.error("every job of the sweep failed (%d of %d): each one's error is in its %s, "
                      "e.g. %s; python -m fer_multires.report %s lists them", total, total,
                      error_file(failed[0]).name, error_file(failed[0]), sweep_dir)  # fmt: skip
            sys.exit(EXIT_SWEEP_FAILED)
        if failed:
            log.warning("%d of %d sweep jobs failed: %s", len(failed), total,
                        ", ".join(job.name for job in failed))  # fmt: skip
