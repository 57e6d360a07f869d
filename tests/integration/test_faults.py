"""What a fault probe of the training and evaluation found, each fixed and kept fixed."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import compose_entry, run_train, train_overrides
from unit.test_faults import data_root  # noqa: F401 (fixtures)

import fer_multires.utils.checkpoint_io as checkpoint_io
from fer_multires.utils.checkpoints import CorruptCheckpointError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def trained(trained_run) -> Path:
    """A finished one-epoch run (best_epoch000.ckpt and last.ckpt): the session's shared run."""
    return trained_run


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` read-only, also for root (``chattr +i``), or skip saying why not."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if (
        chattr is None
        or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode
    ):
        pytest.skip("running as root on a file system without chattr +i: no read-only folder")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_checkpoint_is_written_beside_its_target_synced_then_renamed(
    data_root, tmp_path, monkeypatch
) -> None:
    """Lightning 2.6 wrote the temporary file in /tmp and moved it (a copy across file systems,
    which a full disk left truncated: 74 of 135 MB)."""
    renames, synced = [], []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((Path(a), Path(b))),
                                                     real_replace(a, b))[1])  # fmt: skip
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    run = tmp_path / "run"
    run_train(data_root, tmp_path, run)
    last = run / "checkpoints" / "last.ckpt"
    into_last = [src for src, dst in renames if dst == last]
    assert into_last and all(src.parent == last.parent for src in into_last)
    assert synced
    assert not list(last.parent.glob(".*.tmp"))


def test_kill_or_full_disk_during_a_save_keeps_the_previous_checkpoint(
    data_root, tmp_path, monkeypatch
) -> None:
    run = tmp_path / "run"
    run_train(data_root, tmp_path, run)
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half of it reached the disk, then:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        run_train(data_root, tmp_path, run, "trainer.max_epochs=2", "ckpt_path=last")
    monkeypatch.undo()
    assert last.read_bytes() == before
    assert load(last)["epoch"] == 0
    assert not list(last.parent.glob(".*.tmp"))


def test_read_only_checkpoints_folder_is_an_error_before_training(data_root, tmp_path) -> None:
    """It used to train to the end, save nothing, and fail with 'Checkpoint file not found'."""
    run = tmp_path / "run"
    with read_only(run / "checkpoints"), pytest.raises(PermissionError) as err:
        run_train(data_root, tmp_path, run)
    assert f"run_dir: cannot write into {run / 'checkpoints'}" in str(err.value)
    assert not (run / "config.yaml").exists()  # before any work


def test_read_only_evaluation_folder_is_an_error_before_the_evaluation(
    trained, tmp_path, monkeypatch
) -> None:
    """It used to evaluate everything, then fail on a temporary file."""
    from fer_multires.evaluation import runner

    def no_work(*args, **kwargs):
        raise AssertionError("the evaluation started")

    monkeypatch.setattr(runner, "load_trained", no_work)
    out = tmp_path / "eval"
    overrides = [f"ckpt_path={trained}", f"run_dir={out}", f"paths.root_dir={tmp_path}",
                 "trainer.enable_progress_bar=false"]  # fmt: skip
    with read_only(out), pytest.raises(PermissionError, match=f"run_dir: cannot write into {out}"):
        runner.evaluate(compose_entry("eval", overrides, out))


def test_batch_size_larger_than_the_training_split_is_an_error(data_root, tmp_path) -> None:
    """It used to run no step, exit 0 and write an untrained model's metrics.json."""
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"data.batch_size=64 is larger than the training split.*"
                                         r"\(36 samples\)"):  # fmt: skip
        run_train(data_root, tmp_path, run, "data.batch_size=64")
    assert not (run / "metrics.json").exists()


def test_failed_training_writes_its_error_to_train_log(data_root, tmp_path) -> None:
    run = tmp_path / "run"
    overrides = [*train_overrides(data_root, tmp_path), f"run_dir={run}", "data.batch_size=64",
                 "logger=none"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "fer_multires.train", *overrides], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode != 0
    log = (run / "train.log").read_text()
    assert "training failed" in log and "data.batch_size=64 is larger" in log


@pytest.mark.parametrize("kept", [0.33, 0.0005], ids=["a third", "its first bytes"])
def test_corrupt_checkpoint_names_the_newest_intact_alternative(trained, tmp_path, kept) -> None:
    # cut to its first bytes, torch.load fails with OSError EINVAL, not a zip error
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: int(last.stat().st_size * kept)])
    best = next((run / "checkpoints").glob("best_epoch*.ckpt"))
    from fer_multires.utils.checkpoints import check_checkpoint_classes

    with pytest.raises(CorruptCheckpointError) as err:
        check_checkpoint_classes(last, [])
    message = str(err.value)
    assert f"{last} is corrupt or truncated" in message
    assert f"the newest intact checkpoint beside it is {best}" in message


# ------------------------------------------------------------ one training per run directory


def train_command(data_root: Path, tmp_path: Path, run: Path, *extra: str) -> list[str]:
    overrides = [*train_overrides(data_root, tmp_path), f"run_dir={run}", *extra]
    return [sys.executable, "-m", "fer_multires.train", *overrides]


def test_a_second_training_in_a_held_run_directory_stops_and_changes_nothing(
    data_root, tmp_path
) -> None:
    """Both trainings used to run and mix their checkpoints and logs in one folder."""
    from fer_multires.run_guard import run_dir_lock
    from fer_multires.runs import lock_file

    run = tmp_path / "run"
    holder = run_dir_lock(run).acquire()  # this test process is the first training
    try:
        proc = subprocess.run(train_command(data_root, tmp_path, run), cwd=REPO,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        holder.release()
    assert proc.returncode == 1
    assert f"run_dir={run} is in use by process {os.getpid()} on" in proc.stderr
    assert [p.name for p in run.iterdir()] == [lock_file(run).name]  # no .hydra/, no train.log


def test_a_fresh_start_over_an_earlier_run_leaves_its_hydra_record(trained, tmp_path) -> None:
    """Hydra used to rewrite the earlier run's .hydra/overrides.yaml before the refusal."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    record = run / ".hydra" / "overrides.yaml"
    record.parent.mkdir(exist_ok=True)
    record.write_text("- the earlier run's overrides\n")
    data_root = Path(yaml_value(run / "config.yaml", "data", "root"))
    proc = subprocess.run(train_command(data_root, tmp_path, run), cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 1 and f"run_dir={run} already holds a run" in proc.stderr
    assert record.read_text() == "- the earlier run's overrides\n"


def yaml_value(path: Path, *keys: str):
    from omegaconf import OmegaConf

    return OmegaConf.select(OmegaConf.load(path), ".".join(keys))


def test_a_killed_holder_leaves_the_run_directory_free(tmp_path) -> None:
    from fer_multires.run_guard import run_dir_lock
    from fer_multires.utils.locks import FolderBusyError

    run = tmp_path / "run"
    hold = ("import sys, time; from pathlib import Path; from fer_multires.run_guard import "
            "run_dir_lock; run_dir_lock(Path(sys.argv[1])).acquire(); print('held', flush=True);"
            " time.sleep(600)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=f"process {holder.pid} on"):
            run_dir_lock(run).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up runs in the holder
        holder.wait()
    run_dir_lock(run).acquire().release()


# ------------------------------------------------------------ Ctrl-C, the evaluation folder, resume


def test_ctrl_c_saves_mid_epoch_exits_130_and_says_how_to_resume(data_root, tmp_path) -> None:
    """Ctrl-C used to lose the epoch's progress (last.ckpt was the last epoch end) and say
    nothing; a terminal's Ctrl-C reaches the loader's workers too."""
    import signal
    import time

    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    command = train_command(data_root, tmp_path, run, "trainer.max_epochs=500",
                            "data.num_workers=2", "logger=none")  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert last.exists(), "no epoch ended"
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the whole command
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGINT, output[-2000:]
    assert "exited unexpectedly" not in output
    hint = f"resume it by running the same command with ckpt_path=last run_dir={run}"
    assert hint in output and hint in (run / "train.log").read_text()
    stopped = load(last)
    assert stopped["global_step"] > 0
    resume = [*command, "ckpt_path=last", f"trainer.max_epochs={stopped['epoch'] + 1}"]
    resumed = subprocess.run(resume, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    finished = load(last)  # the interrupted epoch, completed
    assert (
        finished["epoch"] == stopped["epoch"] and finished["global_step"] > stopped["global_step"]
    )


def test_eval_after_fit_into_an_unwritable_folder_fails_before_training(data_root, tmp_path):
    """It was found only after the whole training."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval").write_text("a file where the evaluation's folder goes")
    with pytest.raises(PermissionError, match=f"eval_after_fit: cannot write into {run / 'eval'}"):
        run_train(data_root, tmp_path, run, "eval_after_fit=true")
    assert not (run / "config.yaml").exists() and not list(run.rglob("*.ckpt"))


def test_resuming_with_another_architecture_keeps_the_run_config(trained, tmp_path) -> None:
    """It used to overwrite config.yaml, then fail inside fit with a dump of state-dict keys."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = (run / "config.yaml").read_text()
    data_root = Path(yaml_value(run / "config.yaml", "data", "root"))
    with pytest.raises(ValueError, match="holds a seresnet18 model, not the model.backbone="
                                         "resnet18 this run builds"):  # fmt: skip
        run_train(data_root, tmp_path, run, "ckpt_path=last", "model.backbone=resnet18",
                  "trainer.max_epochs=2")  # fmt: skip
    assert (run / "config.yaml").read_text() == config


# ------------------------------------------------------------ outputs over other commands' results


@pytest.mark.parametrize(
    ("command", "target", "kind"),
    [("evaluate", "", "a training run"), ("predict", "eval", "an evaluation")],
)
def test_outputs_over_a_run_or_an_evaluation_are_refused_before_any_write(
    trained_run, tmp_path, command, target, kind
) -> None:
    """evaluate into a training run's folder replaced its metrics.json (the record of its best
    checkpoint) and its .hydra/ record."""
    from PIL import Image

    from fer_multires.runs import HYDRA_DIR, LOCK_FILE

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    out = run / target
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 64)).save(images / "a.png")
    extra = [f"input={images}"] if command == "predict" else []
    proc = subprocess.run([sys.executable, "-m", f"fer_multires.{command}", f"ckpt_path={run}",
                           f"run_dir={out}", *extra], cwd=REPO, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"run_dir={out} holds {kind}: {command} would write its outputs over" in proc.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != LOCK_FILE}
    assert after == before and not (out / HYDRA_DIR).exists()
