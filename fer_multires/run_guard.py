"""A training's claim on its run directory: one training at a time, never over an earlier run.

Before Hydra writes anything into a single run's directory (its ``.hydra/`` record, ``train.log``),
:class:`RunDirGuard`, a Hydra callback (``conf/train.yaml``), checks what the command asks of the
directory (:func:`resolve_ckpt_path`: a fresh start in a directory that holds a run is refused, a
resume needs something to resume) and takes its lock (:func:`run_dir_lock`, ``train.lock``), which
names the holder and goes with its process. A second training started in the same ``run_dir`` (a
repeated command, a requeued job beside a manual one) stops at once, naming the first, and
changes nothing. Sweep jobs, whose directories Hydra makes per job, take the same lock in
:func:`fer_multires.train.run_sweep_job`.

Under DDP only the launching process (rank 0) holds the lock; the processes it starts, and the
other ranks of a multi-node job, share its claim.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fer_multires.runs import checkpoints_dir, last_checkpoint, lock_file
from fer_multires.utils import slurm
from fer_multires.utils.checkpoints import require_checkpoint
from fer_multires.utils.locks import FolderLock

log = logging.getLogger(__name__)

#: The exit status of a training refused before it started (busy or used ``run_dir``).
EXIT_REFUSED = 1

#: Environment variables that give a process's rank, as the launchers set them.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """Turn ``ckpt_path`` (null, ``last`` or a path) into a checkpoint file to resume from.

    Null is a fresh start, except in a Slurm job whose run directory already holds a
    ``last.ckpt`` (a requeued or restarted attempt), which resumes from it.

    Raises:
        FileNotFoundError: if ``last`` finds nothing to resume in ``run_dir``, or the file is
            missing: resuming never silently becomes a fresh start.
        FileExistsError: for a fresh start in a ``run_dir`` that holds an earlier run.
    """
    if ckpt_path is None:
        earlier = slurm.auto_resume_checkpoint(run_dir)
        if earlier is None:
            require_no_earlier_run(run_dir)
        return None if earlier is None else str(earlier)
    if ckpt_path == "last":
        return str(last_checkpoint(run_dir))
    return str(require_checkpoint(ckpt_path))


def require_no_earlier_run(run_dir: Path) -> None:
    """Refuse a fresh start in a run directory that holds an earlier run's checkpoints.

    A second run there would overwrite the first one's ``last.ckpt`` (its resume point),
    ``config.yaml`` and ``metrics.json``, and mix the two runs' checkpoints and logs.

    Raises:
        FileExistsError: naming the directory, and what to do instead.
    """
    folder = checkpoints_dir(run_dir)
    if folder.is_dir() and any(folder.glob("*.ckpt")):
        raise FileExistsError(
            f"run_dir={run_dir} already holds a run ({folder} has checkpoints): resume it with "
            "ckpt_path=last, or start afresh in another run_dir (or after deleting this one)"
        )


def is_launching_process() -> bool:
    """Whether this process is rank 0 (or not a distributed process at all)."""
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in RANK_VARIABLES)


def run_dir_lock(run_dir: Path) -> FolderLock:
    """The lock of a run directory (not yet taken)."""
    return FolderLock(
        lock_file(run_dir),
        f"run_dir={run_dir}",
        advice="wait for that training to end, or train in another run_dir",
    )


class RunDirGuard(Callback):
    """Claim a single run's directory before Hydra writes into it (see the module's docstring)."""

    def __init__(self) -> None:
        self.lock: FolderLock | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``ckpt_path`` against the run directory and take its lock, or exit.

        Hydra turns an exception in a callback into a warning, so a refusal prints its reason
        and exits with :data:`EXIT_REFUSED` itself.

        Raises:
            SystemExit: if the directory is held by another training, holds an earlier run
                while a fresh start is asked for, or has nothing to resume.
        """
        if not is_launching_process():
            return
        run_dir = Path(str(config.hydra.run.dir)).absolute()
        lock = run_dir_lock(run_dir)
        try:
            lock.acquire()  # first: a running training is named, whatever else the folder holds
            resolve_ckpt_path(config.get("ckpt_path"), run_dir)
        except (OSError, RuntimeError) as err:
            lock.release()
            print(f"Error: {err}", file=sys.stderr)
            sys.exit(EXIT_REFUSED)
        self.lock = lock
        atexit.register(lock.release)  # also on a signal's exit, which skips on_run_end

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Release the run directory."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
