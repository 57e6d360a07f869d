"""Images packed into WebDataset-style tar shards, read by index with the same labels.

For clusters whose images live on network or object storage, millions of 5 kB files are slow to
list and open. :func:`pack_splits` writes each split of any dataset into tar shards in the
WebDataset layout (``<key>.<ext>`` and ``<key>.cls`` members, ``<split>-000000.tar``, ...), which
any tar reader or the ``webdataset`` library can stream, plus ``index.npz`` per split: the
reader's compact index (video and frame, or image names; labels; face boxes; the ``va`` and
``au`` targets of the other ABAW tracks, with the task in ``packed.json``) and each image's
shard, byte offset and size. Sample keys are ``<video>__<frame>`` for video frames and the
sample's position (``00000042``) for still images; images held as pixels in a CSV file (FER2013,
FERPlus) are stored as lossless PNG.

Reading (``data.packed_dir=DIR``) uses that index: the same splits, labels, skip counts and
``(seed, epoch, index)`` sampling and augmentation as reading the folders, with one ``pread`` per
image from a handful of large files. We chose plain tar over litdata's chunk format because tar
shards need no extra dependency to write or read, are inspectable with standard tools, and keep
random access by index (which exact sampling and resumable order rely on).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fer_multires.data.readers.index import (
    TARGET_COLUMNS,
    DatasetFormatError,
    DatasetIndex,
    SkipCounts,
    SplitIndex,
    read_text,
)
from fer_multires.tasks import DEFAULT_TASK
from fer_multires.utils.io import write_json_atomic

META_NAME = "packed.json"
#: 2 adds still-image datasets (``dataset``, image names, face boxes); 3 adds ``task`` and the
#: ``va`` and ``au`` target arrays. Every earlier version still reads (as ``task=expr``).
FORMAT_VERSION = 3


def shard_name(split: str, shard: int) -> str:
    """Return the file name of a split's shard."""
    return f"{split}-{shard:06d}.tar"


def member_key(video: str, frame: int) -> str:
    """Return the WebDataset sample key of a frame."""
    return f"{video}__{frame:05d}"


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    """Append one member and return the byte offset of its data in the archive."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    # addfile() writes a copy of `info`, so compute where the data lands: after the header.
    data_offset = tar.offset + len(info.tobuf(tar.format, tar.encoding, tar.errors))
    tar.addfile(info, io.BytesIO(data))
    return data_offset


def sample_member(split: SplitIndex, images_dir: Path, i: int) -> tuple[str, bytes]:
    """Return the member name and encoded bytes of sample ``i``."""
    if split.has_videos:
        key = member_key(split.video_names[split.video_id[i]], int(split.frame[i]))
    else:
        key = f"{i:08d}"
    if split.pixels is not None:
        buffer = io.BytesIO()
        Image.fromarray(split.pixels[i]).save(buffer, format="PNG")
        return f"{key}.png", buffer.getvalue()
    relpath = split.image_relpath(i)
    return f"{key}{Path(relpath).suffix.lower()}", (images_dir / relpath).read_bytes()


def index_arrays(split: SplitIndex) -> dict[str, np.ndarray]:
    """Return the arrays of a split's index that ``index.npz`` stores (not the pixels)."""
    arrays = {"label": split.label}
    if split.has_videos:
        arrays.update(videos=np.array(split.video_names), video=split.video_id, frame=split.frame)
    else:
        arrays["paths"] = split.paths
    if split.boxes is not None:
        arrays["boxes"] = split.boxes
    for name in TARGET_COLUMNS:
        if getattr(split, name) is not None:
            arrays[name] = getattr(split, name)
    return arrays


def pack_split(
    split: SplitIndex, images_dir: Path, out_dir: Path, name: str, shard_size: int
) -> dict[str, int]:
    """Pack one split's images into shards and write its ``index.npz``.

    Returns:
        The number of shards and frames written.
    """
    shards = np.zeros(len(split), dtype=np.int64)
    offsets = np.zeros(len(split), dtype=np.int64)
    sizes = np.zeros(len(split), dtype=np.int64)
    num_shards = 0
    for start in range(0, len(split), shard_size):
        path = out_dir / shard_name(name, num_shards)
        partial = path.with_suffix(".tar.partial")
        with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(start, min(start + shard_size, len(split))):
                member, data = sample_member(split, images_dir, i)
                shards[i], sizes[i] = num_shards, len(data)
                offsets[i] = _add_member(tar, member, data)
                key = member.rsplit(".", 1)[0]
                _add_member(tar, f"{key}.cls", str(split.label[i]).encode())
        os.replace(partial, path)
        num_shards += 1
    np.savez(
        out_dir / f"{name}.index.npz",
        **index_arrays(split),
        shard=shards,
        offset=offsets,
        size=sizes,
    )
    return {"shards": num_shards, "frames": len(split)}


def pack_splits(index: DatasetIndex, out_dir: str | Path, shard_size: int = 10_000) -> dict:
    """Pack every split of an index into ``out_dir`` and write ``packed.json``.

    Raises:
        FileExistsError: if ``out_dir`` already holds a packed set.
        ValueError: for a shard size below 1 (``pack.shard_size``).
    """
    if shard_size < 1:
        raise ValueError(f"pack.shard_size={shard_size} must be >= 1")
    out = Path(out_dir)
    if (out / META_NAME).exists():
        raise FileExistsError(f"pack.out: {out} already holds a packed set")
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "dataset": index.name,
        "task": index.task,
        "classes": list(index.classes),
        "layout": index.layout,
        "source": str(index.images_dir),
        "splits": {},
    }
    for name, split in index.splits.items():
        written = pack_split(split, index.images_dir, out, name, shard_size)
        meta["splits"][name] = {
            **written,
            "skipped": split.skipped.as_dict(),
            "missing_videos": split.missing_videos,
        }
    write_json_atomic(out / META_NAME, meta)  # last: its presence marks a complete set
    return meta


#: The keys every ``packed.json`` holds, and the arrays every ``<split>.index.npz`` holds.
META_KEYS: tuple[str, ...] = ("classes", "layout", "splits")
INDEX_ARRAYS: tuple[str, ...] = ("label", "shard", "offset", "size")
REPACK = "write it again with python -m fer_multires.pack"


def damaged(problem: str) -> DatasetFormatError:
    """The error for a damaged packed set: ``problem`` is ``<file>: <what is wrong>``."""
    return DatasetFormatError(f"data.packed_dir: {problem}; the packed set is damaged, {REPACK}")


def read_meta(path: Path) -> dict[str, Any]:
    """Read and check ``packed.json``.

    Raises:
        DatasetFormatError: for a file that is not UTF-8 JSON or lacks a key, naming the file
            (and line) and ``data.packed_dir``.
    """
    try:
        text = read_text(path)
    except DatasetFormatError as err:  # not UTF-8, naming the file and line
        raise damaged(str(err)) from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        reason = f"not JSON: {err.msg} (column {err.colno})"
        raise damaged(f"{path}:{err.lineno}: {reason}") from None
    missing = [key for key in META_KEYS if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise damaged(f"{path}: no key {', '.join(repr(key) for key in missing)}")
    return meta


def read_split_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read one split's ``index.npz`` whole.

    Raises:
        DatasetFormatError: for a missing, truncated or not-npz file, or one without the index
            arrays, naming the file and ``data.packed_dir``.
    """
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise damaged(f"{path}: missing") from None
    except (OSError, ValueError, EOFError, AttributeError, zipfile.BadZipFile) as err:
        raise damaged(f"{path}: not a readable .npz index ({type(err).__name__}: {err})") from None
    missing = [key for key in INDEX_ARRAYS if key not in arrays]
    if missing or not ("videos" in arrays or "paths" in arrays):
        raise damaged(f"{path}: no {', '.join(missing or ['paths'])} array")
    return arrays


def read_packed(packed_dir: str | Path) -> DatasetIndex:
    """Read the index of a packed set: the same splits, labels and skip counts as the folders.

    Raises:
        FileNotFoundError: naming ``data.packed_dir`` if it holds no complete packed set.
        DatasetFormatError: naming ``data.packed_dir`` and the file, for a damaged
            ``packed.json`` or ``<split>.index.npz``.
    """
    root = Path(packed_dir)
    meta_path = root / META_NAME
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"data.packed_dir: {root} holds no packed set ({META_NAME} is missing; "
            "python -m fer_multires.pack writes one)"
        )
    meta = read_meta(meta_path)
    splits = {}
    for name, info in meta["splits"].items():
        arrays = read_split_arrays(root / f"{name}.index.npz")
        samples: dict[str, Any] = {"label": arrays["label"]}
        if "videos" in arrays:
            samples.update(
                video_names=[str(v) for v in arrays["videos"]],
                video_id=arrays["video"],
                frame=arrays["frame"],
            )
        else:
            samples["paths"] = arrays["paths"]
        splits[name] = SplitIndex(
            **samples,
            boxes=arrays.get("boxes"),
            va=arrays.get("va"),
            au=arrays.get("au"),
            skipped=SkipCounts(info["skipped"], info["skipped"]),
            missing_videos=list(info["missing_videos"]),
            packed=(arrays["shard"], arrays["offset"], arrays["size"]),
        )
    return DatasetIndex(
        name=meta.get("dataset", "affwild2"),
        classes=tuple(meta["classes"]),
        layout=meta["layout"],
        images_dir=root,
        splits=splits,
        task=meta.get("task", DEFAULT_TASK),
    )


class PackedReader:
    """Reads one frame's bytes from the shards with ``pread`` (safe to share across forks).

    Args:
        packed_dir: the packed set's folder.
        split_name: the split whose shards hold the frames (``train`` or ``val``).
    """

    def __init__(self, packed_dir: Path, split_name: str) -> None:
        self.packed_dir = Path(packed_dir)
        self.split_name = split_name
        self._files: dict[int, int] = {}
        self._pid = os.getpid()

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # a new worker process: open its own descriptors
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            self._files[shard] = os.open(self.shard_path(shard), os.O_RDONLY)
        return self._files[shard]

    def shard_path(self, shard: int) -> Path:
        """Return the file of shard number ``shard``."""
        return self.packed_dir / shard_name(self.split_name, shard)

    def read(self, shard: int, offset: int, size: int) -> bytes:
        """Return ``size`` bytes at ``offset`` of a shard."""
        data = os.pread(self._fd(shard), size, offset)
        if len(data) != size:
            raise OSError(f"{self.shard_path(shard)}: short read at byte {offset}")
        return data

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": {}}
