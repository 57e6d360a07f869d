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
from conftest import compose_entry, make_image_tree, run_train, train_overrides

import fer_multires.utils.checkpoint_io as checkpoint_io
from fer_multires.utils.checkpoint_io import AtomicCheckpointIO, require_writable_dir
from fer_multires.utils.checkpoints import CorruptCheckpointError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("data") / "d", train_videos=4, val_videos=5,
                           frames=9)  # fmt: skip


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> Path:
    """A finished one-epoch run (best_epoch000.ckpt and last.ckpt)."""
    base = tmp_path_factory.mktemp("trained")
    run_train(data_root, base, base / "run")
    return base / "run"


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


# --- a full disk or a kill during a save ---------------------------------------------------------


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


def test_a_failed_save_is_an_error_not_silence(tmp_path, monkeypatch) -> None:
    """Lightning 2.6's _atomic_save swallows a PermissionError."""

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(PermissionError):
        AtomicCheckpointIO().save_checkpoint({"x": 1}, tmp_path / "c" / "last.ckpt")
    assert not (tmp_path / "c" / "last.ckpt").exists()


# --- read-only folders -----------------------------------------------------------------------


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

    monkeypatch.setattr(runner.FERModule, "load_from_checkpoint", no_work)
    out = tmp_path / "eval"
    overrides = [f"ckpt_path={trained}", f"run_dir={out}", f"paths.root_dir={tmp_path}",
                 "trainer.enable_progress_bar=false"]  # fmt: skip
    with read_only(out), pytest.raises(PermissionError, match=f"run_dir: cannot write into {out}"):
        runner.evaluate(compose_entry("eval", overrides, out))


def test_require_writable_dir_names_the_key(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match=f"paths.x: cannot write into {blocker / 'sub'}"):
        require_writable_dir(blocker / "sub", "paths.x")


# --- data ------------------------------------------------------------------------------------


def test_batch_size_larger_than_the_training_split_is_an_error(data_root, tmp_path) -> None:
    """It used to run no step, exit 0 and write an untrained model's metrics.json."""
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"data.batch_size=64 is larger than the training split.*"
                                         r"\(36 samples\)"):  # fmt: skip
        run_train(data_root, tmp_path, run, "data.batch_size=64")
    assert not (run / "metrics.json").exists()


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


# --- logs and checkpoints after a failure ----------------------------------------------------


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
