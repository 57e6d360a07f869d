"""What a fault probe of the training and evaluation found, each fixed and kept fixed."""

from __future__ import annotations

import errno
import os
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
