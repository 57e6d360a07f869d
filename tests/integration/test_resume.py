"""Mid-epoch checkpoints and exact resume: a run stopped inside an epoch, by an error or a signal,
and resumed from its last.ckpt ends with the weights of a run that never stopped."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import make_image_tree, run_train
from torch.multiprocessing import ProcessExitedException

from fer_multires.callbacks import LastCheckpoint, Preempted, host_group

STEPS_PER_EPOCH = 4  # 36 training frames, batches of 8


class CrashAtStep(pl.Callback):
    """Raise at the start of a training step (the run dies there, as if killed)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"injected failure at step {self.step}")


class SignalAtStep(pl.Callback):
    """Send this process a signal during a training step (a preemption); under DDP, only the
    process of global rank ``rank``."""

    def __init__(self, step: int, signum: int = int(signal.SIGTERM), rank: int = 0) -> None:
        self.step, self.signum, self.rank = step, signum, rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("data") / "d", train_videos=4, val_videos=5,
                           frames=9)  # fmt: skip


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def straight(data_root, tmp_path_factory) -> dict[int, dict[str, torch.Tensor]]:
    """Uninterrupted 2-epoch runs, by number of workers."""
    out = {}
    for workers in (0, 2):
        tmp = tmp_path_factory.mktemp(f"straight{workers}")
        run_train(data_root, tmp, tmp / "run", "trainer.max_epochs=2",
                  f"data.num_workers={workers}")  # fmt: skip
        out[workers] = weights(tmp / "run")
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_error_mid_epoch_then_resume_is_bit_identical(data_root, tmp_path, straight, workers):
    crash_step = STEPS_PER_EPOCH + 2  # the 3rd step of epoch 2
    run = tmp_path / "run"
    common = ["trainer.max_epochs=2", f"data.num_workers={workers}"]
    crash = [
        "callbacks.last_checkpoint.every_n_train_steps=1",
        "+callbacks.crash._target_=integration.test_resume.CrashAtStep",
        f"+callbacks.crash.step={crash_step}",
    ]
    with pytest.raises(RuntimeError, match="injected failure"):
        run_train(data_root, tmp_path, run, *common, *crash)
    stopped = load(run / "checkpoints" / "last.ckpt")
    # saved inside epoch 2, with the sampler's place in it
    assert (stopped["epoch"], stopped["global_step"]) == (1, crash_step)
    state = stopped["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert state == [{"epoch": 1, "position": 2 * 8}]
    run_train(data_root, tmp_path, run, *common, "ckpt_path=last")
    assert load(run / "checkpoints" / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH
    assert_same_weights(straight[workers], weights(run))


def test_without_the_loader_state_the_epoch_restarts_and_weights_differ(
    data_root, tmp_path, straight
):
    """The check above can fail: a resume that replays the epoch from its start is caught."""
    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        run_train(data_root, tmp_path, run, "trainer.max_epochs=2",
                  "callbacks.last_checkpoint.every_n_train_steps=1",
                  "+callbacks.crash._target_=integration.test_resume.CrashAtStep",
                  f"+callbacks.crash.step={STEPS_PER_EPOCH + 2}")  # fmt: skip
    path = run / "checkpoints" / "last.ckpt"
    ckpt = load(path)
    del ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    torch.save(ckpt, path)
    run_train(data_root, tmp_path, run, "trainer.max_epochs=2", "ckpt_path=last")
    a, b = straight[0], weights(run)
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_signal_mid_epoch_saves_stops_and_resumes_bit_identical(
    data_root, tmp_path, straight, signum
):
    run = tmp_path / "run"
    signal_step = STEPS_PER_EPOCH + 1
    before = signal.getsignal(signum)
    with pytest.raises(Preempted) as stop:
        run_train(data_root, tmp_path, run, "trainer.max_epochs=2",
                  "+callbacks.sig._target_=integration.test_resume.SignalAtStep",
                  f"+callbacks.sig.step={signal_step}",
                  f"+callbacks.sig.signum={int(signum)}")  # fmt: skip
    assert stop.value.code == 128 + signum and not stop.value.requeued
    assert f"ckpt_path=last run_dir={run}" in str(stop.value)  # how to resume
    assert signal.getsignal(signum) == before  # handlers put back
    # saved at the end of the step the signal arrived in (no step interval configured)
    assert load(run / "checkpoints" / "last.ckpt")["global_step"] == signal_step + 1
    run_train(data_root, tmp_path, run, "trainer.max_epochs=2", "ckpt_path=last")
    assert_same_weights(straight[0], weights(run))


def test_sigterm_on_one_ddp_process_saves_and_stops_both_at_that_step(data_root, tmp_path):
    run = tmp_path / "run"
    signal_step = 2
    with pytest.raises(ProcessExitedException, match=f"exit code {128 + signal.SIGTERM}"):
        run_train(data_root, tmp_path, run, "trainer=ddp_sim", "trainer.max_epochs=2",
                  "+callbacks.sig._target_=integration.test_resume.SignalAtStep",
                  f"+callbacks.sig.step={signal_step}", "+callbacks.sig.rank=1")  # fmt: skip
    assert load(run / "checkpoints" / "last.ckpt")["global_step"] == signal_step + 1


def test_step_interval_refreshes_last_inside_the_epoch(data_root, tmp_path) -> None:
    run = tmp_path / "run"
    run_train(data_root, tmp_path, run, "callbacks.last_checkpoint.every_n_train_steps=3",
              "+callbacks.crash._target_=integration.test_resume.CrashAtStep",
              "+callbacks.crash.step=100", "trainer.max_epochs=1")  # fmt: skip
    # the epoch end's save comes last
    assert load(run / "checkpoints" / "last.ckpt")["global_step"] == STEPS_PER_EPOCH


def test_time_interval_is_due_after_the_minutes_pass(tmp_path, monkeypatch) -> None:
    callback = LastCheckpoint(str(tmp_path), every_n_minutes=1.0, signals=[], requeue_signals=[])
    now = [0.0]
    monkeypatch.setattr("fer_multires.callbacks.time.monotonic", lambda: now[0])

    class FakeTrainer:
        world_size, is_global_zero, global_step = 1, True, 3

    callback._last_save_time = 0.0
    now[0] = 59.0
    assert callback._due(FakeTrainer()) == (False, 0)  # type: ignore[arg-type]
    now[0] = 61.0
    assert callback._due(FakeTrainer()) == (True, 0)  # type: ignore[arg-type]
    callback.received = int(signal.SIGUSR1)
    callback._last_save_time = 61.0
    assert callback._due(FakeTrainer()) == (True, int(signal.SIGUSR1))  # type: ignore[arg-type]


def due_on_two_processes(rank: int, store: str, out: str) -> None:
    """One of two gloo processes: ``LastCheckpoint._due`` before and after rank 1's signal."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                                         world_size=2)  # fmt: skip
    try:
        callback = LastCheckpoint(out, every_n_train_steps=None, signals=[], requeue_signals=[])
        # the gloo group host_group() makes beside NCCL (with gloo it reuses the default group)
        callback._host_group = group = torch.distributed.new_group(backend="gloo")

        class FakeTrainer:
            world_size, is_global_zero, global_step = 2, rank == 0, 3

        before = callback._due(FakeTrainer())  # type: ignore[arg-type]
        if rank == 1:
            callback.received = int(signal.SIGUSR1)
        after = callback._due(FakeTrainer())  # type: ignore[arg-type]
        callback._leave_host_group()  # at teardown
        with pytest.raises(KeyError):
            torch.distributed.get_process_group_ranks(group)  # destroyed
        assert host_group() is None  # gloo: the default group
        Path(out, f"rank{rank}.json").write_text(json.dumps([list(before), list(after)]))
    finally:
        torch.distributed.destroy_process_group()


def ddp_trainer(rank: int, out: str) -> pl.Trainer:
    """A DDP ``Trainer`` of 2 CPU processes, whose Lightning handler saw SIGTERM on rank 0."""
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False,
                         enable_progress_bar=False, default_root_dir=out)  # fmt: skip
    trainer._signal_connector.received_sigterm = rank == 0
    return trainer


def step_broadcast_stops(trainer: pl.Trainer) -> bool:
    """Whether Lightning's SIGTERM broadcast before a training step stops training."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    try:
        trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor()
    except SIGTERMException:
        return True
    return False


def sigterm_before_training_on_two_processes(rank: int, store: str, out: str) -> None:
    """One of two gloo processes: Lightning's per-step SIGTERM broadcast without and with
    ``LastCheckpoint``, and a SIGTERM on rank 0 before training started."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                                         world_size=2)  # fmt: skip
    try:
        plain = step_broadcast_stops(ddp_trainer(rank, out))  # a collective at every step
        trainer, module = ddp_trainer(rank, out), pl.LightningModule()
        callback = LastCheckpoint(out, every_n_train_steps=None)
        callback.setup(trainer, module, "fit")
        with_callback = step_broadcast_stops(trainer)
        callback.on_train_start(trainer, module)
        due = callback._due(trainer)
        callback.teardown(trainer, module, "fit")
        result = {"plain": plain, "with_callback": with_callback, "due": list(due)}
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        torch.distributed.destroy_process_group()


def test_callback_replaces_lightnings_per_step_sigterm_broadcast(tmp_path) -> None:
    # under DDP Lightning broadcasts rank 0's SIGTERM flag before every step (a GPU sync on
    # NCCL); LastCheckpoint turns that off and takes an early SIGTERM into its host-side flags
    args = (str(tmp_path / "store"), str(tmp_path))
    torch.multiprocessing.spawn(sigterm_before_training_on_two_processes, args=args, nprocs=2)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result == {"plain": True, "with_callback": False,
                          "due": [True, int(signal.SIGTERM)]}, rank  # fmt: skip


def test_a_signal_on_one_process_stops_every_process(tmp_path) -> None:
    # the per-step flags are reduced on the host (gloo), over real processes
    args = (str(tmp_path / "store"), str(tmp_path))
    torch.multiprocessing.spawn(due_on_two_processes, args=args, nprocs=2)
    for rank in (0, 1):
        before, after = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert before == [False, 0] and after == [True, int(signal.SIGUSR1)], rank
