"""Training callbacks: ``last.ckpt`` inside epochs, and stopping on signals (Ctrl-C, preemption).

:class:`LastCheckpoint` is ``callbacks.last_checkpoint``. It refreshes ``last.ckpt`` after every
training epoch (as a ``ModelCheckpoint`` without a monitor), every ``every_n_train_steps`` steps
and every ``every_n_minutes`` minutes inside an epoch, and at the first step's end after a
preemption signal or Ctrl-C, after which training stops with a message saying how to resume.
The training loader is resumable (:class:`~fer_multires.data.loaders.ResumableLoader`), so
resuming from a mid-epoch ``last.ckpt`` continues the epoch where it stopped, with the same
remaining samples and draws.

Why not Lightning's own SLURM auto-requeue: its ``SIGUSR1`` handler saves ``hpc_ckpt_<n>.ckpt``
from inside the signal handler, at whatever point of a training step the signal lands, and the
restarted job prefers that file over ``last.ckpt``. Here the handler only records the signal; the
checkpoint is written between two steps, where the saved loop state resumes exactly, and the job
is requeued with the same ``scontrol requeue`` Lightning uses.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.callbacks import ModelCheckpoint

from fer_multires.utils import slurm

log = logging.getLogger(__name__)

KEY = "callbacks.last_checkpoint"


class Preempted(SystemExit):
    """Training stopped on a signal (preemption, Ctrl-C) after saving ``last.ckpt``.

    A ``SystemExit`` (exit status 128 + the signal's number: 130 for Ctrl-C), so that sweeps do
    not record the job as failed and Hydra does not print a traceback.
    """

    def __init__(self, signum: int, checkpoint: str, requeued: bool, run_dir: str) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.checkpoint = checkpoint
        self.requeued = requeued
        self.run_dir = run_dir

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        then = (
            "the job was requeued"
            if self.requeued
            else f"resume it by running the same command with ckpt_path=last run_dir={self.run_dir}"
        )
        return f"stopped on {name} after saving {self.checkpoint}; {then}"


def parse_signals(names: Sequence[str] | None, key: str) -> tuple[signal.Signals, ...]:
    """Turn signal names (``SIGUSR1``, ``USR1``, ``TERM``) into signals.

    Raises:
        ValueError: naming ``key`` for an unknown name.
    """
    result = []
    for name in names or ():
        text = str(name).upper()
        text = text if text.startswith("SIG") else f"SIG{text}"
        try:
            result.append(signal.Signals[text])
        except KeyError:
            raise ValueError(
                f"{key}: {name!r} is not a signal name (e.g. SIGUSR1, SIGTERM)"
            ) from None
    return tuple(result)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt``: after every epoch, every N steps, every T minutes, and on preemption.

    Args:
        dirpath: the run's ``checkpoints/`` folder.
        filename: the checkpoint's name without ``.ckpt``.
        every_n_train_steps: also save every this many training steps (null: not by steps).
        every_n_minutes: also save when this many minutes passed since the last save, checked
            at each step's end (null: not by time). Rank 0's clock decides under DDP.
        signals: signals that save ``last.ckpt`` at the next step's end and stop training
            (``SIGINT``: Ctrl-C; a second Ctrl-C stops at once, without saving).
        requeue_signals: those of ``signals`` after which a Slurm job is requeued
            (``scontrol requeue``); Slurm's warning signal (``--signal=USR1@<seconds>``).
            Other signals (``SIGTERM``: ``scancel``, other schedulers, spot instances) only save
            and stop, so a cancelled job is not resurrected.
        **kwargs: further ``ModelCheckpoint`` arguments (e.g. ``save_weights_only``).

    Raises:
        ValueError: for an invalid setting, naming its ``callbacks.last_checkpoint`` key.
    """

    def __init__(
        self,
        dirpath: str,
        filename: str = "last",
        every_n_train_steps: int | None = None,
        every_n_minutes: float | None = None,
        signals: Sequence[str] | None = ("SIGUSR1", "SIGTERM", "SIGINT"),
        requeue_signals: Sequence[str] | None = ("SIGUSR1",),
        **kwargs: Any,
    ) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(
                f"{KEY}.every_n_train_steps={every_n_train_steps} must be >= 1 or null"
            )
        if every_n_minutes is not None and every_n_minutes <= 0:
            raise ValueError(f"{KEY}.every_n_minutes={every_n_minutes} must be > 0 or null")
        self.signals = parse_signals(signals, f"{KEY}.signals")
        self.requeue_signals = parse_signals(requeue_signals, f"{KEY}.requeue_signals")
        stray = set(self.requeue_signals) - set(self.signals)
        if stray:
            raise ValueError(
                f"{KEY}.requeue_signals: {', '.join(s.name for s in stray)} not in {KEY}.signals"
            )
        kwargs.update(monitor=None, save_top_k=1, save_last=False, enable_version_counter=False)
        super().__init__(dirpath=dirpath, filename=filename, **kwargs)
        self.step_interval = every_n_train_steps
        self.time_interval_s = None if every_n_minutes is None else 60.0 * every_n_minutes
        self.received: int | None = None
        self._last_save_time = time.monotonic()
        self._previous_handlers: dict[int, Any] = {}
        self._host_group: dist.ProcessGroup | None = None

    # --- signals ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # only record it: the checkpoint is written between two steps
        if self.received is None:
            self.received = signum
        elif signum == signal.SIGINT == self.received:
            # a second Ctrl-C while the first waits for the step's end: stop now, unsaved
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt

    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            previous = signal.getsignal(signum)
            self._previous_handlers.setdefault(signum, previous)
            signal.signal(signum, self._on_signal)

    def _restore_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Turn off Lightning's SLURM auto-requeue for this fit: this callback does it instead.

        Under DDP, also join the host-side process group of the per-step flags (every process
        calls ``setup``, as creating a group needs). When this callback handles ``SIGTERM``,
        stop Lightning's own per-step broadcast of it (:func:`skip_lightning_sigterm_broadcast`).
        """
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and trainer.world_size > 1:
            self._host_group = host_group()
            if signal.SIGTERM in self.signals:
                skip_lightning_sigterm_broadcast(trainer)
        environment = trainer._accelerator_connector.cluster_environment
        if stage == "fit" and self.signals and isinstance(environment, SLURMEnvironment):
            environment._auto_requeue = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Install the handlers (after Lightning's, whose ``SIGTERM`` stops only at epoch end)."""
        super().on_train_start(trainer, pl_module)
        # a SIGTERM before training started reached Lightning's handler: it is ours from here on
        early = signal.SIGTERM in self.signals and getattr(trainer, "received_sigterm", False)
        self.received = int(signal.SIGTERM) if early else None
        self._install_handlers()
        self._last_save_time = time.monotonic()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Put the signal handlers back and leave the host group (``teardown`` is skipped)."""
        super().on_exception(trainer, pl_module, exception)
        self._restore_handlers()
        self._leave_host_group()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Put the signal handlers back as they were, and leave the host group."""
        super().teardown(trainer, pl_module, stage)
        self._restore_handlers()
        self._leave_host_group()

    def _leave_host_group(self) -> None:
        """Destroy the gloo group :meth:`setup` created beside NCCL (one per ``fit``)."""
        group, self._host_group = self._host_group, None
        if group is not None and dist.is_initialized():  # else it went with the default group
            dist.destroy_process_group(group)

    # --- saving -------------------------------------------------------------------------------

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self._last_save_time = time.monotonic()

    def _due(self, trainer: pl.Trainer) -> tuple[bool, int]:
        """Whether an interval is due or a signal came, and which signal: on every process alike.

        Under DDP one small all-reduce per step (the maximum over processes), so every process
        saves, and stops, together when any of them received a signal. It runs on the host
        (:func:`host_group`), so it never waits for the GPU's queued work.
        """
        by_steps = bool(self.step_interval) and trainer.global_step % self.step_interval == 0
        by_time = (
            trainer.is_global_zero
            and self.time_interval_s is not None
            and time.monotonic() - self._last_save_time >= self.time_interval_s
        )
        signum = self.received or 0
        if trainer.world_size == 1:
            return by_steps or by_time or bool(signum), signum
        due, signum = max_over_processes([int(by_steps or by_time), signum], self._host_group)
        return bool(due or signum), signum

    def _save_last(self, trainer: pl.Trainer) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Save ``last.ckpt`` when an interval is due or a signal came; stop on a signal."""
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        due, signum = self._due(trainer)
        if not due:
            return
        self._save_last(trainer)
        if signum:
            self._stop(trainer, signum)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A signal after the last step: the epoch's save is done; requeue and stop."""
        super().on_train_end(trainer, pl_module)
        _, signum = self._due(trainer)
        if signum:
            self._save_last(trainer)
            self._stop(trainer, signum)

    def _stop(self, trainer: pl.Trainer, signum: int) -> None:
        """Requeue (rank 0, under Slurm, for a requeue signal) and raise :class:`Preempted`."""
        path = self._last_checkpoint_saved or str(self.dirpath)
        requeue = signal.Signals(signum) in self.requeue_signals and slurm.in_slurm_job()
        requeued = slurm.requeue_job() if requeue and trainer.is_global_zero else False
        log.warning(
            "%s received: saved %s at step %d (epoch %d)%s",
            signal.Signals(signum).name,
            path,
            trainer.global_step,
            trainer.current_epoch,
            "; Slurm job requeued" if requeued else "",
        )
        raise Preempted(signum, path, requeued, str(Path(str(self.dirpath)).parent))


def host_group() -> dist.ProcessGroup | None:
    """Return a process group whose collectives run on the host, for small flags.

    The default group when it is already gloo (DDP on CPUs); beside NCCL a new gloo group, so
    that reducing a flag is a host-to-host exchange, not a GPU collective whose result the host
    must wait for (a sync with every queued kernel).
    """
    if dist.get_backend() == "gloo":
        return None
    return dist.new_group(backend="gloo")


def skip_lightning_sigterm_broadcast(trainer: pl.Trainer) -> None:
    """Stop Lightning broadcasting its ``SIGTERM`` flag before every DDP training step.

    Lightning 2.x puts rank 0's flag in a tensor on the GPU, broadcasts it and reads it back
    (``.item()``) before each step: a host sync with all the GPU's queued work. While
    :class:`LastCheckpoint` handles ``SIGTERM``, Lightning's flag can only be set before training
    starts; ``on_train_start`` takes it over into the callback's own flags, which every process
    reduces on the host at each step's end (:meth:`LastCheckpoint._due`).
    """
    loop = trainer.fit_loop.epoch_loop
    if hasattr(loop, "_broadcast_sigterm_tensor"):
        loop._broadcast_sigterm_tensor = lambda: None


def max_over_processes(values: list[int], group: dist.ProcessGroup | None) -> list[int]:
    """Return the element-wise maximum of ``values`` over the processes of ``group``.

    Args:
        values: this process's integers (the same length on every process).
        group: a host-side group (:func:`host_group`); None for the default group.
    """
    flags = torch.tensor(values, dtype=torch.int64)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=group)
    return flags.tolist()
