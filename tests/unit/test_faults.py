"""What a fault probe of the training and evaluation found, each fixed and kept fixed."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import make_image_tree

from fer_multires.utils.checkpoint_io import AtomicCheckpointIO, require_writable_dir


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("data") / "d", train_videos=4, val_videos=5,
                           frames=9)  # fmt: skip


def test_a_failed_save_is_an_error_not_silence(tmp_path, monkeypatch) -> None:
    """Lightning 2.6's _atomic_save swallows a PermissionError."""

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(PermissionError):
        AtomicCheckpointIO().save_checkpoint({"x": 1}, tmp_path / "c" / "last.ckpt")
    assert not (tmp_path / "c" / "last.ckpt").exists()


def test_require_writable_dir_names_the_key(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match=f"paths.x: cannot write into {blocker / 'sub'}"):
        require_writable_dir(blocker / "sub", "paths.x")


def test_batch_size_larger_than_a_process_share_is_an_error(data_root, tmp_path) -> None:
    from fer_multires.data.datamodule import FERDataModule

    dm = FERDataModule(root=str(data_root), batch_size=20, num_workers=0, resize_size=28,
                       crop_size=24)  # fmt: skip
    dm.setup("fit")

    class TwoProcesses:
        global_rank, world_size = 0, 2

    dm.trainer = TwoProcesses()  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"data.batch_size=20 .* 18 samples per process "
                                         r"\(36 samples over 2 process"):  # fmt: skip
        dm.train_dataloader()


def test_non_utf8_annotation_is_an_error_naming_file_and_line(tmp_path) -> None:
    from fer_multires.data.readers.affwild2 import read_affwild2

    root = make_image_tree(tmp_path / "d", train_videos=2, val_videos=2, frames=3)
    bad = next((root / "annotations").rglob("train_000.txt"))
    bad.write_bytes(bad.read_bytes() + b"\xff\n")
    with pytest.raises(ValueError) as err:  # UnicodeDecodeError is a ValueError too
        read_affwild2(root, "annotations", "cropped_aligned", None)
    assert f"{bad}:5: not UTF-8" in str(err.value), str(err.value)


def test_non_utf8_frame_manifest_is_an_error_naming_file_and_line(tmp_path) -> None:
    from fer_multires.data.readers.affwild2 import read_affwild2

    root = make_image_tree(tmp_path / "d", train_videos=2, val_videos=2, frames=3)
    frames = root / "cropped_aligned"
    manifest = tmp_path / "frames.txt"
    names = sorted(str(p.relative_to(frames)) for p in frames.rglob("*.jpg"))
    manifest.write_bytes(("\n".join(names[:2]) + "\n").encode() + b"caf\xe9/00001.jpg\n")
    with pytest.raises(ValueError) as err:
        read_affwild2(root, "annotations", "cropped_aligned", manifest)
    assert f"{manifest}:3: not UTF-8 text (byte 0xe9 at column 4)" in str(err.value), str(err.value)


def test_label_too_large_for_an_integer_names_file_and_line(tmp_path) -> None:
    from fer_multires.data.readers.affwild2 import read_affwild2

    root = make_image_tree(tmp_path / "d", train_videos=2, val_videos=2, frames=3)
    bad = next((root / "annotations").rglob("train_001.txt"))
    lines = bad.read_text().splitlines()
    lines[2] = "9" * 20
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        read_affwild2(root, "annotations", "cropped_aligned", None)
    assert f"{bad}:3: label {'9' * 20} is outside -1..6" in str(err.value), str(err.value)


def test_two_images_of_one_frame_name_both_files(tmp_path) -> None:
    from fer_multires.data.readers.affwild2 import read_affwild2

    root = make_image_tree(tmp_path / "d", train_videos=2, val_videos=2, frames=3)
    video = root / "cropped_aligned" / "train_001"
    shutil.copyfile(video / "00002.jpg", video / "2.jpg")
    with pytest.raises(ValueError, match="a second image of frame 2") as err:
        read_affwild2(root, "annotations", "cropped_aligned", None)
    message = str(err.value)  # the listing order decides which file is named first
    assert str(video / "2.jpg") in message and str(video / "00002.jpg") in message, message


@pytest.mark.parametrize("again", ["train_000/00002.jpg", "train_000/2.jpg"])
def test_a_frame_listed_twice_in_the_manifest_names_both_lines(tmp_path, again) -> None:
    from fer_multires.data.readers.affwild2 import read_affwild2

    root = make_image_tree(tmp_path / "d", train_videos=2, val_videos=2, frames=3)
    frames = root / "cropped_aligned"
    manifest = tmp_path / "frames.txt"
    names = sorted(p.relative_to(frames).as_posix() for p in frames.rglob("*.jpg"))
    manifest.write_text("\n".join([*names, again]) + "\n")
    with pytest.raises(ValueError) as err:
        read_affwild2(root, "annotations", "cropped_aligned", manifest)
    line = len(names) + 1
    expected = f"{manifest}:{line}: a second image of frame 2 (the first: {manifest}:2)"
    assert expected in str(err.value), str(err.value)


# ------------------------------------------------------------ one training per run directory


def test_a_held_run_directory_names_its_holder_and_frees_on_release(tmp_path) -> None:
    from fer_multires.run_guard import run_dir_lock
    from fer_multires.runs import lock_file
    from fer_multires.utils.locks import FolderBusyError

    first = run_dir_lock(tmp_path / "run").acquire()
    with pytest.raises(FolderBusyError) as busy:
        run_dir_lock(tmp_path / "run").acquire()
    message = str(busy.value)
    assert f"run_dir={tmp_path / 'run'} is in use by process {os.getpid()} on" in message
    assert "fer_multires" in message or "pytest" in message  # the holder's command line
    assert f"lock file {lock_file(tmp_path / 'run')}" in message
    first.release()
    assert lock_file(tmp_path / "run").read_text() == ""  # released: no holder named
    run_dir_lock(tmp_path / "run").acquire().release()


def no_locks(fd, operation):
    raise OSError(errno.ENOLCK, "No locks available")


def test_without_file_system_locks_a_dead_holder_is_taken_over(tmp_path, monkeypatch) -> None:
    import json
    import socket
    import subprocess
    import sys

    from fer_multires.utils import locks

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    record = {"host": socket.gethostname(), "pid": int(gone.stdout), "started": "then"}
    (tmp_path / "x.lock").write_text(json.dumps(record))
    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    lock = locks.FolderLock(tmp_path / "x.lock", "run_dir=x").acquire()
    assert json.loads((tmp_path / "x.lock").read_text())["pid"] == os.getpid()
    lock.release()


@pytest.mark.parametrize("holder", ["a live process here", "a process on another host"])
def test_without_file_system_locks_a_live_holder_is_refused(tmp_path, monkeypatch, holder):
    import json
    import socket

    from fer_multires.utils import locks

    host = socket.gethostname() if holder == "a live process here" else "node-elsewhere"
    record = {"host": host, "pid": os.getppid(), "started": "then", "command": "python -m x"}
    (tmp_path / "x.lock").write_text(json.dumps(record))
    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    with pytest.raises(
        locks.FolderBusyError,
        match=f"process {os.getppid()} on {host}.*if that process is gone, delete the file",
    ):
        locks.FolderLock(tmp_path / "x.lock", "run_dir=x").acquire()


def guard_config(run_dir: Path, ckpt_path: str | None = None):
    from omegaconf import OmegaConf

    return OmegaConf.create({"hydra": {"run": {"dir": str(run_dir)}}, "ckpt_path": ckpt_path})


def test_run_dir_guard_refuses_before_hydra_writes(tmp_path, capsys, monkeypatch) -> None:
    from fer_multires.run_guard import EXIT_REFUSED, RunDirGuard, run_dir_lock

    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "run"
    holder = run_dir_lock(run).acquire()
    with pytest.raises(SystemExit) as stop:
        RunDirGuard().on_run_start(config=guard_config(run))
    assert stop.value.code == EXIT_REFUSED
    assert f"is in use by process {os.getpid()}" in capsys.readouterr().err
    holder.release()
    with pytest.raises(SystemExit):  # nothing to resume: refused, and the lock let go
        RunDirGuard().on_run_start(config=guard_config(run, "last"))
    assert "nothing to resume" in capsys.readouterr().err
    guard = RunDirGuard()
    guard.on_run_start(config=guard_config(run))
    assert guard.lock is not None and guard.lock.held
    guard.on_run_end(config=guard_config(run))
    assert guard.lock is None
    run_dir_lock(run).acquire().release()


def test_only_the_launching_process_holds_the_lock(monkeypatch) -> None:
    from fer_multires.run_guard import is_launching_process

    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_launching_process()
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert is_launching_process()
    monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP process Lightning started
    assert not is_launching_process()


# ------------------------------------------------------------ a checkpoint that cannot be written


@pytest.fixture
def file_size_limit():
    """Files of this process can grow to 64 KiB (the kernel refuses more, as a full disk does)."""
    import resource
    import signal

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_failed_checkpoint_write_says_what_and_where(tmp_path, file_size_limit) -> None:
    """torch.save reported it as '[enforce fail at inline_container.cc:672] unexpected pos'."""
    import torch

    from fer_multires.utils.checkpoint_io import CheckpointWriteError

    target = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(100)}, target)
    before = target.read_bytes()
    with pytest.raises(CheckpointWriteError) as err:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(100_000)}, target)
    message = str(err.value)
    assert err.value.errno == errno.EFBIG
    assert f"cannot save the checkpoint {target}: File too large" in message
    assert "the previous last.ckpt is kept as it was" in message
    assert "then resume with ckpt_path=last" in message
    assert "ulimit -f" in message and "inline_container" not in message
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ["last.ckpt"]  # no temporary file left


def test_a_full_disk_names_the_free_space(tmp_path) -> None:
    import subprocess

    import torch

    from fer_multires.utils.checkpoint_io import CheckpointWriteError

    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)],
                           capture_output=True, text=True)  # fmt: skip
    if mount.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mount.stderr.strip()}")
    try:
        with pytest.raises(CheckpointWriteError) as err:
            AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1_000_000)}, disk / "a.ckpt")
        assert err.value.errno == errno.ENOSPC
        assert f"cannot save the checkpoint {disk / 'a.ckpt'}: No space left on device" in str(
            err.value
        )
        assert f"MiB free in {disk}" in str(err.value) and "nothing was kept" in str(err.value)
        assert os.listdir(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ------------------------------------------------------------ resuming with another model


def test_resuming_another_architecture_names_both(tmp_path) -> None:
    import torch

    from fer_multires.utils.checkpoints import check_checkpoint_fits

    class Model(torch.nn.Module):
        def __init__(self, backbone: str, width: int) -> None:
            super().__init__()
            self.hparams = {"backbone": backbone}
            self.layer = torch.nn.Linear(4, width)

    saved = Model("seresnet18", 8)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": saved.state_dict(), "hyper_parameters": saved.hparams}, path)
    check_checkpoint_fits(path, Model("seresnet18", 8))
    with pytest.raises(ValueError) as err:
        check_checkpoint_fits(path, Model("resnet18", 3))
    message = str(err.value)
    assert f"ckpt_path: {path} holds a seresnet18 model, not the model.backbone=resnet18" in message
    assert "layer.weight (8, 4) vs (3, 4)" in message and "model.backbone=seresnet18" in message


# ------------------------------------------------------------ folder datasets


def test_a_symlink_loop_in_a_folder_dataset_names_the_link(tmp_path) -> None:
    from PIL import Image

    from fer_multires.data.readers.folder import read_folder
    from fer_multires.data.readers.index import DatasetFormatError

    for split in ("train", "val"):
        for name in ("happy", "sad"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / name / "a.jpg")
    assert len(read_folder(tmp_path).splits["train"]) == 2
    (tmp_path / "val" / "loop").symlink_to("loop")  # it points at itself
    with pytest.raises(
        DatasetFormatError,
        match=f"data.root: {tmp_path / 'val' / 'loop'} is a symbolic link that cannot be followed",
    ):
        read_folder(tmp_path)


# ------------------------------------------------------------ bad values on the command line


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.limit_train_batches=true", "trainer.limit_train_batches=True must be a number"),
        ("seed=abc", "seed='abc' must be an integer"),
        ("seed=1.5", "seed=1.5 must be an integer"),
    ],
)
def test_a_count_that_is_not_a_number_names_its_key(override, message, tmp_path) -> None:
    """Lightning answered with a bare AssertionError, or int()'s 'invalid literal'."""
    from conftest import compose_train, train_overrides

    from fer_multires.train import check_run_numbers

    cfg = compose_train([*train_overrides(tmp_path, tmp_path), override], tmp_path / "run")
    with pytest.raises(ValueError, match=re.escape(message)):
        check_run_numbers(cfg)


def test_a_file_that_is_not_a_checkpoint_is_named_so(tmp_path) -> None:
    """It was called 'corrupt or truncated', with an unpickling error."""
    from fer_multires.utils.checkpoints import CorruptCheckpointError, checkpoint_class_names

    notes = tmp_path / "notes.txt"
    notes.write_text("+experiment=demo\n")
    with pytest.raises(CorruptCheckpointError, match=f"ckpt_path: {notes} is not a checkpoint"):
        checkpoint_class_names(notes)


def test_a_run_dir_that_is_a_file_is_refused(tmp_path, capsys, monkeypatch) -> None:
    """Hydra's own message was '[Errno 17] File exists' (or a NotADirectoryError)."""
    from fer_multires.run_guard import RunDirGuard

    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    blocker = tmp_path / "run"
    blocker.write_text("x")
    with pytest.raises(SystemExit):
        RunDirGuard().on_run_start(config=guard_config(blocker))
    assert f"run_dir={blocker} is a file, not a folder" in capsys.readouterr().err


# ------------------------------------------------------------ what report says of a run


def test_report_names_a_running_training_and_an_unreadable_summary(tmp_path) -> None:
    """Both were 'incomplete: checkpoints but no metrics.json (still running, or killed)'."""
    from fer_multires.run_guard import run_dir_lock
    from fer_multires.runs import read_training_results, run_status

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"PK")
    with run_dir_lock(run):
        assert run_status(run, None, None).startswith(f"running: process {os.getpid()} on ")
    assert "stopped or killed; resume it with ckpt_path=last" in run_status(run, None, None)
    (run / "metrics.json").write_text('{"best_checkpoint": ')
    assert read_training_results(run) is None
    status = run_status(run, None, None)
    assert status.startswith(f"incomplete: {run / 'metrics.json'}: cannot read results")


def test_a_data_root_that_is_a_file_is_named_so(tmp_path) -> None:
    """It said 'dataset folder ... does not exist' of a file that exists."""
    from fer_multires.data.readers.affwild2 import read_affwild2

    file = tmp_path / "affwild2.zip"
    file.write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match=f"data.root: {file} is a file, not the dataset"):
        read_affwild2(file)


def test_a_full_disk_while_writing_any_output_names_the_file(tmp_path, file_size_limit) -> None:
    """predictions.csv, metrics.json, ...: the error was '[Errno 27] File too large' alone."""
    from fer_multires.utils.io import OutputWriteError, write_text_atomic

    target = tmp_path / "predictions.csv"
    target.write_text("earlier\n")
    with pytest.raises(OutputWriteError, match=f"cannot write {target}: File too large"):
        write_text_atomic(target, "x" * 200_000)
    assert target.read_text() == "earlier\n" and os.listdir(tmp_path) == ["predictions.csv"]


# ------------------------------------------------------------ more bad values and files


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"val_select_fraction": 1.5}, "data.val_select_fraction=1.5 must be in (0, 1)"),
        ({"batch_size": 0}, "data.batch_size=0 must be >= 1"),
        ({"num_workers": -1}, "data.num_workers=-1 must be >= 0"),
    ],
)
def test_a_bad_data_setting_names_its_key(setting, message, tmp_path) -> None:
    from fer_multires.data.datamodule import FERDataModule

    with pytest.raises(ValueError, match=re.escape(message)):
        FERDataModule(str(tmp_path), **setting)


@pytest.mark.parametrize("what", ["a training's summary", "a cut file"])
def test_compare_names_a_file_that_is_not_an_evaluation(tmp_path, capsys, what) -> None:
    from fer_multires.compare import main
    from fer_multires.results import TrainingResults
    from unit.test_compare import fake_eval

    good = fake_eval(tmp_path / "good", {"8": 0.2, "native": 0.5})
    bad = tmp_path / "bad"
    bad.mkdir()
    if what == "a cut file":
        (bad / "metrics.json").write_text((good / "metrics.json").read_text()[:40])
    else:
        summary = TrainingResults("best.ckpt", ["Neutral", "Anger"], {"val_full/score": 0.5})
        (bad / "metrics.json").write_text(json.dumps(summary.to_json()))
    assert main([str(bad), str(good), "--out", str(tmp_path / "out")]) == 1
    assert str(bad / "metrics.json") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_onnx_is_named_so(tmp_path) -> None:
    from fer_multires.inference.classifier import onnx_metadata

    model = tmp_path / "model.onnx"
    model.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match=f"ckpt_path: {model} is not a readable ONNX file"):
        onnx_metadata(model)
