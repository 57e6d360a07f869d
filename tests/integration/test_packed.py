"""Packed tar shards give the same data as the folders."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import jpeg_bytes, make_image_tree, write_video

from fer_multires.data.datamodule import FERDataModule

SETTINGS = dict(
    batch_size=4, num_workers=0, resize_size=28, crop_size=24, val_select_fraction=0.4,
    multires={"enabled": True, "p": 1.0, "min_res": 4, "max_res": 24, "sampling": "uniform"},
)  # fmt: skip


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("packed")
    root = make_image_tree(tmp / "d", train_videos=3, val_videos=4, frames=7)
    write_video(root, "abaw2", "val", "unlabelled_bits", [0, -1, 2], frames=[1, 2],
                image=jpeg_bytes(24))  # fmt: skip
    write_video(root, "abaw2", "val", "no_frames", [0, 1], frames=[])
    out = tmp / "shards"
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.pack", "data=affwild2", f"data.root={root}",
         f"pack.out={out}", "pack.shard_size=10"],
        capture_output=True, text=True, cwd=tmp, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root, out


def setup(**kwargs) -> FERDataModule:
    dm = FERDataModule(**SETTINGS, **kwargs)
    dm.setup()
    return dm


def test_counts_labels_and_skips_are_identical(packed) -> None:
    root, out = packed
    folders, shards = setup(root=str(root)), setup(root="unused", packed_dir=str(out))
    assert shards.classes == folders.classes
    for name in ("train", "val_select", "val_rest", "val_full"):
        a, b = folders.splits[name], shards.splits[name]
        assert a.video_names == b.video_names
        assert np.array_equal(a.frame, b.frame) and np.array_equal(a.label, b.label)
    assert shards.index.skipped() == folders.index.skipped()
    assert shards.index.splits["val"].missing_videos == ["no_frames"]


@pytest.mark.parametrize("augment_on", ["device", "cpu"])
def test_batches_are_identical(packed, augment_on) -> None:
    root, out = packed
    folders = setup(root=str(root), augment_on=augment_on)
    shards = setup(root="unused", packed_dir=str(out), augment_on=augment_on)
    for loader_a, loader_b in (
        (folders.train_dataloader(), shards.train_dataloader()),
        (folders.eval_dataloader("val_full"), shards.eval_dataloader("val_full")),
    ):
        for a, b in zip(loader_a, loader_b, strict=True):
            assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])


def test_shards_are_standard_webdataset_tars(packed) -> None:
    _, out = packed
    shards = sorted(out.glob("train-*.tar"))
    assert [p.name for p in shards] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
    assert names[:2] == ["train_000__00001.jpg", "train_000__00001.cls"]


def test_missing_or_existing_pack_is_an_error(packed, tmp_path) -> None:
    root, out = packed
    with pytest.raises(FileNotFoundError, match="data.packed_dir"):
        setup(root="unused", packed_dir=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "fer_multires.pack", "data=affwild2", f"data.root={root}",
         f"pack.out={out}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0 and "already holds a packed set" in result.stderr


def test_unwritable_pack_destination_is_an_error_before_reading(tmp_path) -> None:
    """It was found only after the dataset had been read."""
    from conftest import compose_entry

    from fer_multires.pack import run_pack

    (tmp_path / "taken").write_text("a file where the folder should be")
    out = tmp_path / "taken" / "shards"
    cfg = compose_entry("pack", ["data=affwild2", f"data.root={tmp_path / 'not_read'}",
                                 f"pack.out={out}"], tmp_path)  # fmt: skip
    with pytest.raises(PermissionError, match=rf"pack.out: cannot write into {out}"):
        run_pack(cfg)
