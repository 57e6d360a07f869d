"""Slurm: which job this is, whether it was requeued, the run to resume, and requeueing.

The run directory of a training started by ``sbatch`` is a function of the job
(``conf/train.yaml``: ``runs/<SLURM_JOB_ID>``; a sweep point's directory is its Hydra job
directory, fixed when the sweep was submitted), so a requeued or restarted job finds the first
attempt's ``last.ckpt`` and resumes from it (:func:`auto_resume_checkpoint`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from fer_multires.runs import last_checkpoint_path

log = logging.getLogger(__name__)


def job_id(env: Mapping[str, str] | None = None) -> str | None:
    """Return this Slurm job's id (``<array job>_<task>`` for an array task), or None."""
    env = os.environ if env is None else env
    array_job, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return env.get("SLURM_JOB_ID") or None


def in_slurm_job(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs inside a Slurm job (batch script, srun task or allocation)."""
    return job_id(env) is not None


def restart_count(env: Mapping[str, str] | None = None) -> int:
    """How many times Slurm requeued or restarted this job (``SLURM_RESTART_COUNT``)."""
    env = os.environ if env is None else env
    try:
        return int(env.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def auto_resume_checkpoint(run_dir: Path, env: Mapping[str, str] | None = None) -> Path | None:
    """Return the ``last.ckpt`` a Slurm job's earlier attempt left in ``run_dir``, or None.

    Outside Slurm this is None: a run resumes only when asked (``ckpt_path=last``).
    """
    if not in_slurm_job(env):
        return None
    path = last_checkpoint_path(run_dir)
    if not path.is_file():
        return None
    log.info(
        "Slurm job %s (restart %d): resuming from the earlier attempt's %s",
        job_id(env),
        restart_count(env),
        path,
    )
    return path


def requeue_job(env: Mapping[str, str] | None = None) -> bool:
    """Requeue this Slurm job with ``scontrol requeue``; return whether Slurm accepted it.

    The job keeps its id; Slurm ends this attempt and starts the next when resources allow
    (the batch script runs again, with ``SLURM_RESTART_COUNT`` one higher).
    """
    job = job_id(env)
    if job is None or not re.fullmatch(r"[0-9_]+", job):
        log.warning("not requeued: no Slurm job id (%r)", job)
        return False
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        log.warning("not requeued: scontrol is not on the PATH")
        return False
    result = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log.warning("scontrol requeue %s failed: %s", job, result.stderr.strip())
        return False
    log.info("requeued Slurm job %s", job)
    return True
