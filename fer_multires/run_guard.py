"""A command's claim on its run directory: one command at a time, never over others' results.

Before Hydra writes anything into a single run's directory (its ``.hydra/`` record, the log),
:class:`RunDirGuard`, a Hydra callback (``conf/train.yaml``, ``conf/eval.yaml``,
``conf/predict.yaml``), checks what the command asks of the directory and takes its lock
(:func:`run_dir_lock`, ``run.lock``), which names the holder and goes with its process. A second
training started in the same ``run_dir`` (a repeated command, a requeued job beside a manual one)
stops at once, naming the first, and changes nothing; so does a fresh start over an earlier run
(:func:`resolve_ckpt_path`), an evaluation into a training run's directory, or a prediction into
an evaluation's. Sweep jobs, whose directories Hydra makes per job, take the same lock in
:func:`fer_multires.train.run_sweep_job`.

Under DDP only the launching process (rank 0) holds the lock; the processes it starts, and the
other ranks of a multi-node job, share its claim.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fer_multires.runs import (
    checkpoints_dir,
    eval_dir,
    find_evaluation,
    last_checkpoint,
    lock_file,
    metrics_file,
)
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
    """The lock of a run (or output) directory, not yet taken."""
    return FolderLock(
        lock_file(run_dir),
        f"run_dir={run_dir}",
        advice="wait for it to end, or use another run_dir",
    )


def refuse(message: str) -> NoReturn:
    """Print why a command cannot start and exit with :data:`EXIT_REFUSED`.

    Hydra turns an exception in a callback into a warning, so a callback refuses this way.
    """
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(EXIT_REFUSED)


#: What an output directory may already hold that a command must not write over.
PROTECTED_KINDS = ("training run", "evaluation")


def protected_kind(folder: Path) -> str | None:
    """What ``folder`` holds that another command's outputs would overwrite, or None.

    A training run (its ``checkpoints/``, whose summary ``metrics.json`` names the best one) or
    an evaluation (a ``metrics.json`` of evaluation results, with its ``predictions.csv``).
    """
    if checkpoints_dir(folder).is_dir():
        return "training run"
    try:
        return "evaluation" if find_evaluation(folder) == metrics_file(folder) else None
    except ValueError:  # an unreadable metrics.json is still someone's
        return "evaluation"


class RunDirGuard(Callback):
    """Claim a command's ``run_dir`` before Hydra writes into it, or exit saying why not.

    The directory must be a folder, not held by another command (its lock is taken until the
    command ends), and not hold results of a kind in ``protects`` (which the command would
    overwrite). ``train`` protects nothing this way, but checks ``ckpt_path`` against the
    directory (:func:`resolve_ckpt_path`): a fresh start over an earlier run is refused.

    Args:
        command: the entry point's name, for messages.
        protects: the kinds of :data:`PROTECTED_KINDS` refused as ``run_dir``.

    Raises:
        ValueError: for a kind not in :data:`PROTECTED_KINDS`.
    """

    def __init__(self, command: str = "train", protects: Sequence[str] = ()) -> None:
        unknown = set(protects) - set(PROTECTED_KINDS)
        if unknown:
            raise ValueError(f"RunDirGuard.protects: {sorted(unknown)} not in {PROTECTED_KINDS}")
        self.command = command
        self.protects = tuple(protects)
        self.lock: FolderLock | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``run_dir`` (and a training's ``ckpt_path``) and take its lock, or exit.

        Raises:
            SystemExit: with :data:`EXIT_REFUSED`, naming the directory and what to do.
        """
        if not is_launching_process():
            return
        run_dir = Path(str(config.hydra.run.dir)).absolute()
        if run_dir.exists() and not run_dir.is_dir():
            refuse(f"run_dir={run_dir} is a file, not a folder")
        lock = run_dir_lock(run_dir)
        try:
            lock.acquire()  # first: a running command is named, whatever else the folder holds
            self.check(run_dir, config)
        except (OSError, RuntimeError, ValueError) as err:
            lock.release()
            refuse(str(err))
        self.lock = lock
        atexit.register(lock.release)  # also on a signal's exit, which skips on_run_end

    def check(self, run_dir: Path, config: DictConfig) -> None:
        """Check what ``run_dir`` holds against what the command will write there.

        Raises:
            FileExistsError: for a directory holding results the command would overwrite.
            FileNotFoundError: for a resume with nothing to resume.
        """
        if self.command == "train":
            resolve_ckpt_path(config.get("ckpt_path"), run_dir)
        kind = protected_kind(run_dir)
        if kind in self.protects:
            inside = f" (e.g. run_dir={eval_dir(run_dir)})" if kind == "training run" else ""
            raise FileExistsError(
                f"run_dir={run_dir} holds {'an' if kind[0] in 'aeiou' else 'a'} {kind}: "
                f"{self.command} would write its outputs over that {kind}'s; choose a new "
                f"folder{inside}"
            )

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Release the run directory."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
